"""Shared pieces of the methods made for transformers (attention rollout, Chefer et
al.'s gradient-weighted attention, LeGrad): reading the attention of the model
(:meth:`TorchAdapter.attention_maps`, see :mod:`xai_core.adapters.attention`), the
arithmetic on the N x heads x T x T attention probabilities of each block, and
drawing a value per patch token as a map over the image.

Token order is the model's: ``prefix`` class/distillation/register tokens first,
then the gh x gw patch tokens row by row; the class token is token 0.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, RawAttribution
from xai_core.inputs.images import resize_map
from xai_core.types import UnsupportedError


def read_attention(ctx: Context, gradients: bool = False, block_gradients: bool = False):
    """The image's attention maps (one forward pass, and one backward pass when
    gradients are asked); settles the target and probabilities when still open."""
    maps = ctx.adapter.attention_maps(ctx.one(), ctx.target, gradients=gradients, block_gradients=block_gradients)
    ctx.model_evals += 1
    if ctx.unsettled():
        ctx.settle(maps.probabilities[0])
    return maps


def class_row(maps, method: str) -> None:
    """Refuse a model whose head does not read a class token: ``method`` reads the
    class token's row."""
    if not maps.class_token:
        raise UnsupportedError(f"{method} reads the class token's row, and this transformer's head reads no class "
                               "token (it pools the patch tokens); use legrad")


def fuse_heads(attention: np.ndarray, how: str) -> np.ndarray:
    """heads x T x T -> T x T: mean, max or min over the heads."""
    return {"mean": np.mean, "max": np.max, "min": np.min}[how](attention, axis=0)


def rollout(attentions: list[np.ndarray], head_fusion: str = "mean", discard_ratio: float = 0.0,
            row: int = 0) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020, arXiv:2005.00928) of one item: row
    ``row`` (the class token's) of the rollout matrix, (T,) float64.

    ``attentions``: per block heads x T x T. Each block's heads are fused, then, as
    in jacobgil/vit-explain, the ``discard_ratio`` lowest values of the fused
    matrix are set to 0 (never the class token's attention to itself); the
    identity is added for the residual connection and each row re-normalised to
    sum 1: ``A' = (A + I) / 2``, rows / row sums. The rollout is the product
    ``A'_L ... A'_2 A'_1`` (T x T; row i: how much token i's final representation
    draws on each input token); its row is computed from the last block down as a
    vector times each matrix, L T^2 operations instead of L T^3.
    """
    tokens = attentions[0].shape[-1]
    vector = np.zeros(tokens)
    vector[row] = 1.0
    for attention in reversed(attentions):
        fused = fuse_heads(np.asarray(attention, np.float64), head_fusion)
        if discard_ratio > 0:
            flat = fused.reshape(-1).copy()
            count = int(flat.size * discard_ratio)
            lowest = np.argsort(flat, kind="stable")[:count]
            flat[lowest[lowest != 0]] = 0.0
            fused = flat.reshape(tokens, tokens)
        a = (fused + np.eye(tokens)) / 2
        vector = vector @ (a / a.sum(axis=-1, keepdims=True))
    return vector


def gradient_weighted(attentions: list[np.ndarray], gradients: list[np.ndarray], row: int = 0) -> np.ndarray:
    """Chefer, Gur & Wolf 2021 (Generic attention-model explainability, ICCV,
    arXiv:2103.15679), the rule for self-attention: ``R = I``, then for each block
    ``R += mean_h((dy/dA * A)^+) @ R``, so ``R = (I + Ā_L) ... (I + Ā_1)``. Per block
    heads x T x T -> row ``row`` (the class token's) of R, (T,) float64, computed
    from the last block down as a vector times each matrix."""
    vector = np.zeros(attentions[0].shape[-1])
    vector[row] = 1.0
    for attention, grad in zip(reversed(attentions), reversed(gradients), strict=True):
        weighted = np.maximum(np.asarray(grad, np.float64) * np.asarray(attention, np.float64), 0).mean(axis=0)
        vector = vector + vector @ weighted
    return vector


def patch_grid(values: np.ndarray, prefix: int, grid: tuple[int, int]) -> np.ndarray:
    """Values over the T tokens -> the patch tokens' values as a gh x gw map."""
    return np.asarray(values, np.float64)[prefix:].reshape(grid)


def drawn(ctx: Context, cells: np.ndarray, layer: str | None = None, **extras) -> RawAttribution:
    """A non-negative gh x gw map over the patch grid -> the map at input resolution
    (bilinear, as vit-explain and torchcam upsample), kept in ``extras['grid']``."""
    h, w = ctx.image.shape[:2]
    cells = np.maximum(np.asarray(cells, np.float32), 0)
    upsampled = np.maximum(resize_map(cells, h, w, cubic=False), 0)
    ctx.progress(1.0)
    return RawAttribution(upsampled, extras={"grid": cells, "signed": False, **extras}, layer=layer)
