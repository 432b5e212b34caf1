"""CAM, class activation mapping (Zhou et al. 2016, arXiv:1512.04150).

For a network whose last convolutional feature map goes through global average
pooling into one dense layer, the class score is ``sum_k W[c, k] mean(A_k) + b_c``,
so the map ``sum_k W[c, k] A_k`` shows where each location adds to the score. The
channel weights are that dense layer's weights for the class; no gradient is
needed for them.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, register
from xai_core.explainers.cam_family import ClassActivationMap
from xai_core.types import UnsupportedError


@register
class Cam(ClassActivationMap):
    name = "cam"
    label = "CAM"
    description = ("Class activation map of a network ending in global average pooling + a dense layer: "
                   "the dense layer's weights for the class, applied to the last feature map.")
    paper = "Zhou et al., 2016, Learning Deep Features for Discriminative Localization"

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        dense = classifier_after(ctx, layer)
        weights = ctx.adapter.dense_weights(dense)
        if weights.shape != (ctx.adapter.num_classes, acts.shape[0]):
            raise UnsupportedError(
                f"CAM needs global average pooling + one dense layer after layer {layer!r} "
                f"({acts.shape[0]} channels), but the dense layer {dense!r} maps {weights.shape[1]} inputs "
                f"to {weights.shape[0]} outputs; use grad_cam for this network"
            )
        return weights[ctx.target]


def classifier_after(ctx: Context, layer: str) -> str:
    """The one dense layer run after ``layer``; UnsupportedError unless exactly one."""
    names = [info.name for info in ctx.adapter.layers()]
    later = ctx.adapter.layers()[names.index(layer) + 1:] if layer in names else ctx.adapter.layers()
    dense = [info.name for info in later if info.dense]
    if len(dense) != 1:
        found = f"{len(dense)} dense layers ({', '.join(dense)})" if dense else "no dense layer"
        raise UnsupportedError(
            f"CAM needs a network that ends in global average pooling + one dense layer after "
            f"layer {layer!r}; found {found}. Use grad_cam for this network"
        )
    return dense[0]
