"""Integrated Gradients on table rows: gradients integrated along a straight path
from a baseline row (Sundararajan et al. 2017), with the image method's quadrature.
With background rows the user gives (``background_file``), each row is a baseline
and the attribution is the mean of the IG values over them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_core.explainers.base import param, register
from xai_core.explainers.integrated_gradients import quadrature
from xai_core.explainers.notes import path_convergence
from xai_core.explainers.rows import RowAttribution, RowContext, RowExplainer
from xai_core.inputs.backgrounds import ROW_BACKGROUND_FILES, load_background_rows
from xai_core.types import Capability, UnsupportedError


@dataclass(frozen=True)
class TabularIGParams:
    steps: int = param(64, low=2, high=4096, help="integration points along the path")
    baseline: str = param("mean", choices=("mean", "zeros"),
                          help="the reference row the path starts from: the table's feature means, or all zeros")
    method: str = param("gausslegendre", choices=("gausslegendre", "riemann_trapezoid", "riemann_middle"),
                        help="quadrature rule for the path integral")


@dataclass(frozen=True)
class TabularIGBackgroundParams(TabularIGParams):
    """The row IG's own parameters: the path's (shared with the conductance methods)
    and a background of baseline rows."""

    background_file: str = param("", file_types=ROW_BACKGROUND_FILES,
                                 help="your own background rows: a CSV with the feature columns, or an .npy N x F "
                                      "array; each row is a baseline and IG is averaged over them (at most "
                                      "background_size rows, sampled with the seed); replaces 'baseline'")
    background_size: int = param(100, low=1, high=1000, help="baseline rows taken from background_file")


BASELINES_AT_ONCE = 64  # baseline rows whose paths go through the model in one gradient call


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
    Params = TabularIGBackgroundParams
    notes = (path_convergence,)

    def setup(self, ctx: RowContext, params: TabularIGParams) -> Any:
        """The baseline rows, B x F: the user's background, or one row (means or zeros)."""
        if not ctx.model.supports(Capability.INPUT_GRADIENTS):
            raise UnsupportedError(f"integrated_gradients needs gradients, which {ctx.model.name} does not provide")
        if getattr(params, "background_file", ""):
            rows = load_background_rows(params.background_file, list(ctx.data.feature_names), ctx.seed)
            return rows[:params.background_size]  # already in a seeded random order
        if params.baseline == "mean":
            return ctx.data.feature_means()[None]
        return np.zeros((1, ctx.data.n_features), np.float32)

    def explain(self, ctx: RowContext, params: TabularIGParams, state: Any, x: np.ndarray) -> RowAttribution:
        """IG from each baseline row, averaged: the paths of up to BASELINES_AT_ONCE
        baselines go through the model in one gradient call."""
        x = x.astype(np.float32)
        bases = np.asarray(state, np.float32).reshape(-1, x.size)
        alphas, weights = quadrature(params.steps, params.method)
        total = np.zeros(x.shape, np.float64)
        for start in range(0, len(bases), BASELINES_AT_ONCE):
            chunk = bases[start:start + BASELINES_AT_ONCE]
            diffs = x[None] - chunk  # B x F
            path = chunk[:, None] + alphas.astype(np.float32)[None, :, None] * diffs[:, None]  # B x S x F
            grads, _ = ctx.gradients(path.reshape(-1, x.size))
            per_base = np.einsum("s,bsf->bf", weights, grads.astype(np.float64).reshape(len(chunk), -1, x.size))
            total += (per_base * diffs.astype(np.float64)).sum(0)
        attributions = total / len(bases)
        _, ends = ctx.gradients(np.concatenate([x[None], bases]))
        output, base_value = float(ends[0]), float(np.mean(ends[1:]))
        delta = float(attributions.sum() - (output - base_value))
        extras = {"output": output, "convergence_delta": delta,
                  "baseline": "background" if len(bases) > 1 else params.baseline}
        if len(bases) > 1:
            extras["background_size"] = len(bases)
        return RowAttribution(attributions, base_value, extras)
