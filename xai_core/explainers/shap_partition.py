"""SHAP Partition explainer with an image masker (Lundberg & Lee 2017,
arXiv:1705.07874; Owen values over a hierarchy of pixel blocks).

The Shapley estimation is shap's own ``Partition`` explainer; our part is a fast
batched model call (no autograd, channels-last) and a seeded, reported budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Context, Explainer, RawAttribution, channel_sum, param, register


@dataclass(frozen=True)
class ShapPartitionParams:
    max_evals: int = param(500, low=50, high=50000, help="model evaluations shap may spend")
    masker: str = param(
        "blur", choices=("blur", "inpaint_telea", "inpaint_ns"), help="how masked pixels are filled"
    )
    blur_fraction: float = param(
        0.5, low=0.05, high=1.0, step=0.05, help="blur kernel as a fraction of the image side (blur masker)"
    )


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

        np.random.seed(ctx.seed)
        explainer = shap.explainers.Partition(f, masker)
        result = explainer(x[None], max_evals=params.max_evals, batch_size=ctx.batch_size, silent=True)
        raw = np.asarray(result.values[0][..., 0], np.float32)  # H x W x C
        base_value = float(np.ravel(result.base_values)[0])
        return RawAttribution(channel_sum(raw), raw=raw, extras={"base_value": base_value})
