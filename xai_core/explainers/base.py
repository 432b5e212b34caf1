"""What every explainer is: typed parameters, declared requirements, one hook.

An explainer module defines a frozen dataclass of parameters (fields made with
:func:`param`, which carry range, choices and help text for the dashboard form
and the command line's ``--param`` parsing) and a subclass of :class:`Explainer`
decorated with :func:`register`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..adapters.base import ModelAdapter
from ..types import Capability, InputError

REGISTRY: dict[str, Explainer] = {}


def param(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
    help: str = "",  # noqa: A002 - mirrors argparse
    step: float | None = None,
) -> Any:
    """A dataclass field with UI/CLI metadata. ``low``/``high`` are inclusive."""
    meta = {"low": low, "high": high, "choices": choices, "help": help, "step": step}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ParamInfo:
    name: str
    type: type
    default: Any
    low: float | None
    high: float | None
    choices: tuple | None
    help: str
    step: float | None


def param_infos(params_cls: type) -> list[ParamInfo]:
    infos = []
    for f in dataclasses.fields(params_cls):
        meta = f.metadata
        kind = type(f.default)
        infos.append(
            ParamInfo(f.name, kind, f.default, meta.get("low"), meta.get("high"),
                      meta.get("choices"), meta.get("help", ""), meta.get("step"))
        )
    return infos


def parse_params(params_cls: type, values: dict[str, Any] | None, method: str = "") -> Any:
    """Build a params object from a mapping of names to values or strings, checking
    names, types, ranges and choices; errors name the parameter and what is allowed."""
    values = dict(values or {})
    infos = {p.name: p for p in param_infos(params_cls)}
    unknown = sorted(set(values) - set(infos))
    if unknown:
        allowed = ", ".join(infos) or "none"
        raise InputError(f"{method}: unknown parameter {unknown[0]!r}; allowed: {allowed}")
    kwargs = {}
    for name, raw in values.items():
        info = infos[name]
        kwargs[name] = _coerce(info, raw, method)
    return params_cls(**kwargs)


def _coerce(info: ParamInfo, raw: Any, method: str) -> Any:
    where = f"{method}: parameter {info.name}"
    try:
        if info.type is bool:
            if isinstance(raw, str):
                low = raw.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = low in ("true", "1", "yes")
            else:
                value = bool(raw)
        elif info.type is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            value = int(str(raw).strip()) if isinstance(raw, str) else int(raw)
        elif info.type is float:
            value = float(raw)
            if not np.isfinite(value):
                raise ValueError
        else:
            value = str(raw).strip()
    except (TypeError, ValueError):
        raise InputError(f"{where} must be {info.type.__name__}, got {raw!r}") from None
    if info.choices is not None and value not in info.choices:
        raise InputError(f"{where} must be one of {', '.join(map(str, info.choices))}; got {value!r}")
    if info.low is not None and value < info.low or info.high is not None and value > info.high:
        raise InputError(f"{where} must be between {info.low} and {info.high}; got {value}")
    return value


@dataclass
class RawAttribution:
    """What an explainer hook returns: a 2-D map at model input resolution, and for
    layer methods the attribution of the layer's units (units,) or (C, h, w) and
    the neuron explained."""

    attribution: np.ndarray  # H x W float32
    raw: np.ndarray | None = None  # H x W x C where the method has one
    extras: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None
    layer_attribution: np.ndarray | None = None
    neuron: int | None = None


class Context:
    """Everything an explainer gets: the model, one preprocessed image, the target,
    a seeded RNG, the batch size, and counters/progress for model evaluations."""

    def __init__(
        self,
        adapter: ModelAdapter,
        image: np.ndarray,
        target: int | None,
        seed: int,
        batch_size: int,
        progress: Callable[[float, str], None] | None = None,
        layer: str | None = None,
        original_image: np.ndarray | None = None,
        probs: np.ndarray | None = None,
    ) -> None:
        self.adapter = adapter
        self.image = image  # H x W x C float32 in [0, 1]
        # None until the first gradient pass picks the predicted class (single-pass methods)
        self.target = target
        self.probs = probs  # the image's class probabilities, once known
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.batch_size = min(batch_size, adapter.max_batch or batch_size)
        self.layer = layer
        self.original_image = original_image
        self.model_evals = 0
        self._progress = progress

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.model_evals += len(batch)
        return self.adapter.predict(batch, self.batch_size)

    def gradients(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input gradients of the target score; when the target is still open, the
        same pass yields the predicted class and the probabilities (batch[0] must
        then be the image itself)."""
        self.model_evals += len(batch)
        if self.target is None:
            grads, scores, probs = self.adapter.input_gradients(
                batch, None, self.batch_size, return_probs=True
            )
            self._settle(probs[0])
            return grads, scores
        return self.adapter.input_gradients(batch, self.target, self.batch_size)

    def layer_gradients(
        self, layer: str, batch: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(activations, gradients, scores) at ``layer`` of the image, or of ``batch``
        once the target is known."""
        if batch is not None:
            self.model_evals += len(batch)
            return self.adapter.layer_activations_and_gradients(batch, self.target, layer)
        self.model_evals += 1
        if self.target is None:
            acts, grads, scores, probs = self.adapter.layer_activations_and_gradients(
                self.image[None], None, layer, return_probs=True
            )
            self._settle(probs[0])
            return acts, grads, scores
        return self.adapter.layer_activations_and_gradients(self.image[None], self.target, layer)

    def neuron_gradients(self, batch: np.ndarray, layer: str, neuron: int) -> tuple[np.ndarray, np.ndarray]:
        """(d unit / d input, d target score / d unit) of ``neuron`` of ``layer`` for ``batch``."""
        self.model_evals += len(batch)
        return self.adapter.neuron_gradients(batch, self.target, layer, neuron)

    def _settle(self, probs: np.ndarray) -> None:
        self.probs = probs
        self.target = int(np.argmax(probs))

    def progress(self, fraction: float, text: str = "") -> None:
        if self._progress is not None:
            self._progress(float(min(1.0, max(0.0, fraction))), text)

    def chunks(self, total: int) -> Iterator[tuple[int, int]]:
        """(start, stop) pairs of at most ``batch_size``, for streaming perturbations."""
        for start in range(0, total, self.batch_size):
            yield start, min(total, start + self.batch_size)


class Explainer:
    """Subclass, set the class attributes, implement :meth:`run`, decorate with @register."""

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    paper: ClassVar[str] = ""
    modality: ClassVar[str] = "image"
    requires: ClassVar[frozenset[str]] = frozenset({Capability.PREDICT})
    Params: ClassVar[type]
    signed: ClassVar[bool] = True
    uses_layer: ClassVar[bool] = False
    # True when the layer must be a spatial feature map (CAMs), False when a dense
    # layer will do too
    spatial_layers_only: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False
    slow: ClassVar[bool] = False
    # True when one gradient pass of the image itself gives both the predicted class
    # and the attribution, so the service skips its separate prediction pass.
    single_pass: ClassVar[bool] = False

    def run(self, ctx: Context, params: Any) -> RawAttribution:
        raise NotImplementedError

    def params(self, values: dict[str, Any] | None = None) -> Any:
        return parse_params(self.Params, values, self.name)

    def param_infos(self) -> list[ParamInfo]:
        return param_infos(self.Params)

    def missing_capabilities(self, adapter: ModelAdapter) -> list[str]:
        return sorted(r for r in self.requires if not adapter.supports(r))


def register(cls: type[Explainer]) -> type[Explainer]:
    REGISTRY[cls.name] = cls()
    return cls


def channel_sum(raw: np.ndarray) -> np.ndarray:
    """H x W x C -> H x W signed map (sum over channels)."""
    return raw.sum(axis=-1).astype(np.float32)


def channel_max_abs(raw: np.ndarray) -> np.ndarray:
    """H x W x C -> H x W magnitude map (max |.| over channels, Simonyan et al. 2014)."""
    return np.abs(raw).max(axis=-1).astype(np.float32)


def fill_image(image: np.ndarray, how: str, sigma: float | None = None) -> np.ndarray:
    """The replacement for hidden pixels: 'mean', 'black', 'gray', 'white' or 'blur'."""
    if how == "mean":
        return np.broadcast_to(image.mean(axis=(0, 1), keepdims=True), image.shape).astype(np.float32)
    if how == "black":
        return np.zeros_like(image)
    if how == "gray":
        return np.full_like(image, 0.5)
    if how == "white":
        return np.ones_like(image)
    if how == "blur":
        from scipy.ndimage import gaussian_filter

        s = sigma if sigma is not None else max(image.shape[:2]) / 16
        return gaussian_filter(image, sigma=(s, s, 0), mode="nearest").astype(np.float32)
    raise InputError(f"unknown fill {how!r}; use mean, black, gray, white or blur")
