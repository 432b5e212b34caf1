"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391).

Channel weights are the spatially averaged gradients of the class score at a
convolutional layer. For networks that end in global average pooling followed by
a dense layer, Grad-CAM of the logit at the last conv layer equals CAM (Zhou et
al. 2016) divided by the map's h * w.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, Drawing, register
from xai_core.explainers.cam_family import ClassActivationMap


@register
class GradCam(ClassActivationMap):
    name = "grad_cam"
    label = "Grad-CAM"
    description = "Class activation map at a convolutional layer, weighted by gradients: where the network looked."
    paper = "Selvaraju et al., 2017, Grad-CAM"
    drawing = Drawing(units="activation", upsample="bicubic")

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        return grads.mean(axis=(1, 2))

    def channel_weights_many(self, contexts, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        return grads.mean(axis=(2, 3))
