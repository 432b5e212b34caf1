"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in
Transformers", arXiv:2005.00928).

Each block's attention (fused over heads) plus the identity of the residual
connection, row-normalised, is multiplied through the blocks; the class token's
row of the product, over the patch tokens, says how much each patch flowed into
the representation the classifier reads. It reads attention only, so the map is
the same for every class.
"""

from __future__ import annotations

from dataclasses import dataclass

from xai_core.explainers._attention import class_row, drawn, patch_grid, read_attention, rollout
from xai_core.explainers.base import Context, Drawing, Explainer, RawAttribution, param, register
from xai_core.types import Capability


@dataclass(frozen=True)
class RolloutParams:
    head_fusion: str = param("mean", choices=("mean", "max", "min"),
                             help="how the heads of a block are combined (the paper: mean)")
    discard_ratio: float = param(0.0, low=0.0, high=0.99, step=0.05,
                                 help="share of the lowest attention values set to 0 in each block before the "
                                      "rollout (jacobgil/vit-explain uses 0.9; the paper 0)")


@register
class AttentionRollout(Explainer):
    name = "attention_rollout"
    label = "Attention rollout"
    description = ("Transformers only: attention multiplied through the blocks, from the class token to each "
                   "patch. Where the model's information flows; the same map for every class.")
    paper = "Abnar & Zuidema, 2020, Quantifying Attention Flow in Transformers"
    requires = frozenset({Capability.PREDICT, Capability.ATTENTION,
                          Capability.CLASS_TOKEN})
    Params = RolloutParams
    drawing = Drawing(signed=False)  # non-negative patch-grid map
    single_pass = True  # the capture's forward pass also gives the predicted class
    rank = 60

    def planned_evals(self, params, adapter) -> int:
        return 1  # one pass through the model (and back), which also gives the predicted class

    def run(self, ctx: Context, params: RolloutParams) -> RawAttribution:
        maps = read_attention(ctx)
        class_row(maps, self.name)
        flow = rollout([a[0] for a in maps.attentions], params.head_fusion, params.discard_ratio)
        cells = patch_grid(flow, maps.prefix, maps.grid)
        return drawn(ctx, cells, blocks=len(maps.attentions), class_independent=True)
