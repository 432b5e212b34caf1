"""The one layer picker: every page that lets a method work at a layer uses it.

A layer is listed as ``index · name · kind · shape`` (the index is the one
``--layer`` and ``python -m xai_core layers`` take; the shape is the layer's output
for one input, C x h x w for a feature map, units for a dense layer), so it can be
found by typing its index or its name. Next to it come the settings that only mean
something with a layer: ``at`` (the layer's output or its input) for the methods
that may work at a layer, ``neuron`` (bounded by the layer's units) for neuron
methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

import streamlit as st

from xai_core.adapters.base import ModelAdapter
from xai_core.adapters.layers import LayerInfo
from xai_core.explainers import Explainer
from xai_core.render.words import layer_label
from xai_core.types import InputError

from .messages import page_text

NO_LAYER = ""  # a method that may work at a layer, asked for the input itself
LAYER_PARAMS = ("layer", "at", "neuron")  # parameters this form asks for, not the generic one


def layer_text(info: LayerInfo) -> str:
    """``10 · block3_conv4 · Conv2D · 256x56x56 · channels-last map`` (index left out
    where a layer has none; the shape is the canonical C x h x w of a map)."""
    shape = "x".join(str(v) for v in info.output_shape)
    parts = ([info.index] if info.index is not None else []) + [info.name, info.kind, shape]
    if info.layout is not None and info.layout.kind in ("channels_last", "tokens"):
        parts.append(info.layout.describe().split(" on a ")[0] if info.layout.kind == "tokens" else "channels last")
    return " · ".join(parts)


def units(info: LayerInfo) -> int:
    return int(prod(info.output_shape))


@dataclass(frozen=True)
class LayerChoice:
    layer: str | None  # the chosen layer's name; None: the input (or no layer to choose)
    params: dict[str, Any]  # the layer-dependent parameters (at, neuron) to merge into the method's


def _listed(adapter: ModelAdapter, spatial_only: bool) -> list[LayerInfo] | None:
    try:
        layers = adapter.layers()
    except Exception as exc:  # noqa: BLE001 - an odd model must not break the page
        st.warning(f"Could not list this model's layers ({type(exc).__name__}: {page_text(exc)}); "
                   "the default layer is used.")
        return None
    # only layers whose layout is established as a map (or a vector, where the method takes one)
    return [info for info in layers if info.spatial or (info.vector and not spatial_only)]


def _default(adapter: ModelAdapter, spatial_only: bool) -> str | None:
    from xai_core.explainers.conductance import default_layer

    try:
        return adapter.default_cam_choice()[0] if spatial_only else default_layer(adapter)
    except Exception:  # noqa: BLE001 - no layer to default to: the first listed is
        return None


def layer_picker(adapter: ModelAdapter, key: str, *, spatial_only: bool = True, optional: bool = False,
                 help_text: str = "") -> LayerInfo | None:
    """A select box of the model's layers (feature maps only when ``spatial_only``).
    ``optional`` puts "none: the input itself" first and makes it the default;
    otherwise the default (the last convolution-like feature map, or the first
    dense layer of a model without one) is marked and preselected. A name or index
    typed into the box (``6``, ``-2``, ``3/1`` for a nested Keras model) is resolved
    as ``--layer`` is (:meth:`ModelAdapter.resolve_layer`); one that names no listed
    layer raises InputError. Returns the chosen layer, or None."""
    layers = _listed(adapter, spatial_only)
    if not layers:
        return None
    default = None if optional else (_default(adapter, spatial_only) or layers[0].name)
    show_all = st.checkbox("List every layer", key=f"{key}_all",
                           help="not only convolutions and dense layers: activations, norms, pooling, blocks")
    shown = [info for info in layers
             if show_all or info.name == default or info.dense or "conv" in info.kind.lower()
             or "norm" in info.kind.lower() and info.layout is not None and info.layout.kind == "tokens"
             or not (info.spatial or info.passive)]  # a vector layer: a dense layer's activation too
    every = {info.name: info for info in layers}
    names = ([NO_LAYER] if optional else []) + [info.name for info in shown]
    # plain words first, the raw index · name · kind · shape beside (xai_core.render.words)
    described = {info.name: layer_label(info, layers, default, raw=layer_text(info),
                                        recommended_for="Grad-CAM" if spatial_only else "this method")
                 for info in shown}
    if default is not None and spatial_only and not optional:
        why = adapter.default_cam_choice()[1]
        st.caption(f"Default layer {default}: {why}.")
    described[NO_LAYER] = "none: attribute to the model input"
    owner = f"{adapter.name}:{hash(tuple(every))}"  # another model: its remembered choice goes
    if st.session_state.get(f"{key}_owner") != owner:
        st.session_state[f"{key}_owner"] = owner
        if st.session_state.get(key) not in names and not _resolves(adapter, st.session_state.get(key), every):
            st.session_state.pop(key, None)
    chosen = st.selectbox(
        "Layer", names, index=names.index(default) if default in names else 0, key=key,
        format_func=lambda name: described.get(name, name), accept_new_options=True,
        help=(help_text + " " if help_text else "") + "what the layer is, then index · name · kind · output shape (C x h x w for a "
             "feature map, units for a dense layer). The index is --layer's: the position in model.layers "
             "(Keras; -1 counts from the end, i/j is layer j of the nested model at i) or among the leaf "
             "modules of named_modules() (PyTorch). Type an index or a name to find or give a layer.",
    )
    return None if chosen in (None, NO_LAYER) else find_layer(adapter, chosen, every, spatial_only)


def find_layer(adapter: ModelAdapter, text: str, every: dict[str, LayerInfo], spatial_only: bool) -> LayerInfo:
    """The layer ``text`` names among ``every``: a listed name, or an index or name
    typed as ``--layer`` takes it (resolved by the adapter, whose InputError says
    which indices exist)."""
    if text in every:
        return every[text]
    name = adapter.resolve_layer(text)
    if name not in every:
        what = "feature map" if spatial_only else "feature map or vector"
        raise InputError(f"layer {name!r} has no {what} output for this method; pick a layer from the list")
    return every[name]


def _resolves(adapter: ModelAdapter, text: object, every: dict[str, LayerInfo]) -> bool:
    """Whether ``text`` (a remembered typed entry) names one of ``every``."""
    if not isinstance(text, str) or not text.strip():
        return False
    try:
        return adapter.resolve_layer(text) in every
    except Exception:  # noqa: BLE001 - not resolvable on this model: forget it
        return False


def layer_settings(adapter: ModelAdapter, explainer: Explainer, prefix: str) -> LayerChoice:
    """The layer picker for ``explainer`` (when it works at a layer or may) and the
    settings that depend on the chosen layer. Widget keys: ``<prefix>_layer_<method>``,
    ``<prefix>_param_<method>_at`` / ``_neuron``."""
    if not (explainer.uses_layer or explainer.accepts_layer):
        return LayerChoice(None, {})
    names = {info.name for info in explainer.param_infos()}
    optional = explainer.accepts_layer and not explainer.uses_layer
    if optional and getattr(adapter, "multi_input", False):
        return LayerChoice(None, {})  # the path methods work at a layer on models with one input only
    info = layer_picker(
        adapter, f"{prefix}_layer_{explainer.name}", spatial_only=explainer.spatial_layers_only, optional=optional,
        help_text="the layer whose units are attributed" if explainer.uses_layer else
        "none: attribute to the model input; a layer: attribute to its units instead",
    )
    params: dict[str, Any] = {}
    if info is not None and optional and "at" in names:
        params["at"] = st.radio(
            "Attribute to the layer's", ["output", "input"], horizontal=True,
            key=f"{prefix}_param_{explainer.name}_at",
            help="output: the values the layer produces; input: the values it receives "
                 "(the previous layer's output), as shap's GradientExplainer on (model, layer) does")
    if info is not None and "neuron" in names:
        n = units(info)
        params["neuron"] = int(st.number_input(
            f"Neuron (0 to {n - 1})", min_value=0, max_value=n - 1, value=0, step=1,
            key=f"{prefix}_param_{explainer.name}_neuron_{info.name}",
            help="the unit of the layer: a flat index into its output (C x h x w order for a feature map)"))
    return LayerChoice(info.name if info is not None else None, params)
