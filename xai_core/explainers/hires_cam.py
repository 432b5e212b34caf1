"""HiResCAM (Draelos & Carin 2020, arXiv:2011.08891).

Grad-CAM averages the gradients over the feature map before weighting; HiResCAM
multiplies gradients and activations location by location, ``sum_k dS/dA_k * A_k``,
so the map shows exactly the locations the score depends on (for a network ending
in a linear head, the map sums to the score's change from all-zero activations).
As pytorch-grad-cam's ``HiResCAM``.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, register
from xai_core.explainers.cam_family import ClassActivationMap


@register
class HiResCam(ClassActivationMap):
    name = "hires_cam"
    label = "HiResCAM"
    description = ("Gradients times activations at each location of a convolutional layer, summed over "
                   "channels: the locations the class score depends on, without Grad-CAM's averaging.")
    paper = "Draelos & Carin, 2020, Use HiResCAM instead of Grad-CAM for faithful explanations"
    rank = 52

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        return grads

    def channel_weights_many(self, contexts, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        return grads
