"""Expected gradients, the algorithm of shap's GradientExplainer
(Erion et al. 2021, arXiv:1906.10670; Lundberg & Lee 2017).

Each sample draws a background image b and a point t ~ U(0, 1) and evaluates
``grad f(b + t (x - b)) * (x - b)``; the mean over samples estimates SHAP values
with the background as the reference distribution. Written on the adapter's
gradient primitive so PyTorch and Keras share it; the per-pixel variance of the
estimate is returned as ``extras['variance']``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Capability
from .base import Context, Explainer, RawAttribution, fill_image, param, per_input, register


@dataclass(frozen=True)
class ShapGradientParams:
    samples: int = param(64, low=4, high=2000, help="gradient samples (shap's nsamples)")
    background: str = param(
        "blur_black", choices=("blur_black", "blur", "black", "gray", "noise"),
        help="reference images: blurred copies of the image and/or constant images",
    )
    background_size: int = param(8, low=1, high=1000, help="images in the background set")
    local_smoothing: float = param(
        0.0, low=0.0, high=1.0, step=0.01, help="std of noise added to the image (shap's local_smoothing)"
    )


def background_set(image: np.ndarray, kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n reference images: blurred at increasing strength, constant, or noise."""
    side = max(image.shape[:2])
    out = []
    for i in range(n):
        if kind == "noise":
            out.append(rng.uniform(0, 1, size=image.shape).astype(np.float32))
        elif kind in ("black", "gray"):
            out.append(fill_image(image, kind))
        elif kind == "blur_black" and i % 2 == 1:
            out.append(fill_image(image, "black"))
        else:
            step = i // 2 if kind == "blur_black" else i
            out.append(fill_image(image, "blur", sigma=side / 32 * (1.6**step)))
    return np.stack(out)


@register
class ShapGradient(Explainer):
    name = "shap_gradient"
    label = "SHAP expected gradients"
    description = "SHAP values by expected gradients against a background set (shap's GradientExplainer algorithm)."
    paper = "Erion et al., 2021, Improving performance of deep learning models with axiomatic attribution priors and expected gradients"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})
    Params = ShapGradientParams
    stochastic = True
    slow = True
    several_inputs = True

    def run(self, ctx: Context, params: ShapGradientParams) -> RawAttribution:
        xs = ctx.inputs
        # an image's references follow params.background; a feature vector's are zeros
        bgs = [background_set(x, params.background, params.background_size, ctx.rng) if k == "image"
               else np.zeros((params.background_size, *x.shape), np.float32)
               for x, k in zip(xs, ctx.kinds, strict=True)]
        totals = [np.zeros_like(x, dtype=np.float64) for x in xs]
        totals_sq = [np.zeros_like(x, dtype=np.float64) for x in xs]
        for start, stop in ctx.chunks(params.samples):
            n = stop - start
            picks = ctx.rng.integers(0, params.background_size, size=n)
            t = ctx.rng.uniform(0, 1, size=n).astype(np.float32)
            deltas, path = [], []
            for x, bg in zip(xs, bgs, strict=True):
                reps = np.repeat(x[None], n, axis=0)
                if params.local_smoothing > 0:
                    reps = reps + ctx.rng.normal(0, params.local_smoothing, size=reps.shape).astype(np.float32)
                delta = reps - bg[picks]
                deltas.append(delta)
                path.append(bg[picks] + t.reshape(-1, *[1] * x.ndim) * delta)
            grads, _ = ctx.gradient_parts(path)
            for total, total_sq, g, delta in zip(totals, totals_sq, grads, deltas, strict=True):
                sample = g.astype(np.float64) * delta
                total += sample.sum(0)
                total_sq += (sample**2).sum(0)
            ctx.progress(stop / params.samples, f"{stop}/{params.samples} samples")
        means = [total / params.samples for total in totals]
        # the variance of the mean (per-sample variance / samples), summed over channels
        variances = [np.maximum(sq / params.samples - m**2, 0) / params.samples for sq, m in zip(totals_sq, means, strict=True)]
        raws = [m.astype(np.float32) for m in means]
        shown_var = [v.sum(-1) if k == "image" else v for v, k in zip(variances, ctx.kinds, strict=True)]
        return per_input(
            raws, ctx.kinds,
            extras={"variance": shown_var[0].astype(np.float32), "background_size": params.background_size,
                    "variances": [v.astype(np.float32) for v in shown_var]},
        )
