"""XGrad-CAM (Fu et al. 2020, arXiv:2008.02312).

Channel weights chosen to satisfy the paper's sensitivity and conservation axioms:
``w_k = sum_ij (A_k(i,j) / sum_ij A_k) * dS/dA_k(i,j)``, the gradients averaged with
the channel's own activations as weights. As pytorch-grad-cam's ``XGradCAM``
(with its 1e-7 guard on the channel sum).
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, register
from xai_core.explainers.cam_family import ClassActivationMap

EPS = 1e-7


@register
class XGradCam(ClassActivationMap):
    name = "xgrad_cam"
    label = "XGrad-CAM"
    description = ("Grad-CAM with gradients averaged by each channel's own activations (axiom-based "
                   "weights: sensitivity and conservation).")
    paper = "Fu et al., 2020, Axiom-based Grad-CAM"
    rank = 54

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        acts = acts.astype(np.float64)
        sums = acts.sum(axis=(1, 2))[:, None, None]
        return (grads * acts / (sums + EPS)).sum(axis=(1, 2))
