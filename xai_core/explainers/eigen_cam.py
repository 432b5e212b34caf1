"""Eigen-CAM (Muhammad & Yeasin 2020, arXiv:2008.00299).

The first principal component of the layer's activations: the h*w locations are
the samples, the C channels the features; after centring each channel, the map is
the projection of every location on the first right-singular vector. It uses
neither gradients nor the target class (every class gets the same map). SVD fixes
a component only up to its sign; as in pytorch-grad-cam's ``EigenCAM`` (same
``numpy.linalg.svd``) the sign is left as the SVD returns it.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, register
from xai_core.explainers.cam_family import ClassActivationMap


def first_component(acts: np.ndarray) -> np.ndarray:
    """C x h x w activations -> h x w projection on their first principal component."""
    flat = np.nan_to_num(acts.reshape(acts.shape[0], -1).T)  # (h*w) x C
    flat = flat - flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    return (flat @ vt[0]).reshape(acts.shape[1:]).astype(np.float32)


@register
class EigenCam(ClassActivationMap):
    name = "eigen_cam"
    label = "Eigen-CAM"
    description = ("The first principal component of a convolutional layer's activations: what the layer "
                   "sees most strongly, without gradients and the same for every class.")
    paper = "Muhammad & Yeasin, 2020, Eigen-CAM: Class Activation Map using Principal Components"
    rank = 55
    uses_gradients = False
    single_pass = True  # the layer's forward pass also gives the probabilities
    class_specific = False

    def cam_map(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray | None) -> np.ndarray:
        return first_component(acts)
