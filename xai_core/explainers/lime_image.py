"""LIME on superpixels (Ribeiro, Singh & Guestrin 2016, arXiv:1602.04938).

Perturbed images are built vectorised and evaluated in streamed batches; the
weighted ridge fit is the ``lime`` package's own (``LimeBase``), with the same
cosine-distance kernel as ``lime_image``. The same seed gives the same result.

For a model with several inputs the interpretable features are the superpixels
of each image input, then the features of each vector input; one fit over all of
them gives every input its weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xai_core.explainers._hidden import hidden_values, vector_background
from xai_core.explainers.base import Context, Drawing, Explainer, RawAttribution, fill_image, param, register
from xai_core.explainers.notes import surrogate_fit
from xai_core.explainers.stable_budget import StableBudget, weighted_ridge
from xai_core.types import InputError


@dataclass(frozen=True)
class LimeParams:
    samples: int = param(1000, low=10, high=20000, help="perturbed images evaluated")
    segmentation: str = param(
        "slic", choices=("slic", "quickshift", "felzenszwalb"), help="how superpixels are found"
    )
    segments: int = param(50, low=4, high=500, help="target number of superpixels (slic)")
    hide: str = param("mean", choices=("mean", "black", "gray", "blur"), help="what hidden superpixels show")
    kernel_width: float = param(0.25, low=0.01, high=10.0, step=0.01, help="LIME's proximity kernel width")
    tolerance: float = param(
        0.0, low=0.0, high=1.0, step=0.01,
        help="stop early, in rounds of 100 samples, once the top-10 superpixels keep their ranking and every "
             "weight's standard error is at most this fraction of the largest weight (0: spend all samples)",
    )
    background_file: str = vector_background()


ROUND = 100  # samples between two stability checks


def segment(image: np.ndarray, how: str, n_segments: int, seed: int) -> np.ndarray:
    """H x W x C image in [0, 1] -> H x W int labels 0..K-1."""
    from skimage.segmentation import felzenszwalb, quickshift, slic

    rgb = image if image.shape[-1] == 3 else np.repeat(image, 3, axis=-1)
    rgb = rgb.astype(np.float64)
    if how == "slic":
        labels = slic(rgb, n_segments=n_segments, compactness=10, start_label=0)
    elif how == "quickshift":
        labels = quickshift(rgb, kernel_size=4, max_dist=200, ratio=0.2, rng=seed)
    elif how == "felzenszwalb":
        scale = max(rgb.shape[:2]) * 1.0
        labels = felzenszwalb(rgb, scale=scale, sigma=0.8, min_size=max(rgb.shape[0] * rgb.shape[1] // 400, 10))
    else:
        raise InputError(f"unknown segmentation {how!r}")
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(image.shape[:2]).astype(np.int32)


@register
class Lime(Explainer):
    name = "lime"
    label = "LIME (superpixels)"
    description = "Fit a local linear model on which superpixels are shown or hidden; positive and negative regions."
    paper = "Ribeiro et al., 2016, \"Why Should I Trust You?\""
    Params = LimeParams
    drawing = Drawing(units="surrogate weight", upsample="segments")
    notes = (surrogate_fit,)
    stochastic = True
    slow = True
    several_inputs = True

    def run(self, ctx: Context, params: LimeParams) -> RawAttribution:
        """One interpretable space for all inputs: the superpixels of each image input,
        then each feature of each vector input; one surrogate fit, split back per input."""
        from lime.lime_base import LimeBase
        from sklearn.metrics import pairwise_distances

        fills = hidden_values(ctx, lambda x: fill_image(x, params.hide), params.background_file)
        # per input: its superpixel labels (image) or None (vector), and where its features start
        labels = [segment(x, params.segmentation, params.segments, ctx.seed) if k == "image" else None
                  for x, k in zip(ctx.inputs, ctx.kinds, strict=True)]
        sizes = [int(s.max()) + 1 if s is not None else x.shape[0] for s, x in zip(labels, ctx.inputs, strict=True)]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        n_feat = int(offsets[-1])
        data = ctx.rng.integers(0, 2, size=(params.samples, n_feat)).astype(np.uint8)
        data[0, :] = 1  # the unperturbed image, as lime_image does
        distances = pairwise_distances(data, data[0:1], metric="cosine").ravel()
        width = params.kernel_width

        def kernel(d):
            return np.sqrt(np.exp(-(d**2) / width**2))

        def perturbed(rows: np.ndarray):
            parts = []
            for x, fill, seg, at, size in zip(ctx.inputs, fills, labels, offsets[:-1], sizes, strict=True):
                on = rows[:, at : at + size]
                keep = on[:, seg].astype(bool)[..., None] if seg is not None else on.astype(bool)  # B x H x W x 1
                parts.append(np.where(keep, x[None], fill[None]))
            return ctx.adapter.join(parts)

        # only the target's column is kept: the fit needs no other (memory flat in the classes)
        scores = np.empty((params.samples, 1), np.float32)
        budget = params.samples
        step = max(ROUND, ctx.batch_size) if params.tolerance > 0 else budget
        check = StableBudget(params.tolerance)
        done = 0
        while done < budget:
            end = min(budget, done + step)
            for start, stop in ctx.chunks(end - done):
                a, b = done + start, done + stop
                scores[a:b, 0] = ctx.predict(perturbed(data[a:b]))[:, ctx.target]
                ctx.progress(b / budget, f"{b}/{budget} perturbed images")
            done = end
            if check.settled(*weighted_ridge(data[:done], scores[:done], kernel(distances[:done]))):
                break
        data, scores, distances = data[:done], scores[:done], distances[:done]

        base = LimeBase(kernel, random_state=ctx.seed)
        intercept, weights, score, local_pred = base.explain_instance_with_data(
            data, scores, distances, 0, num_features=n_feat
        )
        all_weights = np.zeros(n_feat, np.float32)
        for feature, weight in weights:
            all_weights[feature] = weight
        split = [all_weights[at : at + size] for at, size in zip(offsets[:-1], sizes, strict=True)]
        maps = [w[seg] if seg is not None else w for w, seg in zip(split, labels, strict=True)]
        extras = {
            "intercept": float(intercept),
            "fit_r2": float(score),
            "local_prediction": float(np.ravel(local_pred)[0]),
            "superpixels": int(sum(s for s, seg in zip(sizes, labels, strict=True) if seg is not None)),
            **check.extras(done, budget),
        }
        if labels[0] is not None:  # the first input's regions, drawn crisp on the overlay
            extras.update(segments=labels[0], segment_weights=split[0])
        if len(maps) > 1:
            extras.update(input_segments=labels, input_weights=split)
        return RawAttribution(maps[0], extras=extras, attributions=maps if len(maps) > 1 else None)
