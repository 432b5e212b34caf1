"""Kernel SHAP on table rows: Shapley values by shap's KernelExplainer, hidden
features replaced by background rows (Lundberg & Lee 2017)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backgrounds import ROW_BACKGROUND_FILES, load_background_rows
from .base import param, register
from .rows import RowAttribution, RowContext, RowExplainer


@dataclass(frozen=True)
class KernelShapParams:
    nsamples: int = param(500, low=16, high=100_000, help="coalitions evaluated per row")
    background_size: int = param(50, low=1, high=1000, help="background rows that stand in for a hidden feature")
    background: str = param("kmeans", choices=("kmeans", "sample"),
                            help="summarise the table with k-means (shap.kmeans) or a seeded random sample")
    l1_reg: str = param("off", choices=("off", "aic", "bic"),
                        help="feature selection before the fit; off keeps every feature")
    background_file: str = param("", file_types=ROW_BACKGROUND_FILES, help="your own background rows: a CSV with the feature columns, or an "
                                          ".npy array (at most 1000 rows, sampled with the seed); "
                                          "summarised like the table")


@register
class KernelShap(RowExplainer):
    name = "kernel_shap"
    rank = 20
    label = "Kernel SHAP"
    description = ("Shapley values estimated by a weighted linear regression over feature coalitions, "
                   "hidden features replaced by background rows; base value + attributions = output.")
    paper = "Lundberg & Lee, 2017, A Unified Approach to Interpreting Model Predictions (arXiv:1705.07874)"
    Params = KernelShapParams
    stochastic = True
    slow = True

    def setup(self, ctx: RowContext, params: KernelShapParams) -> Any:
        import shap

        if params.background_file:
            data = load_background_rows(params.background_file, list(ctx.data.feature_names), ctx.seed)
        else:
            data = ctx.data.x
        data = data.astype(np.float64)
        k = min(params.background_size, len(data))
        if params.background == "kmeans" and k < len(data):
            background = shap.kmeans(data, k)
        else:
            rng = np.random.default_rng(ctx.seed)
            background = data[np.sort(rng.choice(len(data), size=k, replace=False))]
        return shap.KernelExplainer(ctx.predict_target, background)

    def explain(self, ctx: RowContext, params: KernelShapParams, state: Any, x: np.ndarray) -> RowAttribution:
        saved = np.random.get_state()  # shap samples coalitions with the global NumPy RNG
        np.random.seed(ctx.seed % 2**32)
        try:
            values = state.shap_values(
                x.astype(np.float64)[None], nsamples=params.nsamples,
                l1_reg=False if params.l1_reg == "off" else params.l1_reg, silent=True,
            )
        finally:
            np.random.set_state(saved)
        attributions = np.asarray(values, np.float64).reshape(-1)
        base = float(np.ravel(state.expected_value)[0])
        output = float(ctx.predict_target(x[None])[0])
        return RowAttribution(
            attributions, base,
            {"output": output, "additivity_error": float(base + attributions.sum() - output)},
        )
