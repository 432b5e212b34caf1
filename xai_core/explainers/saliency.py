"""Vanilla gradient saliency (Simonyan, Vedaldi & Zisserman 2014, arXiv:1312.6034)."""

from __future__ import annotations

from dataclasses import dataclass

from xai_core.explainers.base import Context, Drawing, Explainer, RawAttribution, param, per_input, register
from xai_core.types import Capability


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
    drawing = Drawing(units="gradient", pixel_level=True)
    single_pass = True
    several_inputs = True

    def run(self, ctx: Context, params: SaliencyParams) -> RawAttribution:
        grads, _ = ctx.gradient_parts([x[None] for x in ctx.inputs])
        ctx.progress(1.0)
        return per_input([g[0] for g in grads], ctx.kinds, params.absolute, extras={"signed": not params.absolute})
