"""Grad-CAM++ (Chattopadhay et al. 2018, arXiv:1710.11063).

Channel weights are the positive gradients weighted per location by the
closed-form alphas of the paper (eq. 19, with the exponential-score identity),
as pytorch-grad-cam computes them.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, register
from xai_core.explainers.cam_family import ClassActivationMap


@register
class GradCamPlusPlus(ClassActivationMap):
    name = "grad_cam_plus_plus"
    label = "Grad-CAM++"
    description = "Grad-CAM with per-location weights on the positive gradients: sharper maps of several objects."
    paper = "Chattopadhay et al., 2018, Grad-CAM++"

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        g2 = grads.astype(np.float64) ** 2
        g3 = g2 * grads
        alphas = g2 / (2 * g2 + acts.sum(axis=(1, 2))[:, None, None] * g3 + 1e-6)
        alphas = np.where(grads != 0, alphas, 0)
        return (np.maximum(grads, 0) * alphas).sum(axis=(1, 2))
