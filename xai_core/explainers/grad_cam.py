"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391).

Channel weights are the spatially averaged gradients of the class score at a
convolutional layer; the map is ReLU(sum_k w_k A_k), upsampled (bicubic) to the
input size. For networks that end in global average pooling followed by a linear
layer, Grad-CAM at the last conv layer equals CAM (Zhou et al. 2016) up to scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..images import resize_map
from ..types import Capability, UnsupportedError
from .base import Context, Explainer, RawAttribution, param, register


@dataclass(frozen=True)
class GradCamParams:
    relu: bool = param(True, help="keep only regions that raise the class score (the paper's ReLU)")


@register
class GradCam(Explainer):
    name = "grad_cam"
    label = "Grad-CAM"
    description = "Class activation map at a convolutional layer, weighted by gradients: where the network looked."
    paper = "Selvaraju et al., 2017, Grad-CAM"
    requires = frozenset({Capability.PREDICT, Capability.LAYER_GRADIENTS})
    Params = GradCamParams
    signed = False
    uses_layer = True
    single_pass = True

    def run(self, ctx: Context, params: GradCamParams) -> RawAttribution:
        layer = ctx.layer or ctx.adapter.default_cam_layer()
        if layer is None:
            raise UnsupportedError(
                f"{ctx.adapter.name} has no convolutional layer with a spatial output; "
                "Grad-CAM needs one"
            )
        acts, grads, _ = ctx.layer_gradients(layer)
        if acts.ndim != 4:
            raise UnsupportedError(f"layer {layer!r} outputs shape {acts.shape}; Grad-CAM needs N x C x H x W")
        weights = grads[0].mean(axis=(1, 2))
        cam = np.tensordot(weights, acts[0], axes=(0, 0)).astype(np.float32)
        if params.relu:
            cam = np.maximum(cam, 0)
        h, w = ctx.image.shape[:2]
        ctx.progress(1.0)
        upsampled = resize_map(cam, h, w, cubic=True)
        if params.relu:  # bicubic overshoot must not create negative evidence
            upsampled = np.maximum(upsampled, 0)
        return RawAttribution(
            upsampled,
            extras={"cam": cam, "signed": not params.relu},  # without ReLU: evidence for and against
            layer=layer,
        )
