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
from .base import Context, Explainer, RawAttribution, channel_sum, fill_image, param, register


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

    def run(self, ctx: Context, params: ShapGradientParams) -> RawAttribution:
        x = ctx.image
        bg = background_set(x, params.background, params.background_size, ctx.rng)
        total = np.zeros_like(x, dtype=np.float64)
        total_sq = np.zeros_like(x, dtype=np.float64)
        for start, stop in ctx.chunks(params.samples):
            n = stop - start
            picks = ctx.rng.integers(0, len(bg), size=n)
            t = ctx.rng.uniform(0, 1, size=(n, 1, 1, 1)).astype(np.float32)
            xs = np.repeat(x[None], n, axis=0)
            if params.local_smoothing > 0:
                xs = xs + ctx.rng.normal(0, params.local_smoothing, size=xs.shape).astype(np.float32)
            delta = xs - bg[picks]
            grads, _ = ctx.gradients(bg[picks] + t * delta)
            sample = grads.astype(np.float64) * delta
            total += sample.sum(0)
            total_sq += (sample**2).sum(0)
            ctx.progress(stop / params.samples, f"{stop}/{params.samples} samples")
        mean = total / params.samples
        var = np.maximum(total_sq / params.samples - mean**2, 0) / params.samples
        raw = mean.astype(np.float32)
        return RawAttribution(
            channel_sum(raw), raw=raw,
            extras={"variance": var.sum(-1).astype(np.float32), "background_size": len(bg)},
        )
