"""The class-activation-map template (as pytorch-grad-cam's ``BaseCAM``).

Every CAM is ``sum_k w_k A_k`` over the channels ``A_k`` of a layer's output map,
upsampled (bicubic) to the input size. The map is the layer's canonical map
(C x h x w, see :mod:`xai_core.adapters.layouts`): a channels-last output is
transposed, transformer tokens lose their class/distillation/register tokens
and are folded into their patch grid (as pytorch-grad-cam's ``reshape_transform``
does); a layer whose output is not a map (attention weights, Swin windows,
untraced axes) is refused. The methods differ only in how the channel weights
``w_k`` are found, so a subclass overrides :meth:`ClassActivationMap.channel_weights`
and nothing else; the weights may also be per location (C x h x w: HiResCAM,
LayerCAM). A gradient-free CAM (Score-CAM, Ablation-CAM, Eigen-CAM) sets
``uses_gradients = False`` and gets the activations from a forward pass alone.

The map is then rectified as the ``rectify`` parameter says: ``relu`` keeps the
regions that raise the class score (the papers' choice, drawn in jet), ``abs``
their magnitude whatever the sign (jet), ``none`` the signed map (drawn
red/blue).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from xai_core.explainers.base import Context, Drawing, Explainer, RawAttribution, param
from xai_core.inputs.images import resize_map, resize_maps
from xai_core.types import Capability, UnsupportedError


@dataclass(frozen=True)
class CamParams:
    rectify: str = param(
        "relu", choices=("relu", "abs", "none"),
        help="relu: only regions that raise the class score (the papers' choice); "
             "abs: either sign, by magnitude; none: the signed map",
    )


@dataclass(frozen=True)
class ChannelCamParams(CamParams):
    channels: int = param(
        0, low=0, high=100000,
        help="0: every channel of the layer (the papers, pytorch-grad-cam); k: only the k channels with the "
             "largest mean activation are scored, the others weigh 0 (faster on wide layers)",
    )


def chosen_channels(acts: np.ndarray, count: int) -> np.ndarray:
    """Indices of the channels a gradient-free CAM evaluates: all (``count`` 0 or at
    least C), else the ``count`` with the largest mean activation, in channel order."""
    if count <= 0 or count >= acts.shape[0]:
        return np.arange(acts.shape[0])
    return np.sort(np.argsort(-acts.mean(axis=(1, 2)), kind="stable")[:count])


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
    drawing = Drawing(upsample="bicubic")
    uses_layer = True
    single_pass = True
    uses_gradients: ClassVar[bool] = True  # False: channel_weights gets grads=None (no backward pass)

    def planned_evals(self, params: CamParams, adapter) -> int:
        return 1  # one pass to the layer (and back), which also gives the predicted class

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray | None) -> np.ndarray:
        """(C,) weights of the channels of ``acts`` (C x h x w, the image's activations
        at ``layer``), or (C, h, w) weights per location, given ``grads`` (C x h x w,
        the target score's gradient there; None when ``uses_gradients`` is False)."""
        raise NotImplementedError

    def cam_map(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray | None) -> np.ndarray:
        """The h x w map before rectification: ``sum_k w_k A_k``."""
        weights = np.asarray(self.channel_weights(ctx, layer, acts, grads), np.float64)
        if weights.ndim == 1:
            return np.tensordot(weights, acts, axes=(0, 0)).astype(np.float32)
        return (weights * acts).sum(axis=0).astype(np.float32)

    def channel_weights_many(self, contexts: Callable[[int], Context], layer: str, acts: np.ndarray,
                             grads: np.ndarray | None) -> np.ndarray:
        """:meth:`channel_weights` of N images at once (``acts``, ``grads``: N x C x h x w;
        ``contexts(j)`` the j-th image's context): N x C, or N x C x h x w. A method
        whose weights are an array expression of the gradients overrides it."""
        return np.stack([np.asarray(self.channel_weights(contexts(j), layer, acts[j],
                                                         None if grads is None else grads[j]), np.float64)
                         for j in range(len(acts))])

    def maps_from_layer(self, contexts: Callable[[int], Context], params: CamParams, layer: str, acts: np.ndarray,
                        grads: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        """N images' maps (N x H x W at ``size``) from their rows of one layer pass
        (``acts``, ``grads``: N x C x h x w), each what :meth:`from_layer` makes of
        its row, in array operations over the N images."""
        if acts.ndim != 4:
            raise UnsupportedError(
                f"layer {layer!r} outputs shape {acts.shape[1:]}; {self.label} needs a convolutional "
                "feature map (channels x height x width)"
            )
        weights = np.asarray(self.channel_weights_many(contexts, layer, acts, grads), np.float64)
        if weights.ndim == 2:
            cams = np.einsum("nc,nchw->nhw", weights, acts).astype(np.float32)
        else:
            cams = (weights * acts).sum(axis=1).astype(np.float32)
        upsampled = resize_maps(rectify(cams, params.rectify), *size, cubic=True)
        if params.rectify != "none":  # bicubic overshoot must not create negative evidence
            upsampled = np.maximum(upsampled, 0)
        return upsampled

    def run(self, ctx: Context, params: CamParams) -> RawAttribution:
        ctx.params = params
        layer = self.map_layer(ctx.adapter, ctx.layer)
        if self.uses_gradients:
            acts, grads, _ = ctx.layer_gradients(layer)
        else:
            acts, grads = ctx.layer_map(layer), None
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
                   grads: np.ndarray | None) -> RawAttribution:
        """The map from the image's activations (and target-score gradients, None
        without ``uses_gradients``) at ``layer`` (1 x C x h x w each), as :meth:`run`
        makes it; labelled sets call it with rows of one layer pass shared by many
        images."""
        if acts.ndim != 4:
            raise UnsupportedError(
                f"layer {layer!r} outputs shape {acts.shape[1:]}; {self.label} needs a convolutional "
                "feature map (channels x height x width)"
            )
        cam = rectify(self.cam_map(ctx, layer, acts[0], None if grads is None else grads[0]), params.rectify)
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
