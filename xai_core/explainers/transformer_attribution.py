"""Gradient-weighted attention, the transformer attribution of Chefer, Gur & Wolf
2021 ("Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers", ICCV, arXiv:2103.15679).

Relevance starts as the identity; each block adds ``mean_h((dy/dA * A)^+) R``:
attention weighted by its gradient for the class, positive part, averaged over
heads. The class token's row over the patch tokens is the map. Unlike rollout,
it is class-specific.
"""

from __future__ import annotations

from dataclasses import dataclass

from xai_core.explainers._attention import class_row, drawn, gradient_weighted, patch_grid, read_attention
from xai_core.explainers.base import Context, Drawing, Explainer, RawAttribution, register
from xai_core.types import Capability


@dataclass(frozen=True)
class TransformerAttributionParams:
    pass


@register
class TransformerAttribution(Explainer):
    name = "transformer_attribution"
    label = "Gradient-weighted attention (Chefer)"
    description = ("Transformers only: attention weighted by its gradient for the class, accumulated through "
                   "the blocks from the class token to each patch. Which patches the class score draws on.")
    paper = "Chefer, Gur & Wolf, 2021, Generic Attention-model Explainability"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS, Capability.ATTENTION,
                          Capability.CLASS_TOKEN})
    Params = TransformerAttributionParams
    drawing = Drawing(signed=False)  # non-negative patch-grid map
    single_pass = True
    rank = 61

    def planned_evals(self, params, adapter) -> int:
        return 1  # one pass through the model (and back), which also gives the predicted class

    def run(self, ctx: Context, params: TransformerAttributionParams) -> RawAttribution:
        maps = read_attention(ctx, gradients=True)
        class_row(maps, self.name)
        relevance = gradient_weighted([a[0] for a in maps.attentions], [g[0] for g in maps.gradients])
        cells = patch_grid(relevance, maps.prefix, maps.grid)
        return drawn(ctx, cells, blocks=len(maps.attentions))
