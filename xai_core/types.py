"""Value types shared by every layer of the service.

Nothing here imports a deep-learning framework: an :class:`Explanation` is plain
NumPy + Python so that it pickles, caches and serialises without torch or
tensorflow being loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# PIL's resampling filters by name (Hugging Face processors and timm resize with PIL)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


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
    # an in-memory PyTorch nn.Module with one image input, whose modules can be hooked
    # (zennit's LRP rules)
    TORCH_MODULE = "torch_module"
    # a vision transformer whose per-block attention probabilities can be read
    # (xai_core.adapters.attention) ...
    ATTENTION = "attention"
    # ... whose head reads the class token (attention rollout, Chefer et al.)
    CLASS_TOKEN = "class_token"
    # ... whose head can score every block's tokens (LeGrad)
    BLOCK_SCORES = "block_scores"


@dataclass(frozen=True)
class ImageSpec:
    """How an image becomes the model's input.

    ``size`` is (height, width) of the model input. ``mean``/``std`` are applied by
    the adapter to images in [0, 1]; ``grayscale`` feeds one channel. ``name`` names
    the input among several (output files get a ``__<name>`` suffix).

    ``resize`` says how the photo reaches ``size``: None resizes the whole photo to
    ``size`` (maps cover all of it); an int resizes its shortest edge to that many
    pixels (aspect kept), a pair (height, width) resizes to it; both are then
    centre-cropped to ``size``, as Hugging Face processors and timm's eval transforms
    do. ``interpolation`` is the PIL filter of that resize; ``crop_rounding`` where
    an odd margin puts the crop: 'floor' (Hugging Face) or 'round' (torchvision's
    CenterCrop, which timm uses).
    """

    kind: ClassVar[str] = "image"
    size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    grayscale: bool = False
    name: str = "image"
    resize: int | tuple[int, int] | None = None
    interpolation: str = "bilinear"
    crop_rounding: str = "floor"

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
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        if self.crop_rounding not in ("floor", "round"):
            raise InputError(f"crop_rounding {self.crop_rounding!r} must be floor or round")
        resize = self.resize
        if resize is not None:
            sides = (resize, resize) if isinstance(resize, int) else tuple(resize)
            if any(isinstance(v, bool) or not isinstance(v, int) for v in sides) or len(sides) != 2:
                raise InputError(f"resize {resize!r} must be a shortest edge in pixels or a pair (height, width)")
            if not all(8 <= v <= 4096 for v in sides):
                raise InputError(f"resize {resize!r} is out of range (8..4096 pixels per side)")
            if isinstance(resize, int) and resize < max(h, w) or not isinstance(resize, int) and (
                    sides[0] < h or sides[1] < w):
                raise InputError(f"resize {resize!r} is smaller than the {h}x{w} centre crop it feeds; "
                                 "give a larger resize or a smaller input size")

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def shape(self) -> tuple[int, ...]:
        """One item's canonical shape: H x W x C."""
        return (*self.size, self.channels)

    def mean_array(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.mean, np.float32), (self.channels,)).copy()

    def std_array(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.std, np.float32), (self.channels,)).copy()

    def to_dict(self) -> dict[str, Any]:
        """The preprocessing as JSON (``resize``, ``interpolation`` and
        ``crop_rounding`` only where they differ from resizing the whole photo, bilinear)."""
        out: dict[str, Any] = {
            "size": list(self.size),
            "mean": list(self.mean),
            "std": list(self.std),
            "grayscale": self.grayscale,
        }
        if self.resize is not None:
            out["resize"] = self.resize if isinstance(self.resize, int) else list(self.resize)
            out["crop_rounding"] = self.crop_rounding
        if self.interpolation != "bilinear":
            out["interpolation"] = self.interpolation
        return out

    def describe(self) -> str:
        """One line: how a photo becomes the input (for notes and the dashboard)."""
        h, w = self.size
        if self.resize is None:
            return f"whole photo resized to {h}x{w} ({self.interpolation})"
        how = (f"shortest edge resized to {self.resize}" if isinstance(self.resize, int)
               else f"resized to {self.resize[0]}x{self.resize[1]}")
        return f"{how} ({self.interpolation}), centre {h}x{w} cropped"

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
            resize = data.get("resize")
            if resize is not None and not isinstance(resize, int):
                if isinstance(resize, (str, bool)) or len(resize) != 2:
                    raise TypeError
                resize = (int(resize[0]), int(resize[1]))
            return cls(
                size=(int(size[0]), int(size[1])),
                mean=tuple(float(v) for v in _listed(data.get("mean", IMAGENET_MEAN))),
                std=tuple(float(v) for v in _listed(data.get("std", IMAGENET_STD))),
                grayscale=grayscale,
                resize=resize,
                interpolation=str(data.get("interpolation", "bilinear")),
                crop_rounding=str(data.get("crop_rounding", "floor")),
            )
        except (TypeError, ValueError, OverflowError):
            raise InputError(
                "preprocessing must look like {\"size\": [224, 224], \"mean\": [0.485, 0.456, 0.406], "
                "\"std\": [0.229, 0.224, 0.225], \"grayscale\": false} (optionally \"resize\": 256, "
                "\"interpolation\": \"bicubic\"); got "
                f"{ {k: data.get(k) for k in ('size', 'mean', 'std', 'grayscale', 'resize') if k in data} }"
            ) from None


def _listed(values: Any) -> list:
    if isinstance(values, (str, bytes, dict)):
        raise TypeError
    return list(values) if isinstance(values, (list, tuple)) else [values]


@dataclass(frozen=True)
class VectorSpec:
    """A row of ``size`` numeric features, fed to the model as is (N x F float32).

    ``size`` None means the model does not say (it is then read from the table);
    ``feature_names`` label the attribution bars (``feature 0``... when not given).
    """

    kind: ClassVar[str] = "vector"
    size: int | None = None
    feature_names: tuple[str, ...] | None = None
    name: str = "features"

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 1:
            raise InputError(f"input {self.name!r}: a feature vector needs at least one feature")
        if self.feature_names is not None and self.size is not None and len(self.feature_names) != self.size:
            raise InputError(
                f"input {self.name!r} takes {self.size} features but {len(self.feature_names)} names were given"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size or 0,)

    def names(self) -> list[str]:
        if self.feature_names is not None:
            return list(self.feature_names)
        return [f"feature {i}" for i in range(self.size or 0)]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "size": self.size,
                "feature_names": None if self.feature_names is None else list(self.feature_names)}


InputSpec = Union[ImageSpec, VectorSpec]  # noqa: UP007 - a runtime alias
INPUT_KINDS = ("image", "vector")


def as_input_specs(spec: InputSpec | Sequence[InputSpec]) -> tuple[InputSpec, ...]:
    """One spec or several -> a tuple of specs with distinct names (``input_1``... for
    repeated names, so every output file suffix is unique)."""
    specs = (spec,) if isinstance(spec, (ImageSpec, VectorSpec)) else tuple(spec)
    if not specs:
        raise InputError("a model needs at least one input")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        specs = tuple(dataclasses.replace(s, name=f"input_{i}") if names.count(s.name) > 1 else s
                      for i, s in enumerate(specs))
    return specs


def spec_from_dict(data: dict[str, Any]) -> InputSpec:
    """A sidecar's input entry: {"kind": "image", "size": ..., ...} or {"kind": "vector", "size": F}."""
    kind = data.get("kind", "image")
    if kind == "vector":
        names = data.get("feature_names")
        return VectorSpec(
            size=None if data.get("size") is None else int(data["size"]),
            feature_names=None if names is None else tuple(str(n) for n in names),
            name=str(data.get("name", "features")),
        )
    if kind != "image":
        raise InputError(f"unknown input kind {kind!r}; use image or vector")
    spec = ImageSpec.from_dict(data)
    return dataclasses.replace(spec, name=str(data.get("name", "image")))


@dataclass(frozen=True)
class Prediction:
    """One class of a model's output. ``probability`` is the output's value: a
    probability for classifiers (``kind`` 'probability'), else the logit or score the
    model gives (``kind`` 'logit' or 'score', rows of logit and score models)."""

    index: int
    label: str
    probability: float
    kind: str = "probability"

    @property
    def value(self) -> float:
        return self.probability

    def to_dict(self, key: str | None = None) -> dict[str, Any]:
        """{index, label, probability} (``value`` for a logit or score, or when
        ``key`` says so: row records keep their ``value`` key)."""
        key = key or ("probability" if self.kind == "probability" else "value")
        return {"index": self.index, "label": self.label, key: self.probability}


@dataclass
class Explanation:
    """The result of one explainer on one model input (one or several tensors) for
    one target class.

    ``attributions`` holds one array per model input, in the order of ``inputs``
    (their names) and ``input_kinds``: a signed 2-D map (H x W, float32, model
    input resolution) for an image, one value per feature (F,) for a vector.
    ``attribution`` is the first input's array (the image map of single-image
    results). ``raw`` is the first input's per-channel attribution (H x W x C)
    where the method has one. ``layer_attribution`` holds per-unit values at
    ``layer`` for methods that attribute to a layer ((units,) for a dense layer,
    (C, h, w) for a conv layer), ``neuron`` the unit a neuron method explains.
    ``output_kind`` says what the explained score is: 'logit', 'probability' or
    'score'. ``probabilities`` keeps every class probability for models with at
    most 100 classes. ``extras`` holds method-specific arrays and numbers (LIME
    segments, IG convergence delta, SHAP variance...).

    Like shap's ``Explanation``, it carries values, base value, data and names
    together, for every kind of input: ``output`` is the explained score of the
    target, ``base_value`` where additive methods start (Kernel SHAP: the
    background's mean output; IG: the baseline's output), so that ``base_value +
    sum(attributions) ~= output``. For a vector input (a table row)
    ``feature_names`` and ``feature_values`` are its features' names and values as
    given; ``row`` and ``label`` say which row of which table (and its value in the
    label column) it explains.
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
    attributions: list[np.ndarray] = field(default_factory=list)
    inputs: list[str] = field(default_factory=lambda: ["image"])
    input_kinds: list[str] = field(default_factory=lambda: ["image"])
    layer_attribution: np.ndarray | None = None
    neuron: int | None = None
    probabilities: np.ndarray | None = None
    engine: str = ""  # what ran the forward passes: onnxruntime, openvino, torch, keras...
    engine_note: str = ""  # why that engine (or why the fast path fell back)
    output: float | None = None
    base_value: float | None = None
    feature_names: list[str] = field(default_factory=list)
    feature_values: np.ndarray | None = None
    row: int | None = None
    label: Any = None
    # per model input: where the model's crop lies in the photo that was given
    # ({left, top, right, bottom} in its pixels, with its width and height), None for
    # a feature vector; None when not recorded
    boxes: list[dict[str, float] | None] | None = None

    def __post_init__(self) -> None:
        if not self.attributions:
            self.attributions = [self.attribution]

    @property
    def additivity_error(self) -> float | None:
        """base_value + sum(attributions over every input) - output (None when the
        method has no base value)."""
        if self.base_value is None or self.output is None:
            return None
        total = sum(float(np.sum(a, dtype=np.float64)) for a in self.attributions)
        return float(self.base_value + total - self.output)

    def _vector(self) -> int:
        if "vector" not in self.input_kinds:
            raise ValueError(f"{self.method}: this explanation has no feature vector input")
        return self.input_kinds.index("vector")

    def by_feature(self) -> dict[str, float]:
        """The (first) vector input's attributions by feature name, in input order."""
        values = np.asarray(self.attributions[self._vector()], np.float64).reshape(-1)
        names = self.feature_names or [f"feature {i}" for i in range(len(values))]
        return {str(n): float(v) for n, v in zip(names, values, strict=True)}

    def values_by_feature(self) -> dict[str, float]:
        """The explained row's feature values by name (empty when not recorded)."""
        if self.feature_values is None:
            return {}
        return {str(n): float(v) for n, v in zip(self.feature_names, np.ravel(self.feature_values), strict=True)}

    def ranked(self) -> list[tuple[str, float]]:
        """(feature, attribution) pairs of the vector input, largest magnitude first."""
        return sorted(self.by_feature().items(), key=lambda kv: -abs(kv[1]))

    @property
    def explains(self) -> str:
        """What the attribution explains: 'logit', 'probability' or 'score'."""
        return self.output_kind

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays) used by results.json and the dashboard."""
        extras = {
            k: (float(v) if isinstance(v, (np.floating, float)) else v)
            for k, v in self.extras.items()
            if isinstance(v, (int, float, str, bool, np.floating))
        }
        record = {
            "method": self.method,
            "target": self.target,
            "target_label": self.target_label,
            "predictions": [p.to_dict() for p in self.predictions],
            "params": _jsonable(self.params),
            "seed": self.seed,
            "model_evals": self.model_evals,
            "elapsed_s": round(self.elapsed_s, 4),
            "layer": self.layer,
            "layer_attribution_shape": (
                None if self.layer_attribution is None else list(self.layer_attribution.shape)
            ),
            "output_kind": self.output_kind,
            "explains": self.explains,
            "inputs": list(self.inputs),
            "input_kinds": list(self.input_kinds),
            "neuron": self.neuron,
            "probabilities": None if self.probabilities is None else [float(p) for p in self.probabilities],
            "engine": self.engine,
            "engine_note": self.engine_note,
            "extras": extras,
            "output": self.output,
            "base_value": self.base_value,
        }
        if self.boxes is not None:
            record["input_boxes"] = [None if b is None else dict(b) for b in self.boxes]
        if self.row is not None:  # a table row: values inline, one per feature
            record.update({
                "row": self.row,
                "label": _jsonable(self.label),
                "predictions": [p.to_dict("value") for p in self.predictions],
                "output_kind": self.output_kind,
                "attributions": self.by_feature(),
                "feature_values": self.values_by_feature(),
                "layer_attribution": None if self.layer_attribution is None else [
                    float(v) for v in np.nan_to_num(np.asarray(self.layer_attribution, np.float64)).reshape(-1)],
            })
        return record


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
