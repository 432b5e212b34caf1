"""LeGrad (Bousselham, Boggust, Chaybouti, Strobelt & Kuehne 2024, "LeGrad: An
Explainability Method for Vision Transformers via Feature Formation
Sensitivity", arXiv:2404.03214).

For each block l, the class logit s^l is read from that block's output tokens
through the model's own final norm and head (mean over tokens, as the authors'
code and torchcam do); the gradient of s^l with respect to block l's attention
probabilities, positive part, averaged over heads and query tokens, gives one
value per key token. The patch tokens' values are averaged over the chosen blocks
and min-max normalised. Checked against ``torchcam.methods.LeGrad``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xai_core.explainers._attention import drawn, read_attention
from xai_core.explainers.base import Context, Drawing, Explainer, RawAttribution, param, register
from xai_core.types import Capability, InputError

EPS = 1e-8  # torchcam's normalisation guard


@dataclass(frozen=True)
class LeGradParams:
    blocks: int = param(0, low=0, high=1000,
                        help="use the last k blocks (0: every block; torchcam's example takes the last 4)")


@register
class LeGrad(Explainer):
    name = "legrad"
    label = "LeGrad"
    description = ("Transformers only: how sensitive each block's class score is to the attention paid to each "
                   "patch, averaged over blocks.")
    paper = "Bousselham et al., 2024, LeGrad"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS, Capability.ATTENTION,
                          Capability.BLOCK_SCORES})
    Params = LeGradParams
    drawing = Drawing(signed=False)  # non-negative patch-grid map
    single_pass = True
    rank = 62

    def planned_evals(self, params, adapter) -> int:
        return 1  # one pass through the model (and back), which also gives the predicted class

    def run(self, ctx: Context, params: LeGradParams) -> RawAttribution:
        maps = read_attention(ctx, block_gradients=True)
        if params.blocks > len(maps.block_gradients):
            raise InputError(f"legrad: blocks is {params.blocks} but the model has {len(maps.block_gradients)} blocks")
        grads = maps.block_gradients[-params.blocks:] if params.blocks else maps.block_gradients
        gh, gw = maps.grid
        per_block = [np.maximum(g[0].astype(np.float64), 0).mean(axis=(0, 1))[maps.prefix:].reshape(gh, gw)
                     for g in grads]
        cells = np.mean(per_block, axis=0)
        cells = cells - cells.min()
        cells = cells / (cells.max() + EPS)
        return drawn(ctx, cells, blocks=len(per_block))
