"""Vanilla gradient saliency (Simonyan, Vedaldi & Zisserman 2014, arXiv:1312.6034)."""

from __future__ import annotations

from dataclasses import dataclass

from ..types import Capability
from .base import Context, Explainer, RawAttribution, channel_max_abs, channel_sum, param, register


@dataclass(frozen=True)
class SaliencyParams:
    absolute: bool = param(True, help="max |gradient| over channels (the paper's map); off: signed channel sum")


@register
class Saliency(Explainer):
    name = "saliency"
    label = "Saliency (gradients)"
    description = "Gradient of the class score with respect to each input pixel: one backward pass."
    paper = "Simonyan et al., 2014, Deep Inside Convolutional Networks"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})
    Params = SaliencyParams
    single_pass = True

    def run(self, ctx: Context, params: SaliencyParams) -> RawAttribution:
        grads, _ = ctx.gradients(ctx.image[None])
        raw = grads[0]
        ctx.progress(1.0)
        attribution = channel_max_abs(raw) if params.absolute else channel_sum(raw)
        return RawAttribution(attribution, raw=raw, extras={"signed": not params.absolute})
