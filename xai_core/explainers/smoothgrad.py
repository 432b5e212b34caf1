"""SmoothGrad: gradients averaged over noisy copies (Smilkov et al. 2017, arXiv:1706.03825)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Capability
from .base import Context, Explainer, RawAttribution, channel_max_abs, channel_sum, param, register


@dataclass(frozen=True)
class SmoothGradParams:
    samples: int = param(25, low=1, high=500, help="noisy copies averaged")
    noise_level: float = param(
        0.15, low=0.0, high=1.0, step=0.01,
        help="noise std as a fraction of the input range (the paper uses 0.1-0.2)",
    )
    squared: bool = param(False, help="average squared gradients (SmoothGrad-Squared)")
    absolute: bool = param(True, help="max |average| over channels; off: signed channel sum")


@register
class SmoothGrad(Explainer):
    name = "smoothgrad"
    label = "SmoothGrad"
    description = "Saliency averaged over copies of the image with Gaussian noise: less speckle."
    paper = "Smilkov et al., 2017, SmoothGrad: removing noise by adding noise"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})
    Params = SmoothGradParams
    stochastic = True
    slow = True

    def run(self, ctx: Context, params: SmoothGradParams) -> RawAttribution:
        x = ctx.image
        sigma = params.noise_level * 1.0  # canonical inputs span [0, 1]
        total = np.zeros_like(x, dtype=np.float64)
        for start, stop in ctx.chunks(params.samples):
            noise = ctx.rng.normal(0.0, sigma, size=(stop - start, *x.shape)).astype(np.float32)
            grads, _ = ctx.gradients(x[None] + noise)
            total += (grads.astype(np.float64) ** 2 if params.squared else grads).sum(0)
            ctx.progress(stop / params.samples, f"{stop}/{params.samples} noisy samples")
        raw = (total / params.samples).astype(np.float32)
        attribution = channel_max_abs(raw) if params.absolute else channel_sum(raw)
        return RawAttribution(attribution, raw=raw, extras={"sigma": sigma, "signed": not params.absolute})
