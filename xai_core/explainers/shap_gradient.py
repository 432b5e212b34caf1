"""Expected gradients, the algorithm of shap's GradientExplainer
(Erion et al. 2021, arXiv:1906.10670; Lundberg & Lee 2017).

Each sample draws a background image b and a point t ~ U(0, 1) and evaluates
``grad f(b + t (x - b)) * (x - b)``; the mean over samples estimates SHAP values
with the background as the reference distribution. Written on the adapter's
gradient primitive so PyTorch and Keras share it.

``extras['variance']`` is the variance of the estimate (the mean over samples):
the per-sample variance divided by the number of samples, summed over channels
(one H x W map; one value per feature for a vector). shap's
``GradientExplainer(..., return_variances=True)`` reports ``samples.var(0) /
sqrt(samples)`` per channel instead: multiply ours (per channel) by
sqrt(samples) to compare.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from xai_core.inputs.backgrounds import IMAGE_BACKGROUND_FILES, load_background
from xai_core.types import Capability, InputError, UnsupportedError


@dataclass(frozen=True)
class ShapGradientParams:
    samples: int = param(64, low=4, high=2000, help="gradient samples (shap's nsamples)")
    background: str = param(
        "blur_black", choices=("blur_black", "blur", "black", "gray", "noise"),
        help="reference images: blurred copies of the image and/or constant images",
    )
    background_size: int = param(8, low=1, high=1000, help="images in the background set")
    at: str = param("output", choices=("output", "input"),
                    help="with a layer: attribute to the layer's output or to its input")
    background_file: str = param("", file_types=IMAGE_BACKGROUND_FILES, help="your own background: a folder or .zip of images, or an .npy array "
                                          "(at most background_size items, sampled with the seed); "
                                          "replaces 'background'")
    local_smoothing: float = param(
        0.0, low=0.0, high=1.0, step=0.01, help="std of noise added to the image (shap's local_smoothing)"
    )


MAX_BACKGROUND_BYTES = 2 * 1024**3  # distinct reference images held at once


def background_references(image: np.ndarray, kind: str, n: int,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n reference images as (distinct images R x H x W x C, index (n,) into them):
    blurred at increasing strength (sigma = side/32 * 1.6^level, and the image's
    mean once sigma reaches the image's side, where a blur has nothing left), the
    constant images, or noise. Each distinct image is computed and held once, so a
    background of 1000 blurred copies costs a handful of blurs."""
    side = max(image.shape[:2])
    if kind == "noise":
        need = n * image.size * 4
        if need > MAX_BACKGROUND_BYTES:
            raise InputError(f"a noise background of {n} images of {image.shape[1]}x{image.shape[0]} needs "
                             f"{need / 2**30:.1f} GB; lower background_size or use a blur background")
        return np.stack([rng.uniform(0, 1, size=image.shape).astype(np.float32) for _ in range(n)]), np.arange(n)
    keys = []
    for i in range(n):
        if kind in ("black", "gray"):
            keys.append(kind)
        elif kind == "blur_black" and i % 2 == 1:
            keys.append("black")
        else:
            step = i // 2 if kind == "blur_black" else i
            sigma = side / 32 * (1.6**step)
            keys.append("mean" if sigma >= side else sigma)
    distinct = list(dict.fromkeys(keys))
    refs = [fill_image(image, "blur", sigma=k) if isinstance(k, float) else fill_image(image, k) for k in distinct]
    position = {k: j for j, k in enumerate(distinct)}
    return np.stack(refs), np.array([position[k] for k in keys])


def background_set(image: np.ndarray, kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """The n reference images of :func:`background_references`, N x H x W x C."""
    refs, index = background_references(image, kind, n, rng)
    return refs[index]


@register
class ShapGradient(Explainer):
    name = "shap_gradient"
    label = "SHAP expected gradients"
    description = ("SHAP values by expected gradients against a background set (shap's GradientExplainer "
                   "algorithm). This is Expected Gradients (Erion et al. 2021), the method the LATEC benchmark "
                   "ranks first: it has no separate entry.")
    paper = "Erion et al., 2021, Improving performance of deep learning models with axiomatic attribution priors and expected gradients"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})
    Params = ShapGradientParams
    drawing = Drawing(units="output", pixel_level=True)
    stochastic = True
    slow = True
    several_inputs = True
    accepts_layer = True
    spatial_layers_only = False  # a dense layer will do: its units are drawn as bars

    def _at_layer(self, ctx: Context, params: ShapGradientParams) -> RawAttribution:
        """Expected gradients over the layer's values: references are the background
        images' values at the layer (shap's GradientExplainer on (model, layer))."""
        if len(ctx.inputs) > 1:
            raise UnsupportedError("shap_gradient at a layer explains models with one input")
        refs, index = self._references(ctx, params, 0)
        ref_values = ctx.adapter.layer_values(refs, ctx.layer, params.at)
        ctx.model_evals += len(refs)
        picks = index[ctx.rng.integers(0, len(index), size=params.samples)]
        t = ctx.rng.uniform(0, 1, size=params.samples)
        weights = np.full(params.samples, 1.0 / params.samples)
        return layer_path_attribution(ctx, ref_values, t, weights, picks, params.at,
                                      {"background_size": len(index)})

    @staticmethod
    def _references(ctx: Context, params: ShapGradientParams, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Input i's (distinct references, index): the user's background file for an
        image input when given, else params.background; a feature vector's are zeros."""
        x, kind = ctx.inputs[i], ctx.kinds[i]
        if kind != "image":
            return np.zeros((1, *x.shape), np.float32), np.zeros(params.background_size, int)
        if params.background_file:
            spec = ctx.adapter.inputs[i] if len(ctx.kinds) > 1 else ctx.adapter.spec
            refs = load_background(params.background_file, spec, params.background_size, ctx.seed)
            return refs, np.arange(len(refs))
        return background_references(x, params.background, params.background_size, ctx.rng)

    def run(self, ctx: Context, params: ShapGradientParams) -> RawAttribution:
        if ctx.layer:
            return self._at_layer(ctx, params)
        xs = ctx.inputs
        # an image's references follow params.background; a feature vector's are zeros
        bgs = [self._references(ctx, params, i) for i in range(len(xs))]
        n_refs = len(bgs[0][1])
        totals = [np.zeros_like(x, dtype=np.float64) for x in xs]
        totals_sq = [np.zeros_like(x, dtype=np.float64) for x in xs]
        for start, stop in ctx.chunks(params.samples):
            n = stop - start
            picks = ctx.rng.integers(0, n_refs, size=n)
            t = ctx.rng.uniform(0, 1, size=n).astype(np.float32)
            deltas, path = [], []
            for x, (refs, index) in zip(xs, bgs, strict=True):
                reps = np.repeat(x[None], n, axis=0)
                if params.local_smoothing > 0:
                    reps = reps + ctx.rng.normal(0, params.local_smoothing, size=reps.shape).astype(np.float32)
                chosen = refs[index[picks]]
                delta = reps - chosen
                deltas.append(delta)
                path.append(chosen + t.reshape(-1, *[1] * x.ndim) * delta)
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
            extras={"variance": shown_var[0].astype(np.float32), "background_size": n_refs,
                    "variances": [v.astype(np.float32) for v in shown_var]},
        )
