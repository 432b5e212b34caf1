"""Score-CAM (Wang et al. 2020, arXiv:1910.01279): a gradient-free CAM.

Each channel ``A_k`` of the layer, upsampled to the input (bilinear, corners
aligned) and scaled to [0, 1], masks the input; the target's score on the masked
input, softmaxed over the channels, is the channel's weight. As pytorch-grad-cam's
``ScoreCAM``, which multiplies the *normalised* input tensor by the mask: the
hidden parts take the normalisation's mean colour, here ``mean + m * (x - mean)``
on the [0, 1] image. The C masked images are one batched forward pass per chunk on
the fast forward engine (ONNX Runtime / OpenVINO where it reproduces the model),
with chunks bounded by ``batch_size`` and by memory.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, masked_images, register
from xai_core.explainers.cam_family import ChannelCamParams, ClassActivationMap, chosen_channels

MAX_CHUNK_BYTES = 256 * 2**20  # masked images held at once


def interpolation_matrix(n_out: int, n_in: int) -> np.ndarray:
    """n_out x n_in weights of 1-D linear interpolation with corners aligned
    (torch's ``UpsamplingBilinear2d``)."""
    m = np.zeros((n_out, n_in), np.float64)
    if n_in == 1:
        m[:, 0] = 1
        return m
    pos = np.arange(n_out) * ((n_in - 1) / max(n_out - 1, 1))
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = pos - lo
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), lo + 1] += frac
    return m


class ChannelMasks:
    """C x h x w activations as C x H x W masks, made a slice at a time: each channel
    upsampled (bilinear, corners aligned: two small matrix products) and min-max
    scaled to [0, 1] (1e-8 guard, as pytorch-grad-cam). Only the slice being scored
    is held (all 512 masks of a 224-pixel input would be 100 MB)."""

    def __init__(self, acts: np.ndarray, height: int, width: int) -> None:
        self.acts = np.asarray(acts, np.float64)
        self.rows = interpolation_matrix(height, self.acts.shape[1])
        self.cols = interpolation_matrix(width, self.acts.shape[2]).T

    def __len__(self) -> int:
        return len(self.acts)

    def __getitem__(self, chosen: slice) -> np.ndarray:
        up = self.rows @ (self.acts[chosen] @ self.cols)  # c x H x W
        lo = up.min(axis=(1, 2), keepdims=True)
        hi = up.max(axis=(1, 2), keepdims=True)
        return ((up - lo) / (hi - lo + 1e-8)).astype(np.float32)


def masked_scores(ctx: Context, masks, what: str) -> np.ndarray:
    """The target's explained score on ``mean + m * (x - mean)`` for every mask m
    (N x H x W: an array, or anything sliced into one such as :class:`ChannelMasks`),
    streamed in chunks."""
    x = ctx.image
    mean = np.broadcast_to(np.asarray(ctx.adapter.spec.mean, np.float32), x.shape[-1:])
    shown = x - mean
    per_image = x.nbytes
    step = max(1, min(ctx.batch_size, MAX_CHUNK_BYTES // max(per_image, 1)))
    scores = np.empty(len(masks), np.float64)
    held = np.empty((min(step, len(masks)), *x.shape), np.float32)  # reused: the engine copies its input
    for start in range(0, len(masks), step):
        stop = min(len(masks), start + step)
        scores[start:stop] = ctx.scores(masked_images(masks[start:stop], shown, mean, held[: stop - start]))
        ctx.progress(stop / len(masks), f"{stop}/{len(masks)} {what}")
    return scores


@register
class ScoreCam(ClassActivationMap):
    name = "score_cam"
    label = "Score-CAM"
    description = ("Gradient-free CAM: each channel of a convolutional layer masks the image, and the class "
                   "score of the masked image (softmaxed over channels) is the channel's weight.")
    paper = "Wang et al., 2020, Score-CAM: Score-Weighted Visual Explanations for CNNs"
    rank = 56
    uses_gradients = False
    single_pass = True  # the layer's forward pass also gives the probabilities
    forward_bound = True
    slow = True
    Params = ChannelCamParams

    def planned_evals(self, params, adapter) -> int | None:
        """The layer's values, then one masked image per scored channel; with every
        channel (``channels`` 0) the count is the layer's width, known only once the
        layer is read (None: no estimate)."""
        return 1 + params.channels if params.channels > 0 else None

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray | None) -> np.ndarray:
        h, w = ctx.image.shape[:2]
        chosen = chosen_channels(acts, ctx.params.channels)
        scores = masked_scores(ctx, ChannelMasks(acts[chosen], h, w), "channels")
        e = np.exp(scores - scores.max())
        weights = np.zeros(acts.shape[0], np.float64)
        weights[chosen] = e / e.sum()
        return weights
