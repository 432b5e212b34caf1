"""Integrated Gradients (Sundararajan, Taly & Yan 2017, arXiv:1703.01365), for
images (and models with several inputs) and for table rows.

The path integral from a baseline to the image is computed with Gauss-Legendre
quadrature (as captum does by default), streamed in batches so that memory stays
flat whatever the number of steps. The convergence delta
``sum(attribution) - (f(x) - f(baseline))`` is reported. With a background the
user gives (``background_file``), every background item is a baseline and the
attribution is the mean of the IG maps over them (captum run once per baseline
and averaged); the delta is then taken against the mean baseline score.

On table rows the path starts from a baseline row (the table's feature means, or
zeros) or from each of the user's background rows (``background_file``), made
once per table by :meth:`IntegratedGradientsRows.prepare`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_core.explainers.at_layer import layer_path_attribution
from xai_core.explainers.base import (
    Context,
    Drawing,
    Explainer,
    RawAttribution,
    fill_image,
    param,
    per_input,
    register,
)
from xai_core.explainers.notes import path_convergence
from xai_core.inputs.backgrounds import (
    IMAGE_BACKGROUND_FILES,
    ROW_BACKGROUND_FILES,
    load_background,
    load_background_rows,
)
from xai_core.types import Capability, InputError, UnsupportedError


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
    background_file: str = param("", file_types=IMAGE_BACKGROUND_FILES,
                                 help="your own background: a folder or .zip of images, or an .npy array; "
                                      "each item is a baseline and IG is averaged over them "
                                      "(at most background_size items, sampled with the seed); "
                                      "replaces 'baseline'")
    background_size: int = param(16, low=1, high=1000,
                                 help="baselines taken from background_file (each costs one path of steps)")


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
    drawing = Drawing(units="output", pixel_level=True)
    notes = (path_convergence,)
    slow = True
    several_inputs = True
    accepts_layer = True
    spatial_layers_only = False  # a dense layer will do: its units are drawn as bars

    def planned_evals(self, params: IntegratedGradientsParams, adapter) -> int:
        """``steps`` path points per baseline (``background_size`` baselines from a
        background file, else one) and the two ends of the path."""
        paths = params.background_size if params.background_file else 1
        return paths * params.steps + 2

    def run(self, ctx: Context, params: IntegratedGradientsParams) -> RawAttribution:
        if ctx.layer:
            return self._at_layer(ctx, params)
        if params.background_file:
            return integrate_over(ctx, user_baselines(ctx, params.background_file, params.background_size),
                                  params.steps, params.method)
        # an image's baseline is params.baseline; a feature vector's is all zeros
        bases = [make_baseline(x, params.baseline, ctx.rng) if k == "image" else np.zeros_like(x)
                 for x, k in zip(ctx.inputs, ctx.kinds, strict=True)]
        return integrate(ctx, bases, params.steps, params.method)

    def _at_layer(self, ctx: Context, params: IntegratedGradientsParams) -> RawAttribution:
        if len(ctx.inputs) > 1:
            raise UnsupportedError("integrated_gradients at a layer explains models with one input")
        if params.background_file:
            raise InputError("integrated_gradients at a layer takes one baseline (the 'baseline' parameter); "
                             "drop background_file or the layer")
        base = make_baseline(ctx.image, params.baseline, ctx.rng)
        base_values = ctx.adapter.layer_values(base[None], ctx.layer, params.at)
        alphas, weights = quadrature(params.steps, params.method)
        raw = layer_path_attribution(ctx, base_values, alphas, weights, None, params.at, {})
        ends = ctx.adapter.target_scores(np.stack([ctx.image, base]), ctx.target)
        ctx.model_evals += 3
        raw.extras["convergence_delta"] = float(raw.layer_attribution.sum(dtype=np.float64) - (ends[0] - ends[1]))
        return raw


def user_baselines(ctx: Context, path: str, size: int) -> list[np.ndarray]:
    """The user's background as baselines, one B x ... array per input: the file's
    items for every image input (read at each input's own size), zeros for a
    feature vector."""
    sets = [load_background(path, ctx.adapter.inputs[i], size, ctx.seed) if kind == "image" else None
            for i, kind in enumerate(ctx.kinds)]
    count = min((len(s) for s in sets if s is not None), default=1)
    return [s[:count] if s is not None else np.zeros((count, *x.shape), np.float32)
            for s, x in zip(sets, ctx.inputs, strict=True)]


def integrate(ctx: Context, bases: list[np.ndarray], steps: int, method: str) -> RawAttribution:
    """Integrated Gradients of the target score from ``bases`` (one per input) to the
    inputs, with the convergence delta, the input's score and the baseline's in ``extras``."""
    return integrate_over(ctx, [b[None] for b in bases], steps, method)


def integrate_over(ctx: Context, bases: list[np.ndarray], steps: int, method: str) -> RawAttribution:
    """The mean of the IG maps from each of B baselines (``bases``: one B x ...
    array per input) to the inputs. The B x steps path points stream through the
    model in batches of the batch size, whichever baseline they belong to; the
    delta is ``sum(mean map) - (f(x) - mean_j f(b_j))``, the mean of the
    baselines' own deltas."""
    xs = ctx.inputs
    count = len(bases[0])
    alphas, weights = quadrature(steps, method)
    sums = [np.zeros_like(x, dtype=np.float64) for x in xs]
    total = count * steps
    for start, stop in ctx.chunks(total):
        j, k = np.divmod(np.arange(start, stop), steps)  # baseline and step of each path point
        path, diffs = [], []
        for x, b in zip(xs, bases, strict=True):
            d = x[None] - b[j]
            path.append(b[j] + alphas[k].astype(np.float32).reshape(-1, *[1] * x.ndim) * d)
            diffs.append(d)
        grads, _ = ctx.gradient_parts(path)
        for acc, g, d in zip(sums, grads, diffs, strict=True):
            acc += np.tensordot(weights[k], g.astype(np.float64) * d, axes=(0, 0))
        ctx.progress(stop / total, f"{stop}/{total} path points" if count > 1 else f"{stop}/{steps} steps")
    raws = [(acc / count).astype(np.float32) for acc in sums]
    # the end scores need no gradients: a forward pass on the framework (captum does the same)
    ends = ctx.adapter.target_scores(
        ctx.adapter.join([np.concatenate([x[None], b]) for x, b in zip(xs, bases, strict=True)]), ctx.target)
    ctx.model_evals += 1 + count
    score, base_score = float(ends[0]), float(np.mean(ends[1:]))
    delta = float(sum(r.sum(dtype=np.float64) for r in raws) - (score - base_score))
    extras = {"convergence_delta": delta, "score": score, "baseline_score": base_score}
    if count > 1:
        extras["background_size"] = count
    return per_input(raws, ctx.kinds, extras=extras)


@dataclass(frozen=True)
class TabularIGParams:
    """The path parameters on rows (shared with the conductance methods on rows)."""

    steps: int = param(64, low=2, high=4096, help="integration points along the path")
    baseline: str = param("mean", choices=("mean", "zeros"),
                          help="the reference row the path starts from: the table's feature means, or all zeros")
    method: str = param("gausslegendre", choices=("gausslegendre", "riemann_trapezoid", "riemann_middle"),
                        help="quadrature rule for the path integral")


@dataclass(frozen=True)
class TabularIGBackgroundParams(TabularIGParams):
    """The row IG's own parameters: the path's and a background of baseline rows."""

    background_file: str = param("", file_types=ROW_BACKGROUND_FILES,
                                 help="your own background rows: a CSV with the feature columns, or an .npy N x F "
                                      "array; each row is a baseline and IG is averaged over them (at most "
                                      "background_size rows, sampled with the seed); replaces 'baseline'")
    background_size: int = param(100, low=1, high=1000, help="baseline rows taken from background_file")


BASELINES_AT_ONCE = 64  # baseline rows whose paths go through the model in one gradient call


@register
class IntegratedGradientsRows(Explainer):
    """The same method on table rows: the baseline rows are prepared once per table."""

    key = "integrated_gradients_tabular"
    name = IntegratedGradients.name
    input_kind = "vector"
    rank = 30
    label = IntegratedGradients.label
    description = ("Gradients integrated along a straight path from a baseline row to the row; "
                   "attributions add up to output(row) - output(baseline), up to the convergence delta.")
    paper = "Sundararajan, Taly & Yan, 2017, Axiomatic Attribution for Deep Networks (arXiv:1703.01365)"
    requires = IntegratedGradients.requires
    Params = TabularIGBackgroundParams
    notes = (path_convergence,)

    def planned_evals(self, params: TabularIGParams, adapter) -> int:
        """The B baselines' paths (``steps`` points each) and the B + 1 ends; B is
        at most ``background_size`` with a background file, else 1."""
        bases = params.background_size if getattr(params, "background_file", "") else 1
        return bases * params.steps + bases + 1

    def prepare(self, ctx: Context, params: TabularIGParams) -> Any:
        """The baseline rows, B x F: the user's background, or one row (means or zeros)."""
        if not ctx.adapter.supports(Capability.INPUT_GRADIENTS):
            raise UnsupportedError(f"integrated_gradients needs gradients, which {ctx.adapter.name} does not provide")
        if getattr(params, "background_file", ""):
            rows = load_background_rows(params.background_file, list(ctx.data.feature_names), ctx.seed)
            return rows[:params.background_size]  # already in a seeded random order
        if params.baseline == "mean":
            return ctx.data.feature_means()[None]
        return np.zeros((1, ctx.data.n_features), np.float32)

    def run(self, ctx: Context, params: TabularIGParams) -> RawAttribution:
        """IG from each baseline row, averaged: the paths of up to BASELINES_AT_ONCE
        baselines go through the model in one gradient call."""
        x = ctx.image.astype(np.float32)
        bases = np.asarray(ctx.prepared, np.float32).reshape(-1, x.size)
        alphas, weights = quadrature(params.steps, params.method)
        total = np.zeros(x.shape, np.float64)
        for start in range(0, len(bases), BASELINES_AT_ONCE):
            chunk = bases[start:start + BASELINES_AT_ONCE]
            diffs = x[None] - chunk  # B x F
            path = chunk[:, None] + alphas.astype(np.float32)[None, :, None] * diffs[:, None]  # B x S x F
            grads, _ = ctx.row_gradients(path.reshape(-1, x.size))
            per_base = np.einsum("s,bsf->bf", weights, grads.astype(np.float64).reshape(len(chunk), -1, x.size))
            total += (per_base * diffs.astype(np.float64)).sum(0)
        attributions = total / len(bases)
        _, ends = ctx.row_gradients(np.concatenate([x[None], bases]))
        output, base_value = float(ends[0]), float(np.mean(ends[1:]))
        delta = float(attributions.sum() - (output - base_value))
        extras = {"output": output, "convergence_delta": delta,
                  "baseline": "background" if len(bases) > 1 else params.baseline}
        if len(bases) > 1:
            extras["background_size"] = len(bases)
        return RawAttribution(attributions, extras=extras, base_value=base_value)
