"""xai_core: explain image classifiers from PyTorch (and other frameworks).

Importing this package loads no deep-learning framework; adapters import theirs
when a model of that framework is opened.

    from xai_core import open_model, explain, load_image, render
    model = open_model("efficientnet_lite0")
    image = load_image("sample_images/chelsea_cat.jpg")
    result = explain(model, image, "grad_cam")
    png = render.to_png(render.overlay(image, result))
"""

from xai_core import render
from xai_core.inputs.images import load_image
from xai_core.loading.models import SpecOverrides, open_model
from xai_core.service import explain, explain_classes, predict_image
from xai_core.types import (
    Explanation,
    ImageSpec,
    InputError,
    ModelLoadError,
    Prediction,
    UnsupportedError,
    VectorSpec,
    XaiError,
)

__all__ = [
    "Explanation", "ImageSpec", "InputError", "ModelLoadError", "Prediction", "SpecOverrides",
    "UnsupportedError", "VectorSpec", "XaiError", "explain", "explain_classes", "load_image", "open_model",
    "predict_image", "render",
]
