"""What checking results with the trust metrics will cost, before it starts: each
metric's planned model evaluations (the metric's own, plus the method's per re-run)
priced by the model's measured time per evaluation (:mod:`xai_core.service.estimate`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xai_core.adapters.base import ModelAdapter
from xai_core.explainers import get_explainer
from xai_core.metrics import get_metric
from xai_core.service.estimate import (
    Estimate,
    explain_evals,
    known_params,
    known_timing,
    measure,
    observed_rate,
)


def estimate_metrics(adapter: ModelAdapter, items: Sequence[np.ndarray] | None,
                     explained: Sequence[tuple[str, dict[str, Any]]], names: Sequence[str],
                     params: dict[str, dict[str, Any]], *, measure_now: bool = True) -> dict[str, Estimate]:
    """Per metric, the cost of checking every result of ``explained`` ((method,
    params) of each explanation) with it; the metrics that re-run the method pay
    that method's evaluations (target given) once per re-run."""

    layers = len(adapter.weight_layers()) if any(get_metric(n).needs_gradients_of_method for n in names) else 0
    size = int(adapter.default_batch_size)
    out: dict[str, Estimate] = {}
    for name in names:
        metric = get_metric(name)
        parsed = metric.params(params.get(name))
        total = Estimate(0, 0.0)
        for method, method_params in explained:
            rerun, at_most = explain_evals(adapter, method, known_params(method, method_params))
            evals = metric.planned_evals(parsed, rerun, layers)
            gradients = metric.needs_gradients_of_method and get_explainer(method).needs_gradients
            timing = known_timing(adapter, gradients)
            if timing is None and measure_now and items is not None and evals is not None:
                timing = measure(adapter, items, gradients)
            seconds = timing.seconds(evals, size) if timing is not None and evals is not None else None
            rate = observed_rate(adapter, method) if metric.needs_gradients_of_method else None
            if rate is not None and evals is not None:  # its re-runs cost what the method's runs did
                seconds = evals * rate
            total = total + Estimate(evals, seconds, at_most and metric.needs_gradients_of_method)
        out[name] = total
    return out
