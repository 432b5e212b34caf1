"""SHAP Partition explainer with an image masker (Lundberg & Lee 2017,
arXiv:1705.07874; Owen values over a hierarchy of pixel blocks).

The Shapley estimation is shap's own ``Partition`` explainer; our part is a fast
batched model call (no autograd, channels-last) and a seeded, reported budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Context, Explainer, RawAttribution, channel_sum, param, register
from .stable_budget import StableBudget, round_budgets


@dataclass(frozen=True)
class ShapPartitionParams:
    max_evals: int = param(500, low=50, high=50000, help="model evaluations shap may spend")
    masker: str = param(
        "blur", choices=("blur", "inpaint_telea", "inpaint_ns"), help="how masked pixels are filled"
    )
    blur_fraction: float = param(
        0.5, low=0.05, high=1.0, step=0.05, help="blur kernel as a fraction of the image side (blur masker)"
    )
    tolerance: float = param(
        0.0, low=0.0, high=1.0, step=0.01,
        help="stop early: run at doubling budgets from max_evals/8 until the top-10 of an 8x8 grid of blocks "
             "keeps its ranking and moves by at most this fraction of the largest block (0: one run at max_evals)",
    )


GRID = 8  # blocks per side whose values the stability check compares


def block_sums(attribution: np.ndarray, grid: int = GRID) -> np.ndarray:
    """H x W map -> grid x grid sums over near-equal blocks."""
    rows = np.linspace(0, attribution.shape[0], grid + 1).astype(int)[:-1]
    cols = np.linspace(0, attribution.shape[1], grid + 1).astype(int)[:-1]
    return np.add.reduceat(np.add.reduceat(attribution, rows, axis=0), cols, axis=1)


def masker_spec(params: ShapPartitionParams, h: int, w: int) -> str:
    if params.masker == "blur":
        kh = max(1, int(round(h * params.blur_fraction)))
        kw = max(1, int(round(w * params.blur_fraction)))
        return f"blur({kh},{kw})"
    return params.masker


@register
class ShapPartition(Explainer):
    name = "shap_partition"
    label = "SHAP Partition (blur masker)"
    description = "Shapley values of pixel blocks, hiding blocks by blurring them (shap's Partition explainer)."
    paper = "Lundberg & Lee, 2017, A Unified Approach to Interpreting Model Predictions"
    Params = ShapPartitionParams
    slow = True

    def run(self, ctx: Context, params: ShapPartitionParams) -> RawAttribution:
        import shap

        x = ctx.image
        h, w, c = x.shape
        masker = shap.maskers.Image(masker_spec(params, h, w), x.shape)
        target = ctx.target

        def f(batch: np.ndarray) -> np.ndarray:
            probs = ctx.predict(np.asarray(batch, np.float32))
            ctx.progress(min(1.0, ctx.model_evals / params.max_evals), f"{ctx.model_evals} evaluations")
            return probs[:, target : target + 1]

        explainer = shap.explainers.Partition(f, masker)

        def owen_values(budget: int) -> tuple[np.ndarray, float]:
            np.random.seed(ctx.seed)
            result = explainer(x[None], max_evals=budget, batch_size=ctx.batch_size, silent=True)
            return np.asarray(result.values[0][..., 0], np.float32), float(np.ravel(result.base_values)[0])

        check = StableBudget(params.tolerance)
        if params.tolerance == 0:
            budgets = [params.max_evals]
        else:
            budgets = round_budgets(params.max_evals, max(64, params.max_evals // 8))
        previous = None
        for budget in budgets:
            raw, base_value = owen_values(budget)
            grid = block_sums(channel_sum(raw))
            change = np.abs(grid - previous) if previous is not None else np.full_like(grid, np.inf)
            previous = grid
            if check.settled(grid, change):
                break
        extras = {"base_value": base_value, **check.extras(budget, params.max_evals)}
        return RawAttribution(channel_sum(raw), raw=raw, extras=extras)
