"""Know the cost before paying it: a run's model evaluations, times the measured
time of one evaluation on this model.

Each method declares how many evaluations its parameters will make
(:meth:`Explainer.planned_evals`), each metric likewise
(:meth:`Metric.planned_evals`, given what one re-run of the method costs). The
time of one evaluation is measured once per model and kept with it (a forward
batch on the fast forward path the gradient-free methods take, and a backward
batch for the methods that need gradients, through the
model worker when the model runs there, so the boundary is part of the price),
as ``a + b * n`` per call of ``n`` items: ``a`` the fixed cost of a call, ``b``
the cost of an item. An evaluation is one input through the model; a run of
``E`` evaluations in batches of ``B`` is priced ``ceil(E / B) * a + E * b``. Once a run of a method has finished on a model, its
own cost per evaluation (the method's work between evaluations included, such as
LIME's perturbed images) prices that method on that model instead
(:func:`observe`).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_core.adapters.base import ModelAdapter

PROBE_BATCH = 4  # items of the larger probe batch (at most the model's batch size)
ROW_PROBE = 1024  # ... for table rows


@dataclass(frozen=True)
class Timing:
    """Seconds per call of a model primitive: ``fixed + per_item * n`` for ``n`` items."""

    fixed: float
    per_item: float

    def seconds(self, evals: int, batch_size: int) -> float:
        if evals <= 0:
            return 0.0
        return math.ceil(evals / max(1, batch_size)) * self.fixed + evals * self.per_item


@dataclass(frozen=True)
class Estimate:
    """What a run will cost: ``evals`` model evaluations (None: a method that cannot
    tell), ``seconds`` at the measured rate (None: not measured or not known);
    ``at_most`` when a budget is a maximum the run may stop short of."""

    evals: int | None
    seconds: float | None
    at_most: bool = False

    def __add__(self, other: Estimate) -> Estimate:
        evals = None if self.evals is None or other.evals is None else self.evals + other.evals
        seconds = None if self.seconds is None or other.seconds is None else self.seconds + other.seconds
        return Estimate(evals, seconds, self.at_most or other.at_most)

    @property
    def words(self) -> str:
        """'~12 s (1,001 model evaluations)', or what is known of it."""
        if self.evals is None:
            return "time unknown (the method cannot count its model evaluations ahead)"
        noun = "model evaluation" if self.evals == 1 else "model evaluations"
        evals = f"{'at most ' if self.at_most else ''}{self.evals:,} {noun}"
        if self.seconds is None:
            return evals
        return f"~{format_seconds(self.seconds)} ({evals})"

    @property
    def line(self) -> str:
        """The command line's line: 'estimated ~12 s (1,001 model evaluations)'."""
        return f"estimated {self.words}"


def format_seconds(seconds: float) -> str:
    """'0.004 s', '0.4 s', '12 s', '1 min 05 s', '2 h 03 min'."""
    seconds = max(0.0, float(seconds))
    if 0 < seconds < 0.05:  # '0.0 s' would read as free
        return f"{seconds:.1g} s"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 9.5 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


_TIMINGS: weakref.WeakKeyDictionary[Any, dict[str, Timing]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def known_timing(adapter: ModelAdapter, gradients: bool) -> Timing | None:
    """The timing measured earlier on this model, if any (nothing runs)."""
    with _LOCK:
        return _TIMINGS.get(adapter, {}).get("backward" if gradients else "forward")


_OBSERVED: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()


def observe(adapter: ModelAdapter, method: str, evals: int, seconds: float) -> None:
    """Remember what a finished run of ``method`` on this model cost per evaluation
    (the method's own work, such as LIME's perturbed images, included); later
    estimates of that method on this model use it."""
    if evals > 0 and seconds > 0:
        with _LOCK:
            _OBSERVED.setdefault(adapter, {})[method] = seconds / evals


def observed_rate(adapter: ModelAdapter, method: str) -> float | None:
    """Seconds per evaluation that finished runs of ``method`` on this model took."""
    with _LOCK:
        return _OBSERVED.get(adapter, {}).get(method)


def measure(adapter: ModelAdapter, items: Sequence[np.ndarray], gradients: bool, probe: int = PROBE_BATCH) -> Timing:
    """Time one evaluation of ``adapter`` on ``items`` (one canonical item per model
    input): a warm-up call, then calls of 1 and of ``probe`` items (forward, or
    forward and backward of the predicted class's score); kept with the model.
    Table rows cost so little each that they are timed in a large probe batch."""
    kind = "backward" if gradients else "forward"
    known = known_timing(adapter, gradients)
    if known is not None:
        return known
    big = max(2, min(probe, int(adapter.default_batch_size)))
    if not gradients and getattr(adapter, "engine", "") != "worker":
        # gradient-free methods run on the fast forward path: time that one (a model in
        # a worker takes its own path there, and is timed through the worker as it is)
        from xai_core.adapters.fast_forward import prepare

        try:
            prepare(adapter, np.asarray(items[0]))
        except Exception:  # noqa: BLE001 - the model's own path is timed instead
            pass

    def batch(n: int):
        return adapter.join([np.repeat(np.asarray(x)[None], n, axis=0) for x in items])

    def call(n: int) -> float:
        x = batch(n)
        start = time.perf_counter()
        if gradients:
            adapter.input_gradients(x, 0, n)
        else:
            adapter.predict(x, n)
        return time.perf_counter() - start

    call(1)  # warm-up: first-call costs (graph building, caches) are not per evaluation
    one, many = min(call(1), call(1)), call(big)
    if many < 0.5:  # a fast model: the least of a few calls, as noise is most of one
        many = min(many, call(big), call(big))
    per_item = max(0.0, (many - one) / (big - 1))
    timing = Timing(fixed=max(0.0, one - per_item), per_item=per_item if per_item > 0 else many / big)
    with _LOCK:
        _TIMINGS.setdefault(adapter, {})[kind] = timing
    return timing


def explain_evals(adapter: ModelAdapter, method: str, params: dict[str, Any] | None = None, *,
                  classes: int = 1) -> tuple[int | None, bool]:
    """(model evaluations, whether the budget is a maximum) of explaining one input
    with ``method`` for ``classes`` classes: the method's own evaluations plus the
    service's prediction pass (single-pass methods take the probabilities from
    their own pass; several classes are ranked by one prediction first)."""
    from xai_core.explainers import get_explainer

    explainer = get_explainer(method)
    parsed = explainer.params(params)
    own = explainer.planned_evals(parsed, adapter)
    if own is None:
        return None, False
    predict = 0 if explainer.single_pass and classes == 1 else 1
    at_most = float(getattr(parsed, "tolerance", 0.0) or 0.0) > 0
    return own * classes + predict, at_most


def estimate_explain(adapter: ModelAdapter, items: Sequence[np.ndarray] | None, method: str,
                     params: dict[str, Any] | None = None, *, classes: int = 1,
                     batch_size: int | None = None, measure_now: bool = True) -> Estimate:
    """The cost of :func:`xai_core.service.explain` (``classes`` > 1:
    :func:`~xai_core.service.explain_classes`) before running it. ``items``: the
    prepared inputs (:func:`~xai_core.service.prepare_inputs`), used to time the
    model when it was not timed yet; ``measure_now`` False gives the evaluations
    alone in that case."""
    from xai_core.explainers import get_explainer

    evals, at_most = explain_evals(adapter, method, params, classes=classes)
    gradients = get_explainer(method).needs_gradients
    timing = known_timing(adapter, gradients)
    if timing is None and measure_now and items is not None and evals is not None:
        timing = measure(adapter, items, gradients)
    size = int(batch_size or adapter.default_batch_size)
    seconds = timing.seconds(evals, size) if timing is not None and evals is not None else None
    rate = observed_rate(adapter, method)
    if rate is not None and evals is not None:  # a finished run of it on this model knows better
        seconds = evals * rate
    return Estimate(evals, seconds, at_most)


def estimate_rows(adapter: ModelAdapter, data: Any, rows: Sequence[int], method: str,
                  params: dict[str, Any] | None = None, *, measure_now: bool = True) -> Estimate:
    """The cost of :func:`~xai_core.service.rows.explain_rows` over ``rows`` of
    ``data`` (a TabularData): each row's evaluations plus the method's prepare step
    (once per output explained), priced like an image run by the model's measured
    timing of a batch of rows."""
    from xai_core.explainers import ROW_BATCH, get_explainer

    explainer = get_explainer(method, "vector")
    parsed = explainer.params(params)
    per_row = explainer.planned_evals(parsed, adapter)
    if per_row is None:
        return Estimate(None, None)
    evals = len(rows) * per_row + explainer.planned_prepare_evals(parsed, adapter)
    at_most = float(getattr(parsed, "tolerance", 0.0) or 0.0) > 0
    timing = known_timing(adapter, explainer.needs_gradients)
    if timing is None and measure_now and rows and not adapter.multi_input:
        timing = measure(adapter, [np.asarray(data.x[rows[0]], np.float32)], explainer.needs_gradients,
                         probe=ROW_PROBE)
    seconds = timing.seconds(evals, ROW_BATCH) if timing is not None else None
    rate = observed_rate(adapter, f"{method}:rows")
    if rate is not None:  # a finished run of it on this model knows better
        seconds = evals * rate
    return Estimate(evals, seconds, at_most)


def known_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """An explanation's recorded params, less any its method no longer declares."""
    from xai_core.explainers import get_explainer

    names = {p.name for p in get_explainer(method).param_infos()}
    return {k: v for k, v in (params or {}).items() if k in names}


def total(estimates: dict[str, Estimate] | Sequence[Estimate]) -> Estimate:
    values = list(estimates.values()) if isinstance(estimates, dict) else list(estimates)
    out = Estimate(0, 0.0)
    for e in values:
        out = out + e
    return out
