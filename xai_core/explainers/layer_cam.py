"""LayerCAM (Jiang et al. 2021, IEEE TIP 30:5875).

Each location of each channel is weighted by its own positive gradient,
``sum_k relu(dS/dA_k) * A_k``, which keeps fine detail at shallow layers where
Grad-CAM's averaged weights blur it. As pytorch-grad-cam's ``LayerCAM``.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, register
from xai_core.explainers.cam_family import ClassActivationMap


@register
class LayerCam(ClassActivationMap):
    name = "layer_cam"
    label = "LayerCAM"
    description = ("Activations weighted location by location by their positive gradients: "
                   "finer maps than Grad-CAM, also at shallow layers.")
    paper = "Jiang et al., 2021, LayerCAM: Exploring Hierarchical Class Activation Maps for Localization"
    rank = 53

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        return np.maximum(grads, 0)

    def channel_weights_many(self, contexts, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        return np.maximum(grads, 0)
