"""Value types shared by every layer of the service.

Nothing here imports a deep-learning framework: an :class:`Explanation` is plain
NumPy + Python so that it pickles, caches and serialises without torch or
tensorflow being loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class XaiError(Exception):
    """Base of every error that is the user's to fix; its text is shown as is."""


class InputError(XaiError):
    """A file or value the user gave is unusable (corrupt image, bad flag value...)."""


class ModelLoadError(XaiError):
    """A model file cannot be loaded (format, safety, missing weights...)."""


class UnsupportedError(XaiError):
    """The chosen method or layer cannot run on this model."""


class Capability:
    """What a model adapter can do; explainers declare what they require."""

    PREDICT = "predict"
    INPUT_GRADIENTS = "input_gradients"
    LAYER_GRADIENTS = "layer_gradients"
    # a Keras model that shap's DeepExplainer (DeepLIFT rules on TensorFlow ops) can walk
    DEEP_EXPLAINER = "deep_explainer"


@dataclass(frozen=True)
class ImageSpec:
    """How an image becomes the model's input.

    ``size`` is (height, width) of the model input. ``mean``/``std`` are applied by
    the adapter to images in [0, 1]; ``grayscale`` feeds one channel.
    """

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    grayscale: bool = False

    def __post_init__(self) -> None:
        h, w = self.size
        if not (8 <= h <= 4096 and 8 <= w <= 4096):
            raise InputError(f"input size {h}x{w} is out of range (8..4096 pixels per side)")
        channels = 1 if self.grayscale else 3
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise InputError(
                    f"{name} has {len(values)} values; give 1 or {channels} for a "
                    f"{'grayscale' if self.grayscale else 'color'} model"
                )
        if not all(np.isfinite(v) for v in (*self.mean, *self.std)):
            raise InputError(f"mean {list(self.mean)} and std {list(self.std)} must be finite numbers")
        if any(s <= 0 for s in self.std):
            raise InputError("std values must be positive")

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def mean_array(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.mean, np.float32), (self.channels,)).copy()

    def std_array(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.std, np.float32), (self.channels,)).copy()

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "mean": list(self.mean),
            "std": list(self.std),
            "grayscale": self.grayscale,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSpec:
        size = data.get("size", (224, 224))
        if isinstance(size, int):
            size = (size, size)
        try:
            if isinstance(size, str) or len(size) != 2 or any(isinstance(v, bool) for v in size):
                raise TypeError
            grayscale = data.get("grayscale", False)
            if not isinstance(grayscale, bool):
                raise TypeError
            return cls(
                size=(int(size[0]), int(size[1])),
                mean=tuple(float(v) for v in _listed(data.get("mean", IMAGENET_MEAN))),
                std=tuple(float(v) for v in _listed(data.get("std", IMAGENET_STD))),
                grayscale=grayscale,
            )
        except (TypeError, ValueError, OverflowError):
            raise InputError(
                "preprocessing must look like {\"size\": [224, 224], \"mean\": [0.485, 0.456, 0.406], "
                "\"std\": [0.229, 0.224, 0.225], \"grayscale\": false}; got "
                f"{ {k: data.get(k) for k in ('size', 'mean', 'std', 'grayscale') if k in data} }"
            ) from None


def _listed(values: Any) -> list:
    if isinstance(values, (str, bytes, dict)):
        raise TypeError
    return list(values) if isinstance(values, (list, tuple)) else [values]


@dataclass(frozen=True)
class Prediction:
    """One class of a model's output."""

    index: int
    label: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "probability": self.probability}


@dataclass
class Explanation:
    """The result of one explainer on one image for one target class.

    ``attribution`` is the signed 2-D map (H x W, float32) at model input
    resolution; ``raw`` the per-channel attribution (H x W x C) where the method
    has one. ``extras`` holds method-specific arrays and numbers (LIME segments,
    IG convergence delta, SHAP variance...).
    """

    method: str
    target: int
    target_label: str
    attribution: np.ndarray
    predictions: list[Prediction]
    params: dict[str, Any]
    seed: int
    model_evals: int
    elapsed_s: float
    raw: np.ndarray | None = None
    signed: bool = True
    layer: str | None = None
    output_kind: str = "probability"
    extras: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays) used by results.json and the dashboard."""
        extras = {
            k: (float(v) if isinstance(v, (np.floating, float)) else v)
            for k, v in self.extras.items()
            if isinstance(v, (int, float, str, bool, np.floating))
        }
        return {
            "method": self.method,
            "target": self.target,
            "target_label": self.target_label,
            "predictions": [p.to_dict() for p in self.predictions],
            "params": _jsonable(self.params),
            "seed": self.seed,
            "model_evals": self.model_evals,
            "elapsed_s": round(self.elapsed_s, 4),
            "layer": self.layer,
            "output_kind": self.output_kind,
            "extras": extras,
        }


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
