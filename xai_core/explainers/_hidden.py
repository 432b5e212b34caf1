"""What a hidden input part shows, for the perturbation methods (occlusion, LIME,
SHAP Partition) on models with one or several inputs.

An image's hidden pixels show the method's fill (:func:`base.fill_image`); a
feature vector's hidden feature shows its mean over the background rows the user
gives, else 0 in the model's own (already normalised) feature space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from xai_core.explainers.base import Context, param
from xai_core.inputs.backgrounds import MAX_BACKGROUND, ROW_BACKGROUND_FILES, load_background
from xai_core.types import InputError, VectorSpec


def vector_background() -> Any:
    """The ``background_file`` parameter of a perturbation method."""
    return param("", file_types=ROW_BACKGROUND_FILES, for_kinds=("vector",),
                 help="feature-vector inputs only: a .csv or .npy of rows whose per-feature mean a hidden feature "
                      "takes (several vector inputs: their features side by side, in input order); "
                      "empty: a hidden feature is 0")


def hidden_values(ctx: Context, image_fill: Callable[[np.ndarray], np.ndarray], background_file: str = "") -> list[np.ndarray]:
    """One array per input, shaped like it: what that input shows where it is hidden."""
    widths = [x.shape[0] for x, k in zip(ctx.inputs, ctx.kinds, strict=True) if k != "image"]
    if background_file and not widths:
        raise InputError("background_file fills hidden feature-vector inputs; this model has none "
                         "(images use the fill / hide parameter)")
    means = np.zeros(sum(widths), np.float32)
    if background_file:
        spec = VectorSpec(sum(widths), name="vector inputs")
        means = load_background(background_file, spec, MAX_BACKGROUND, ctx.seed).mean(axis=0).astype(np.float32)
    out, at = [], 0
    for x, kind in zip(ctx.inputs, ctx.kinds, strict=True):
        if kind == "image":
            out.append(image_fill(x))
        else:
            out.append(means[at : at + x.shape[0]].copy())
            at += x.shape[0]
    return out


def replicate(ctx: Context, n: int) -> list[np.ndarray]:
    """``n`` copies of every input, one array per input (to perturb in place)."""
    return [np.repeat(x[None], n, axis=0) for x in ctx.inputs]
