"""Plain words for what the dashboard and the command line show: a layer as what it
is ("last convolution block, 512 x 7 x 7, recommended for Grad-CAM") with its raw
name beside it; which class a bar pushes towards; and what to do when a
surrogate's fit is poor (LIME's R², Kernel SHAP's additivity error).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xai_core.types import Explanation

# (words in the layer's kind, lower case) -> what it is, first match wins
KIND_WORDS = (
    (("conv",), "convolution"),
    (("batchnorm", "layernorm", "groupnorm", "instancenorm", "normalization", "norm"), "normalisation"),
    (("relu", "gelu", "silu", "swish", "sigmoid", "tanh", "softmax", "activation", "hardswish", "elu"), "activation"),
    (("linear", "dense"), "fully connected layer"),
    (("attention", "mha"), "attention"),
    (("pool",), "pooling"),
    (("embed",), "embedding"),
    (("dropout",), "dropout"),
    (("flatten", "reshape", "permute"), "reshaping"),
    (("add", "concat", "multiply"), "merge"),
    (("sequential", "interpretermodule", "module", "block", "bottleneck", "stage", "functional", "model"), "block"),
)
# raw names that say "a block of layers" whatever their kind (torchvision's layer4, Keras' block5_...)
BLOCK_NAMES = ("layer", "block", "stage", "features", "encoder")
# a layer whose kind matches none of the above is a "layer"; "_bn1", "_conv_head" keep their kind's words
CAM_METHODS = "Grad-CAM"


def kind_words(kind: str, name: str = "") -> str:
    """What a layer of ``kind`` is, in words (``Conv2d`` -> ``convolution``); a
    container named like a block (``layer4``) -> ``convolution block`` when it ends
    in a feature map, else ``block``."""
    lowered = kind.lower()
    for keys, words in KIND_WORDS:
        if any(k in lowered for k in keys):
            return words
    leaf = name.rsplit(".", 1)[-1].rsplit("/", 1)[-1].lower().lstrip("_")
    if any(leaf.startswith(b) for b in BLOCK_NAMES):
        return "block"
    return "layer"


def _words(info: Any) -> str:
    what = kind_words(str(info.kind), str(info.name))
    return "convolution block" if what == "block" and len(info.output_shape) == 3 else what


def _position(index: int, count: int) -> str:
    if count <= 1:
        return "only"
    if index == count - 1:
        return "last"
    if index == 0:
        return "first"
    share = index / (count - 1)
    return "early" if share < 0.34 else ("middle" if share < 0.67 else "late")


def _shape(shape: Sequence[int]) -> str:
    if len(shape) == 3:
        return f"{shape[0]} x {shape[1]} x {shape[2]}"
    if len(shape) == 1:
        return f"{shape[0]} units"
    return " x ".join(str(v) for v in shape)


def describe_layer(info: Any, layers: Sequence[Any] = (), default: str | None = None,
                   recommended_for: str = CAM_METHODS) -> str:
    """``last convolution block, 512 x 7 x 7, recommended for Grad-CAM`` for a layer
    (a :class:`~xai_core.adapters.layers.LayerInfo`: ``name``, ``kind``,
    ``output_shape``), placed among ``layers`` (the model's, in order: "first",
    "early", "middle", "late", "last" among those with the same kind of output:
    feature maps or vectors); ``default`` names the layer the methods pick by
    themselves, which gets "recommended for" ``recommended_for``. The raw name is
    not included: show it beside (:func:`layer_label`)."""
    what = _words(info)
    peers = [layer for layer in layers if _words(layer) == what]
    names = [layer.name for layer in peers]
    where = _position(names.index(info.name), len(names)) if info.name in names else ""
    words = f"{where} {what}".strip() if where and where != "only" else what
    words += f", {_shape(info.output_shape)}"
    if default is not None and info.name == default:
        words += f", recommended for {recommended_for}"
    return words


def layer_label(info: Any, layers: Sequence[Any] = (), default: str | None = None, raw: str | None = None,
                recommended_for: str = CAM_METHODS) -> str:
    """The plain words with the raw label beside: ``last convolution block, 512 x 7 x 7,
    recommended for Grad-CAM  (layer4 · InterpreterModule)``; ``raw`` defaults to
    ``name · kind``."""
    raw = raw or f"{info.name} · {info.kind}"
    return f"{describe_layer(info, layers, default, recommended_for)}  ({raw})"


# -- which class a bar pushes towards ---------------------------------------------------------


def direction_words(explanation: Explanation) -> tuple[str, str]:
    """The two directions of a signed attribution, in words: (``pushes towards 'malignant'``,
    ``pushes away from 'malignant'``); for a score (regression), up and down."""
    label = explanation.target_label
    if explanation.output_kind == "score":
        return f"raises the score of '{label}'", f"lowers the score of '{label}'"
    others = [p.label for p in explanation.predictions if p.index != explanation.target]
    n_classes = len(explanation.probabilities) if explanation.probabilities is not None else None
    towards_other = f" (towards '{others[0]}')" if n_classes == 2 and len(others) == 1 else ""
    return f"pushes towards '{label}'", f"pushes away from '{label}'{towards_other}"


def direction_legend(explanation: Explanation) -> str:
    """``red: pushes towards 'malignant' · blue: pushes away from 'malignant'``."""
    up, down = direction_words(explanation)
    return f"red: {up} · blue: {down}"


# -- a surrogate's poor fit ---------------------------------------------------------------------

KERNEL_SHAP_MAX_RELATIVE_ERROR = 0.05  # |base + sum - output| above 5% of |output - base|
KERNEL_SHAP_MIN_ABS_ERROR = 1e-3


def fit_notes(explanation: Explanation) -> list[str]:
    """Notes on how far a row's additive explanation is from the model: Kernel SHAP's
    additivity error (its values must add up to output - base value; Lundberg & Lee
    2017, property 1, local accuracy), with what to do. Empty when it adds up.
    (LIME's R² is noted by :func:`xai_core.service.quality.quality_notes`.)"""
    if explanation.method != "kernel_shap":
        return []
    error = explanation.additivity_error
    if error is None or explanation.base_value is None or explanation.output is None:
        return []
    change = abs(float(explanation.output) - float(explanation.base_value))
    if abs(error) <= KERNEL_SHAP_MIN_ABS_ERROR or abs(error) <= KERNEL_SHAP_MAX_RELATIVE_ERROR * change:
        return []
    share = f" ({abs(error) / change:.0%} of the change from the base value)" if change > 0 else ""
    return [
        f"Kernel SHAP's values do not add up: base value + attributions = "
        f"{float(explanation.output) + error:.4g}, "
        f"but the model gives {float(explanation.output):.4g} (error {error:.3g}{share}). Its sampled fit is "
        "poor: raise nsamples, or switch l1_reg off, before reading the bars."
    ]
