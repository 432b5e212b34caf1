"""Keras models of the zoo: keras.applications with ImageNet weights from Keras'
local cache, and the zoo's own Keras digits CNN. TensorFlow is imported only when
one of these builders runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from xai_core.types import ModelLoadError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# keras.applications constructor, weights file name in ~/.keras/models, download URL
KERAS_APPLICATIONS = {
    "MobileNetV2": (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
        "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
    ),
    "ResNet50": (
        "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        "https://storage.googleapis.com/tensorflow/keras-applications/resnet/",
    ),
    "VGG16": (
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/",
    ),
    "VGG19": (
        "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/",
    ),
}

# Caffe-style preprocessing (ResNet50, VGG16/19: keras.applications.imagenet_utils
# mode 'caffe'): x_bgr * 255 - (103.939, 116.779, 123.68). On our [0, 1] RGB input
# that is (x_rgb - mean) / std with these RGB-ordered values, followed by an
# RGB -> BGR channel flip, which lives in the model (see rgb_to_bgr_model).
CAFFE_MEAN_RGB = (123.68 / 255, 116.779 / 255, 103.939 / 255)
CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)


def keras_weights_dir() -> Path:
    """Where keras.utils.get_file caches weights: $KERAS_HOME/models or ~/.keras/models
    (``/tmp/.keras/models`` when the home folder is not writable), as Keras decides."""
    base = os.environ.get("KERAS_HOME")
    if base is None:
        home = os.path.expanduser("~")
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK) and not os.access(os.path.dirname(base) or "/", os.W_OK):
        base = "/tmp/.keras"
    return Path(base) / "models"


def keras_application_weights(app: str) -> Path:
    """The cached ImageNet weights file of ``app``; offline-safe: no download is tried,
    a missing file is an error naming the exact path to put it at."""
    file_name, url = KERAS_APPLICATIONS[app]
    target = keras_weights_dir() / file_name
    if not target.is_file():
        raise ModelLoadError(
            f"the ImageNet weights for keras.applications.{app} are not on this machine. "
            f"Download {url}{file_name} on a machine with internet access and put it at "
            f"{target} (or set KERAS_HOME to a folder holding models/{file_name})."
        )
    return target


def keras_application(app: str):
    """keras.applications.<app> with its ImageNet weights, taking inputs as the zoo
    spec prepares them (caffe models get an RGB -> BGR layer in front)."""
    weights = keras_application_weights(app)
    from xai_core.adapters.runtime import import_tensorflow

    import_tensorflow()
    import keras

    constructor = getattr(keras.applications, app)
    try:
        model = constructor(weights=str(weights))
    except Exception as exc:  # noqa: BLE001 - a bad file gets the same advice
        raise ModelLoadError(
            f"{weights}: corrupt weights file for keras.applications.{app} "
            f"({' '.join(str(exc).split())[:200]}); delete it and download it again"
        ) from None
    if app == "MobileNetV2":
        return model  # expects [-1, 1]: mean 0.5, std 0.5 on [0, 1] input
    return rgb_to_bgr_model(model)


def rgb_to_bgr_model(base):
    """Input (RGB, caffe-normalised) -> flip channels to BGR -> ``base``; the base
    stays a nested model so its layers remain Grad-CAM candidates."""
    import keras

    inputs = keras.Input(tuple(base.inputs[0].shape[1:]), name="rgb_input")
    flipped = _flip_channels_layer()(inputs)
    return keras.Model(inputs, base(flipped), name=f"{base.name}_rgb")


def _flip_channels_layer():
    """A layer reversing the channel axis (RGB -> BGR) of N x H x W x C images.

    Built in code here (never deserialised), so it is no Lambda from a file."""
    import keras

    class FlipChannels(keras.layers.Layer):
        def call(self, x):
            return keras.ops.flip(x, axis=-1)

    return FlipChannels(name="rgb_to_bgr")


def own_keras_metadata(name: str) -> dict:
    path = WEIGHTS_DIR / f"{name}.json"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; run python -m model_zoo.train_{name}")
    return json.loads(path.read_text())


def own_keras_model(name: str):
    """A Keras model the zoo trained itself, loaded through the safe loader."""
    from xai_core.loading.keras import load_keras_file

    path = WEIGHTS_DIR / f"{name}.keras"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; run python -m model_zoo.train_{name}")
    model, _ = load_keras_file(path)
    return model
