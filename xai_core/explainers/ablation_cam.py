"""Ablation-CAM (Desai & Ramaswamy 2020, WACV): a gradient-free CAM.

Each channel of the layer is ablated in turn (set to 0, or for a layer with
negative outputs to ``min - 1e7`` as pytorch-grad-cam does) and the rest of the
network is run from the layer; the channel's weight is the relative drop of the
target's score, ``(S - S_k) / S``. As pytorch-grad-cam's ``AblationCAM`` with
every channel ablated (``ratio_channels_to_ablate=1``). The ablated activations
are fed in batches through the adapter's forward-only layer-replacement pass
(:meth:`~xai_core.adapters.base.ModelAdapter.layer_scores_at`), in the layer's own
layout (channels-first, channels-last or tokens: the layout maps each canonical
channel to its positions; extra tokens such as a class token are left as they are).
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, register
from xai_core.explainers.cam_family import ChannelCamParams, ClassActivationMap, chosen_channels
from xai_core.types import Capability, UnsupportedError

ABLATION_OFFSET = 1e7  # below the layer's minimum, for layers with negative outputs (pytorch-grad-cam)


def ablation_value(acts: np.ndarray) -> float:
    """What an ablated channel is set to: 0 for a layer whose smallest output is 0
    (after a ReLU), else its minimum minus 1e7."""
    low = float(acts.min())
    return 0.0 if low == 0 else low - ABLATION_OFFSET


def channel_positions(layout, raw_shape: tuple[int, ...]) -> np.ndarray:
    """C x (h*w) flat indices into one item of the layer's own output: where each
    canonical channel's values sit (the layer's flat indices, folded as its values are)."""
    c, h, w = layout.canonical_shape
    flat = np.arange(int(np.prod(raw_shape)), dtype=np.int64).reshape(raw_shape)
    return np.ascontiguousarray(layout.fold(flat, batched=False)).reshape(c, h * w)


@register
class AblationCam(ClassActivationMap):
    name = "ablation_cam"
    label = "Ablation-CAM"
    description = ("Gradient-free CAM: remove one channel of a convolutional layer at a time and weight it "
                   "by how much the class score drops.")
    paper = "Desai & Ramaswamy, 2020, Ablation-CAM: Visual Explanations for Deep Convolutional Network"
    rank = 57
    requires = frozenset({Capability.PREDICT, Capability.LAYER_GRADIENTS})
    uses_gradients = False
    single_pass = False
    slow = True
    Params = ChannelCamParams

    def planned_evals(self, params, adapter) -> int | None:
        """The layer's values and the class score, then one ablation per scored
        channel; with every channel (``channels`` 0) the layer's width is known only
        once it is read (None: no estimate)."""
        return 2 + params.channels if params.channels > 0 else None

    def channel_weights(self, ctx: Context, layer: str, acts: np.ndarray, grads: np.ndarray | None) -> np.ndarray:
        chosen = chosen_channels(acts, ctx.params.channels)
        channels = len(chosen)
        one = ctx.one()
        raw = ctx.layer_raw(layer)[0]  # the layer's own layout, from the pass that read the map
        positions = channel_positions(ctx.adapter.unit_layout(layer, "output", raw.shape), raw.shape)
        value = ablation_value(raw)
        base = ctx.adapter.layer_scores_at(one, ctx.target, layer, raw[None], "output", 1)
        base_score = float(base[0])
        if base_score == 0:
            raise UnsupportedError(f"{self.label} divides by the class score, which is 0 for this input")
        ctx.model_evals += 1
        dropped = np.full(acts.shape[0], base_score, np.float64)  # channels not ablated weigh 0
        for start, stop in ctx.chunks(channels):
            values = np.repeat(raw[None], stop - start, axis=0)
            flat = values.reshape(stop - start, -1)
            for row, channel in enumerate(chosen[start:stop]):
                flat[row, positions[channel]] = value
            scores = ctx.adapter.layer_scores_at(one, ctx.target, layer, values, "output", ctx.batch_size)
            dropped[chosen[start:stop]] = scores
            ctx.model_evals += stop - start
            ctx.progress(stop / channels, f"{stop}/{channels} channels")
        return (base_score - dropped) / base_score
