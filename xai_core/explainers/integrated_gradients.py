"""Integrated Gradients (Sundararajan, Taly & Yan 2017, arXiv:1703.01365).

The path integral from a baseline to the image is computed with Gauss-Legendre
quadrature (as captum does by default), streamed in batches so that memory stays
flat whatever the number of steps. The convergence delta
``sum(attribution) - (f(x) - f(baseline))`` is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Capability
from .base import Context, Explainer, RawAttribution, fill_image, param, per_input, register


@dataclass(frozen=True)
class IntegratedGradientsParams:
    steps: int = param(50, low=2, high=2048, help="integration points along the path")
    baseline: str = param(
        "black", choices=("black", "white", "gray", "blur", "noise"),
        help="the reference image the path starts from",
    )
    method: str = param(
        "gausslegendre", choices=("gausslegendre", "riemann_trapezoid", "riemann_middle"),
        help="quadrature rule for the path integral",
    )


def quadrature(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) on [0, 1] whose weighted sum approximates the integral."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if method == "riemann_trapezoid":
        alphas = np.linspace(0, 1, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    alphas = (np.arange(steps) + 0.5) / steps
    return alphas, np.full(steps, 1.0 / steps)


def make_baseline(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "noise":
        return rng.uniform(0, 1, size=image.shape).astype(np.float32)
    return fill_image(image, kind)


@register
class IntegratedGradients(Explainer):
    name = "integrated_gradients"
    label = "Integrated Gradients"
    description = "Gradients integrated along a straight path from a baseline image; attributions add up to the score change."
    paper = "Sundararajan et al., 2017, Axiomatic Attribution for Deep Networks"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})
    Params = IntegratedGradientsParams
    slow = True
    several_inputs = True

    def run(self, ctx: Context, params: IntegratedGradientsParams) -> RawAttribution:
        xs = ctx.inputs
        # an image's baseline is params.baseline; a feature vector's is all zeros
        bases = [make_baseline(x, params.baseline, ctx.rng) if k == "image" else np.zeros_like(x)
                 for x, k in zip(xs, ctx.kinds, strict=True)]
        alphas, weights = quadrature(params.steps, params.method)
        diffs = [x - b for x, b in zip(xs, bases, strict=True)]
        totals = [np.zeros_like(x, dtype=np.float64) for x in xs]
        for start, stop in ctx.chunks(params.steps):
            a = alphas[start:stop].astype(np.float32)
            path = [b[None] + a.reshape(-1, *[1] * d.ndim) * d[None] for b, d in zip(bases, diffs, strict=True)]
            grads, _ = ctx.gradient_parts(path)
            for total, g in zip(totals, grads, strict=True):
                total += np.tensordot(weights[start:stop], g, axes=(0, 0))
            ctx.progress(stop / params.steps, f"{stop}/{params.steps} steps")
        raws = [(t * d).astype(np.float32) for t, d in zip(totals, diffs, strict=True)]
        _, ends = ctx.gradient_parts([np.stack([x, b]) for x, b in zip(xs, bases, strict=True)])
        delta = float(sum(r.sum(dtype=np.float64) for r in raws) - (ends[0] - ends[1]))
        return per_input(
            raws, ctx.kinds,
            extras={"convergence_delta": delta, "score": float(ends[0]), "baseline_score": float(ends[1])},
        )
