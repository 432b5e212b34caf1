"""Integrated Gradients (Sundararajan, Taly & Yan 2017, arXiv:1703.01365).

The path integral from a baseline to the image is computed with Gauss-Legendre
quadrature (as captum does by default), streamed in batches so that memory stays
flat whatever the number of steps. The convergence delta
``sum(attribution) - (f(x) - f(baseline))`` is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Capability, UnsupportedError
from .at_layer import layer_path_attribution
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
    at: str = param("output", choices=("output", "input"),
                    help="with a layer: attribute to the layer's output or to its input")


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
    """Integrated Gradients at the input, or at a layer (captum's LayerIntegratedGradients:
    the path runs from the baseline image's values at the layer to the image's)."""

    name = "integrated_gradients"
    label = "Integrated Gradients"
    description = "Gradients integrated along a straight path from a baseline image; attributions add up to the score change."
    paper = "Sundararajan et al., 2017, Axiomatic Attribution for Deep Networks"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})
    Params = IntegratedGradientsParams
    slow = True
    several_inputs = True
    accepts_layer = True

    def run(self, ctx: Context, params: IntegratedGradientsParams) -> RawAttribution:
        if ctx.layer:
            return self._at_layer(ctx, params)
        # an image's baseline is params.baseline; a feature vector's is all zeros
        bases = [make_baseline(x, params.baseline, ctx.rng) if k == "image" else np.zeros_like(x)
                 for x, k in zip(ctx.inputs, ctx.kinds, strict=True)]
        return integrate(ctx, bases, params.steps, params.method)

    def _at_layer(self, ctx: Context, params: IntegratedGradientsParams) -> RawAttribution:
        if len(ctx.inputs) > 1:
            raise UnsupportedError("integrated_gradients at a layer explains models with one input")
        base = make_baseline(ctx.image, params.baseline, ctx.rng)
        base_values = ctx.adapter.layer_values(base[None], ctx.layer, params.at)
        alphas, weights = quadrature(params.steps, params.method)
        raw = layer_path_attribution(ctx, base_values, alphas, weights, None, params.at, {})
        ends = ctx.adapter.target_scores(np.stack([ctx.image, base]), ctx.target)
        ctx.model_evals += 3
        raw.extras["convergence_delta"] = float(raw.layer_attribution.sum(dtype=np.float64) - (ends[0] - ends[1]))
        return raw


def integrate(ctx: Context, bases: list[np.ndarray], steps: int, method: str) -> RawAttribution:
    """Integrated Gradients of the target score from ``bases`` (one per input) to the
    inputs, with the convergence delta, the input's score and the baseline's in ``extras``."""
    xs = ctx.inputs
    alphas, weights = quadrature(steps, method)
    diffs = [x - b for x, b in zip(xs, bases, strict=True)]
    totals = [np.zeros_like(x, dtype=np.float64) for x in xs]
    for start, stop in ctx.chunks(steps):
        a = alphas[start:stop].astype(np.float32)
        path = [b[None] + a.reshape(-1, *[1] * d.ndim) * d[None] for b, d in zip(bases, diffs, strict=True)]
        grads, _ = ctx.gradient_parts(path)
        for total, g in zip(totals, grads, strict=True):
            total += np.tensordot(weights[start:stop], g, axes=(0, 0))
        ctx.progress(stop / steps, f"{stop}/{steps} steps")
    raws = [(t * d).astype(np.float32) for t, d in zip(totals, diffs, strict=True)]
    # the two end scores need no gradients: a forward pass on the framework (captum does the same)
    ends = ctx.adapter.target_scores(ctx.adapter.join([np.stack([x, b]) for x, b in zip(xs, bases, strict=True)]),
                                     ctx.target)
    ctx.model_evals += 2
    delta = float(sum(r.sum(dtype=np.float64) for r in raws) - (ends[0] - ends[1]))
    return per_input(
        raws, ctx.kinds,
        extras={"convergence_delta": delta, "score": float(ends[0]), "baseline_score": float(ends[1])},
    )
