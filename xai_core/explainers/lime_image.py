"""LIME on superpixels (Ribeiro, Singh & Guestrin 2016, arXiv:1602.04938).

Perturbed images are built vectorised and evaluated in streamed batches; the
weighted ridge fit is the ``lime`` package's own (``LimeBase``), with the same
cosine-distance kernel as ``lime_image``. The same seed gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import InputError
from .base import Context, Explainer, RawAttribution, fill_image, param, register
from .stable_budget import StableBudget, weighted_ridge


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
    stochastic = True
    slow = True

    def run(self, ctx: Context, params: LimeParams) -> RawAttribution:
        from lime.lime_base import LimeBase
        from sklearn.metrics import pairwise_distances

        x = ctx.image
        segments = segment(x, params.segmentation, params.segments, ctx.seed)
        n_feat = int(segments.max()) + 1
        fill = fill_image(x, params.hide)
        data = ctx.rng.integers(0, 2, size=(params.samples, n_feat)).astype(np.uint8)
        data[0, :] = 1  # the unperturbed image, as lime_image does
        distances = pairwise_distances(data, data[0:1], metric="cosine").ravel()
        width = params.kernel_width

        def kernel(d):
            return np.sqrt(np.exp(-(d**2) / width**2))

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
                keep = data[a:b][:, segments].astype(bool)[..., None]  # B x H x W x 1
                scores[a:b, 0] = ctx.predict(np.where(keep, x[None], fill[None]))[:, ctx.target]
                ctx.progress(b / budget, f"{b}/{budget} perturbed images")
            done = end
            if check.settled(*weighted_ridge(data[:done], scores[:done], kernel(distances[:done]))):
                break
        data, scores, distances = data[:done], scores[:done], distances[:done]

        base = LimeBase(kernel, random_state=ctx.seed)
        intercept, weights, score, local_pred = base.explain_instance_with_data(
            data, scores, distances, 0, num_features=n_feat
        )
        per_segment = np.zeros(n_feat, np.float32)
        for feature, weight in weights:
            per_segment[feature] = weight
        return RawAttribution(
            per_segment[segments],
            extras={
                "segments": segments,
                "segment_weights": per_segment,
                "intercept": float(intercept),
                "fit_r2": float(score),
                "local_prediction": float(np.ravel(local_pred)[0]),
                "superpixels": n_feat,
                **check.extras(done, budget),
            },
        )
