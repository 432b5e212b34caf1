"""Layer-wise Relevance Propagation (Bach et al. 2015, PLoS ONE 10(7):e0130140)
through zennit (Anders et al. 2021, arXiv:2106.13200), for PyTorch modules.

The target's logit is propagated back layer by layer with the rules of a
composite, as Kohlbrenner et al. (2020, arXiv:1910.09840) measured best practice
for CNNs:

- ``epsilon_plus_flat``: epsilon in dense layers, z+ in convolutions, flat in the
  first layer;
- ``epsilon_gamma_box``: epsilon in dense layers, gamma (0.25) in convolutions,
  z^B in the first layer, bounded by the model's input range after its own
  normalisation (pixel 0 and 1 through ``(x - mean) / std``);
- ``epsilon_alpha2_beta1``: epsilon in dense layers, alpha 2 beta 1 in convolutions.

Canonizers are chosen from the model: ``ResNetCanonizer`` for torchvision ResNet
blocks (batch norm merged, residual sums made hookable), ``VGGCanonizer`` for
torchvision VGG, ``SequentialMergeBatchNorm`` for any other model with batch
norm right after a convolution or dense layer; the choice, and a note where batch
norms stay unmerged or no architecture canonizer applies, is in the extras.

The output relevance is the logit itself, so the relevances sum to it up to what
biases absorb and the epsilon stabilisers take (on a model without biases within
``CONSERVATION_TOLERANCE``). Keras and ONNX models are refused: no maintained
library implements LRP for them (iNNvestigate supports neither Keras 3 nor
current TensorFlow), and an ONNX graph gives no layers to hook.

Licence: zennit is LGPL-3.0-or-later. LRP is the subject of patents held by the
Fraunhofer-Gesellschaft (EP 3271863 B1, US 12061966 B2, "Relevance score
assignment for artificial neural networks"); see docs/methods-new.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xai_core.explainers.base import Context, Drawing, Explainer, RawAttribution, param, register
from xai_core.explainers.notes import relevance_conservation
from xai_core.types import Capability, UnsupportedError

COMPOSITES = ("epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1")


@dataclass(frozen=True)
class LrpParams:
    composite: str = param(
        "epsilon_plus_flat", choices=COMPOSITES,
        help="the rules per layer kind: epsilon_plus_flat (Kohlbrenner et al.'s best practice), epsilon_gamma_box "
             "(z^B on the input range), epsilon_alpha2_beta1",
    )


def choose_canonizers(model) -> tuple[list, str, str]:
    """(zennit canonizers, their name, a note or '') for ``model``."""
    from torch import nn
    from torchvision.models.resnet import BasicBlock, Bottleneck
    from torchvision.models.vgg import VGG
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.core import collect_leaves
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    modules = list(model.modules())
    if any(isinstance(m, (BasicBlock, Bottleneck)) for m in modules):
        return [ResNetCanonizer()], "ResNetCanonizer", ""
    if isinstance(model, VGG):
        return [VGGCanonizer()], "VGGCanonizer", ""
    norms = [m for m in modules if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return [], "none", ""
    leaves = list(collect_leaves(model))
    linear = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    merged = sum(isinstance(b, nn.modules.batchnorm._BatchNorm) and isinstance(a, linear)
                 for a, b in zip(leaves, leaves[1:], strict=False))
    note = "" if merged == len(norms) else (
        f"{len(norms) - merged} of {len(norms)} batch norms do not follow a convolution or dense layer directly and "
        "stay unmerged: relevance passes them by their gradient, not by an LRP rule")
    return [SequentialMergeBatchNorm()], "SequentialMergeBatchNorm", note


def make_composite(name: str, canonizers: list, low=None, high=None):
    """The zennit composite called ``name`` (``low``/``high``: the input bounds of z^B)."""
    from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat

    if name == "epsilon_gamma_box":
        return EpsilonGammaBox(low=low, high=high, canonizers=canonizers)
    if name == "epsilon_alpha2_beta1":
        return EpsilonAlpha2Beta1(canonizers=canonizers)
    return EpsilonPlusFlat(canonizers=canonizers)


@register
class Lrp(Explainer):
    name = "lrp"
    label = "LRP (zennit)"
    description = ("Layer-wise Relevance Propagation: the class logit passed back layer by layer with rules per "
                   "layer kind (zennit composites and canonizers). PyTorch modules only: no maintained library "
                   "implements LRP for Keras 3 or ONNX graphs.")
    paper = "Bach et al., 2015, On Pixel-Wise Explanations by Layer-Wise Relevance Propagation"
    Params = LrpParams
    drawing = Drawing(units="output", pixel_level=True)
    notes = (relevance_conservation,)
    requires = frozenset({Capability.PREDICT, Capability.TORCH_MODULE})
    rank = 38
    single_pass = True  # the relevance pass's forward also gives the probabilities

    def planned_evals(self, params: LrpParams, adapter) -> int:
        return 1  # one forward pass and the relevance passed back

    def run(self, ctx: Context, params: LrpParams) -> RawAttribution:
        import torch

        adapter = ctx.adapter
        if adapter.output_kind not in ("logit", "score"):
            raise UnsupportedError(
                f"LRP propagates a logit; {adapter.name} outputs {adapter.output_kind}s. Explain its logit "
                "(--output logit strips a final nn.Softmax), or use another method")
        spec = adapter.spec
        mean = torch.tensor(spec.mean_array(), dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(spec.std_array(), dtype=torch.float32).view(1, -1, 1, 1)
        canonizers, canonizer, note = choose_canonizers(adapter.model)
        model = adapter.model
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x01 = torch.from_numpy(np.ascontiguousarray(ctx.image, np.float32)).permute(2, 0, 1)[None]
        xn = ((x01 - mean) / std).to(device)
        low = ((torch.zeros_like(x01) - mean) / std).to(device)
        high = ((torch.ones_like(x01) - mean) / std).to(device)
        composite = make_composite(params.composite, canonizers, low, high)
        with adapter.lock, composite.context(model) as modified:
            x = xn.clone().requires_grad_(True)
            with torch.enable_grad():
                out = modified(x)
                if not isinstance(out, torch.Tensor) or out.ndim != 2:
                    raise UnsupportedError(f"LRP needs a model returning N x classes; {adapter.name} returned "
                                           f"{type(out).__name__}")
                if ctx.unsettled():  # the forward is the model's own (rules change the backward only)
                    ctx.settle(adapter.probabilities(out.detach().float().cpu().numpy())[0])
                seed = torch.zeros_like(out)
                seed[:, ctx.target] = out[:, ctx.target].detach()
                (relevance,) = torch.autograd.grad(out, x, grad_outputs=seed)
        ctx.model_evals += 1
        raw = relevance[0].permute(1, 2, 0).detach().float().cpu().numpy()
        score = float(out[0, ctx.target].detach())
        extras = {"composite": params.composite, "canonizer": canonizer, "relevance_sum": float(raw.sum()),
                  "score": score}
        if note:
            extras["canonizer_note"] = note
        ctx.progress(1.0)
        return RawAttribution(raw.sum(axis=-1).astype(np.float32), raw=raw, extras=extras)
