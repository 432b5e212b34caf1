"""The class-activation-map template (as pytorch-grad-cam's ``BaseCAM``).

Every CAM is ``sum_k w_k A_k`` over the channels ``A_k`` of a layer's output map,
upsampled (bicubic) to the input size. The map is the layer's canonical map
(C x h x w, see :mod:`xai_core.adapters.layouts`): a channels-last output is
transposed, transformer tokens lose their class/distillation/register tokens
and are folded into their patch grid (as pytorch-grad-cam's ``reshape_transform``
does); a layer whose output is not a map (attention weights, Swin windows,
untraced axes) is refused. The methods differ only in
how the channel weights ``w_k`` are found, so a subclass overrides
:meth:`ClassActivationMap.channel_weights` and nothing else.

The map is then rectified as the ``rectify`` parameter says: ``relu`` keeps the
regions that raise the class score (the papers' choice, drawn in jet), ``abs``
their magnitude whatever the sign (jet), ``none`` the signed map (drawn
red/blue).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xai_core.explainers.base import Context, Explainer, RawAttribution, param
from xai_core.inputs.images import resize_map
from xai_core.types import Capability, UnsupportedError


@dataclass(frozen=True)
class CamParams:
    rectify: str = param(
        "relu", choices=("relu", "abs", "none"),
        help="relu: only regions that raise the class score (the papers' choice); "
             "abs: either sign, by magnitude; none: the signed map",
    )


def rectify(cam: np.ndarray, how: str) -> np.ndarray:
    if how == "relu":
        return np.maximum(cam, 0)
    if how == "abs":
        return np.abs(cam)
    return cam


class ClassActivationMap(Explainer):
    """Subclass, set name/label/description/paper, implement :meth:`channel_weights`."""

    requires = frozenset({Capability.PREDICT, Capability.LAYER_GRADIENTS})
    Params = CamParams
    uses_layer = True
    single_pass = True

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """(C,) weights of the channels of ``acts`` (C x h x w, the image's activations
        at ``layer``), given ``grads`` (C x h x w, the target score's gradient there)."""
        raise NotImplementedError

    def run(self, ctx: Context, params: CamParams) -> RawAttribution:
        layer = self.map_layer(ctx.adapter, ctx.layer)
        acts, grads, _ = ctx.layer_gradients(layer)
        return self.from_layer(ctx, params, layer, acts, grads)

    def map_layer(self, adapter, layer: str | None) -> str:
        """The layer to explain at: ``layer``, or the model's default CAM layer; an
        UnsupportedError when there is none or its axes are not a map's."""
        if not layer:
            layer, why = adapter.default_cam_choice()
            if layer is None:
                raise UnsupportedError(f"{adapter.name}: no default layer for {self.label}: {why}")
        adapter.map_layer(layer, self.label)  # refuses a layer whose axes are not a map's
        return layer

    def from_layer(self, ctx: Context, params: CamParams, layer: str, acts: np.ndarray,
                   grads: np.ndarray) -> RawAttribution:
        """The map from the image's activations and target-score gradients at ``layer``
        (1 x C x h x w each), as :meth:`run` makes it; labelled sets call it with
        rows of one layer pass shared by many images."""
        if acts.ndim != 4:
            raise UnsupportedError(
                f"layer {layer!r} outputs shape {acts.shape[1:]}; {self.label} needs a convolutional "
                "feature map (channels x height x width)"
            )
        weights = np.asarray(self.channel_weights(ctx, layer, acts[0], grads[0]), np.float64)
        cam = rectify(np.tensordot(weights, acts[0], axes=(0, 0)).astype(np.float32), params.rectify)
        h, w = ctx.image.shape[:2]
        ctx.progress(1.0)
        upsampled = resize_map(cam, h, w, cubic=True)
        if params.rectify != "none":  # bicubic overshoot must not create negative evidence
            upsampled = np.maximum(upsampled, 0)
        return RawAttribution(
            upsampled,
            extras={"cam": cam, "signed": params.rectify == "none"},
            layer=layer,
        )
