"""What every metric is: metadata on the class (as Quantus does), typed parameters,
and one hook over plain arrays.

A metric never sees a framework. It gets a :class:`MetricInput`: the input (an
image H x W x C in [0, 1] or a row of F features), its attribution (H x W or F),
the explained class, and callables: ``predict`` (a batch of inputs -> N x K
scores), and where the metric needs them ``explain`` (re-run the method on another
input or another model) and ``randomized`` (a copy of the model with its top
layers' weights randomised). The service builds these from the adapters, so one
metric serves PyTorch, Keras, ONNX and the confined worker alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, ClassVar

import numpy as np

from xai_core.explainers.base import param_infos, parse_params
from xai_core.types import InputError


class Needs(Enum):
    """What a metric needs beyond the input and its attribution."""

    PREDICT = "model predictions"
    EXPLAIN = "re-running the explainer"
    WEIGHTS = "model weights that can be randomised"


class Direction(Enum):
    """Whether a larger value means a more trustworthy map."""

    HIGHER = "higher is better"
    LOWER = "lower is better"


class Modality(Enum):
    IMAGE = "image"
    ROWS = "rows"


Explain = Callable[..., tuple[np.ndarray, int]]
"""(input, model or None for the original, progress=None) -> (attribution, model
evaluations); ``progress`` receives the re-run method's own reports."""


@dataclass
class MetricInput:
    """One explained input, as plain arrays and callables.

    ``predict`` maps a batch shaped like ``x`` (N x ...) to N x K scores (class
    probabilities for images; the model's outputs for rows). ``baseline`` is the
    value a removed feature takes for rows (the data's column means) and ``scale``
    each feature's spread (column std, for input noise); both unused for images. ``layers`` is how many weight-carrying layers ``randomized`` can reach.
    """

    x: np.ndarray
    attribution: np.ndarray
    target: int
    predict: Callable[[np.ndarray], np.ndarray]
    modality: Modality
    baseline: np.ndarray | None = None
    scale: np.ndarray | None = None
    explain: Explain | None = None
    randomized: Callable[[int, int], Any] | None = None
    layers: int = 0
    seed: int = 0
    progress: Callable[[float, str], None] | None = None
    evals: int = field(default=0, init=False)
    _said: tuple[float, str] = field(default=(0.0, ""), init=False, repr=False)

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """The target's score for every input of the batch (counted as evaluations)."""
        batch = np.asarray(batch, np.float32)
        self.evals += len(batch)
        return np.asarray(self.predict(batch), np.float64)[:, self.target]

    def explain_again(self, x: np.ndarray, model: Any = None) -> np.ndarray:
        """The method re-run on ``x`` (and ``model``); while it runs, its own progress
        reports repeat the metric's last one, so a Stop is heard within the run."""
        import inspect

        listens = self.progress is not None and "progress" in inspect.signature(self.explain).parameters
        attribution, evals = (self.explain(x, model, progress=self._heartbeat) if listens
                              else self.explain(x, model))
        self.evals += int(evals)
        return np.asarray(attribution, np.float64)

    def tell(self, fraction: float, text: str) -> None:
        self._said = (float(min(1.0, max(0.0, fraction))), text)
        if self.progress is not None:
            self.progress(*self._said)

    def _heartbeat(self, fraction: float, text: str) -> None:
        if self.progress is not None:
            self.progress(*self._said)


@dataclass
class MetricResult:
    """A metric's value with the evidence behind it.

    ``curve`` is (x, y) for curve metrics (fraction of features changed, target
    score), ``baseline`` the same metric for a random order / random map, so the
    value means something. ``warning`` is set when the map fails the check.
    """

    metric: str
    label: str
    value: float
    direction: Direction
    baseline: float | None = None
    curve: tuple[list[float], list[float]] | None = None
    baseline_curve: tuple[list[float], list[float]] | None = None
    warning: str | None = None
    check: bool | None = None  # a pass/fail check's verdict (e.g. the randomisation check)
    curve_names: tuple[str, str] = ("this map", "random order")
    details: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    model_evals: int = 0
    elapsed_s: float = 0.0
    input: str | None = None  # the model input it measures (models with several inputs)

    @property
    def passed(self) -> bool | None:
        """True when the map passes the check or beats its random baseline (None
        when there is neither)."""
        if self.check is not None:
            return self.check
        if self.baseline is None:
            return None
        if self.direction is Direction.HIGHER:
            return self.value > self.baseline
        return self.value < self.baseline

    def record(self) -> dict[str, Any]:
        """JSON-ready: what results.json and the dashboard keep."""
        out: dict[str, Any] = {
            "metric": self.metric,
            "value": _num(self.value),
            "direction": self.direction.value,
            "baseline": _num(self.baseline),
            "passed": self.passed,
            "warning": self.warning,
            "params": self.params,
            "model_evals": self.model_evals,
            "elapsed_s": round(self.elapsed_s, 4),
        }
        if self.input is not None:
            out["input"] = self.input
        if self.curve is not None:
            out["curve"] = {"name": self.curve_names[0], "x": _nums(self.curve[0]), "y": _nums(self.curve[1])}
        if self.baseline_curve is not None:
            out["baseline_curve"] = {"name": self.curve_names[1], "x": _nums(self.baseline_curve[0]),
                                     "y": _nums(self.baseline_curve[1])}
        if self.details:
            out["details"] = {k: (_nums(v) if isinstance(v, (list, tuple, np.ndarray)) else _num(v)
                                  if isinstance(v, (float, np.floating)) else v) for k, v in self.details.items()}
        return out


def _num(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _nums(values) -> list[float]:
    return [round(float(v), 6) for v in values]


REGISTRY: dict[str, Metric] = {}


class Metric:
    """Subclass, set the class attributes, implement :meth:`compute`, decorate with
    :func:`register`."""

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    paper: ClassVar[str] = ""
    needs: ClassVar[frozenset[Needs]] = frozenset({Needs.PREDICT})
    direction: ClassVar[Direction] = Direction.HIGHER
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.IMAGE, Modality.ROWS})
    Params: ClassVar[type]

    def params(self, values: dict[str, Any] | None = None) -> Any:
        return parse_params(self.Params, values, self.name)

    def param_infos(self):
        return param_infos(self.Params)

    def planned_evals(self, params: Any, rerun_evals: int | None, weight_layers: int) -> int | None:
        """Model evaluations :meth:`compute` will make with ``params`` (parsed), given
        what re-running the explainer once costs (``rerun_evals``; None when the
        method cannot tell) and how many weight layers the model has. None: unknown."""
        return None

    needs_gradients_of_method: ClassVar[bool] = False  # True: its evaluations are the method's re-runs

    def compute(self, task: MetricInput, params: Any) -> MetricResult:
        raise NotImplementedError

    def __call__(self, task: MetricInput, params: dict[str, Any] | Any | None = None) -> MetricResult:
        """Check the input, run :meth:`compute`, and stamp cost and params on the result."""
        if task.modality not in self.modalities:
            kinds = " and ".join(sorted(m.value for m in self.modalities))
            raise InputError(f"metric {self.name} works on {kinds}, not on {task.modality.value}")
        if Needs.EXPLAIN in self.needs and task.explain is None:
            raise InputError(f"metric {self.name} needs to re-run the explainer, which this caller cannot do")
        parsed = params if isinstance(params, self.Params) else self.params(params)
        evals_before = task.evals
        start = time.perf_counter()
        result = self.compute(task, parsed)
        result.elapsed_s = time.perf_counter() - start
        result.model_evals = task.evals - evals_before
        result.params = asdict(parsed)
        return result

    def result(self, value: float, **kwargs: Any) -> MetricResult:
        return MetricResult(self.name, self.label, float(value), self.direction, **kwargs)


def register(cls: type[Metric]) -> type[Metric]:
    REGISTRY[cls.name] = cls()
    return cls


def features(x: np.ndarray, modality: Modality) -> np.ndarray:
    """The input as F x C: one row per pixel (C channels) or per feature (C = 1)."""
    if modality is Modality.IMAGE:
        return x.reshape(-1, x.shape[-1])
    return x.reshape(-1, 1)


def importance(attribution: np.ndarray) -> np.ndarray:
    """The attribution as one score per feature (pixels flattened row-major)."""
    return np.asarray(attribution, np.float64).reshape(-1)


def perturbed(task: MetricInput, changed: np.ndarray, x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """The perturb step every removal metric shares: one input per row of
    ``changed`` (M x F bool), its changed features taken from ``fill`` and the
    others from ``x`` (both F x C, see :func:`features`); M inputs shaped like
    ``task.x``, ready for :meth:`MetricInput.scores`."""
    batch = np.where(np.asarray(changed, bool)[..., None], fill[None], x[None])
    return batch.astype(np.float32).reshape(-1, *np.shape(task.x))


def explain_each(task: MetricInput, runs: list[tuple[np.ndarray, Callable[[], Any] | None]],
                 what: Callable[[int], str]) -> list[np.ndarray]:
    """The re-explain loop the sanity metrics share: the method re-run on each
    (input, model maker or None for the original model) in turn, with progress
    (``what(i)`` names run i). A model is made just before its run, so one
    randomised copy is alive at a time. Returns the new maps, float64."""
    maps = []
    for i, (x, make) in enumerate(runs):
        task.tell(i / len(runs), what(i))
        maps.append(task.explain_again(np.asarray(x, np.float32), None if make is None else make()))
    return maps
