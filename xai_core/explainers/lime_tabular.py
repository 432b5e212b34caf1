"""LIME on table rows: a weighted linear model fitted on perturbed rows drawn from
the table's statistics, by the ``lime`` package (Ribeiro et al. 2016).

A module of its own beside ``lime_image.py`` because the algorithms differ
(superpixels there, lime_tabular's discretised statistics here); both are
:class:`~xai_core.explainers.base.Explainer` subclasses with typed parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_core.explainers.base import Context, Explainer, RawAttribution, param, register
from xai_core.explainers.notes import surrogate_fit
from xai_core.types import InputError


@dataclass(frozen=True)
class LimeTabularParams:
    samples: int = param(2000, low=50, high=100_000, help="perturbed rows the local linear model is fitted on")
    discretize: bool = param(True, help="explain 'value in this quartile/decile' features (LIME's default)")
    discretizer: str = param("quartile", choices=("quartile", "decile"), help="bins for discretized features")
    kernel_width: float = param(0.0, low=0.0, high=1000.0, help="proximity kernel width; 0 = 0.75 * sqrt(features)")


@register
class LimeTabular(Explainer):
    key = "lime_tabular"
    name = "lime"
    input_kind = "vector"
    rank = 10
    label = "LIME"
    description = ("A weighted linear model fitted on perturbed rows drawn from the table's statistics; "
                   "the weights are the attributions (local, not additive to the output).")
    paper = "Ribeiro, Singh & Guestrin, 2016, \"Why Should I Trust You?\" (arXiv:1602.04938)"
    Params = LimeTabularParams
    notes = (surrogate_fit,)
    stochastic = True

    def planned_evals(self, params: LimeTabularParams, adapter) -> int:
        return params.samples  # the perturbed rows, the row itself among them

    def prepare(self, ctx: Context, params: LimeTabularParams) -> Any:
        from lime.lime_tabular import LimeTabularExplainer

        if ctx.data.n_rows < 2:
            raise InputError("lime needs a table of at least 2 rows for its statistics")
        return LimeTabularExplainer(
            ctx.data.x.astype(np.float64),
            mode="regression",
            feature_names=list(ctx.data.feature_names),
            discretize_continuous=params.discretize,
            discretizer=params.discretizer,
            kernel_width=params.kernel_width or None,
            random_state=fresh_random_state(ctx.seed),
        )

    def run(self, ctx: Context, params: LimeTabularParams) -> RawAttribution:
        state, x = ctx.prepared, ctx.image
        # a fresh seeded RandomState per row: the same row gives the same answer
        # whether explained alone or among many
        rs = fresh_random_state(ctx.seed)
        state.random_state = rs
        state.base.random_state = rs
        if state.discretizer is not None:
            state.discretizer.random_state = rs
        n = ctx.data.n_features
        exp = state.explain_instance(
            x.astype(np.float64), ctx.predict_target, num_features=n, num_samples=params.samples
        )
        attributions = np.zeros(n, np.float64)
        for index, weight in exp.local_exp[1]:
            attributions[int(index)] = weight
        return RawAttribution(
            attributions,
            extras={
                "intercept": float(np.ravel(exp.intercept[1])[0]),
                "local_prediction": float(np.ravel(exp.local_pred)[0]),
                "r2_score": float(exp.score),
            },
        )


def fresh_random_state(seed: int) -> np.random.RandomState:
    return np.random.RandomState(seed % 2**32)
