"""Integrated Gradients on table rows: gradients integrated along a straight path
from a baseline row (Sundararajan et al. 2017), with the image method's quadrature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import Capability, UnsupportedError
from .base import param, register
from .integrated_gradients import quadrature
from .rows import RowAttribution, RowContext, RowExplainer


@dataclass(frozen=True)
class TabularIGParams:
    steps: int = param(64, low=2, high=4096, help="integration points along the path")
    baseline: str = param("mean", choices=("mean", "zeros"),
                          help="the reference row the path starts from: the table's feature means, or all zeros")
    method: str = param("gausslegendre", choices=("gausslegendre", "riemann_trapezoid", "riemann_middle"),
                        help="quadrature rule for the path integral")


@register
class TabularIntegratedGradients(RowExplainer):
    key = "integrated_gradients_tabular"
    name = "integrated_gradients"
    rank = 30
    label = "Integrated Gradients"
    description = ("Gradients integrated along a straight path from a baseline row to the row; "
                   "attributions add up to output(row) - output(baseline), up to the convergence delta.")
    paper = "Sundararajan, Taly & Yan, 2017, Axiomatic Attribution for Deep Networks (arXiv:1703.01365)"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})
    Params = TabularIGParams

    def setup(self, ctx: RowContext, params: TabularIGParams) -> Any:
        if not ctx.model.supports(Capability.INPUT_GRADIENTS):
            raise UnsupportedError(f"integrated_gradients needs gradients, which {ctx.model.name} does not provide")
        if params.baseline == "mean":
            return ctx.data.feature_means()
        return np.zeros(ctx.data.n_features, np.float32)

    def explain(self, ctx: RowContext, params: TabularIGParams, state: Any, x: np.ndarray) -> RowAttribution:
        base = np.asarray(state, np.float32)
        alphas, weights = quadrature(params.steps, params.method)
        diff = (x - base).astype(np.float32)
        path = base[None] + alphas.astype(np.float32)[:, None] * diff[None]
        grads, _ = ctx.gradients(path)
        attributions = (weights @ grads.astype(np.float64)) * diff.astype(np.float64)
        _, ends = ctx.gradients(np.stack([x.astype(np.float32), base]))
        output, base_value = float(ends[0]), float(ends[1])
        delta = float(attributions.sum() - (output - base_value))
        return RowAttribution(
            attributions, base_value,
            {"output": output, "convergence_delta": delta, "baseline": params.baseline},
        )
