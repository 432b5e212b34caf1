"""Token layouts of a Keras functional model, established from its graph.

A Keras Vision Transformer (patches from a strided ``Conv2D``, a ``Reshape`` to
N x T x C, blocks of ``LayerNormalization``, ``MultiHeadAttention``, ``Dense`` and
``Add``) gives N x T x C outputs. Their patch grid is read from the graph, never
from a shape: a ``Reshape`` of an N x h x w x C map to (h*w, C) lays the patches in
row-major order on an h x w grid; layers that act on each token alone (norms over
the channels, dense layers, dropout, activations, attention's query side,
element-wise merges) keep that order; a ``Concatenate`` along the token axis puts
other tokens (a class token) before or after them. Anything else leaves the
layout unknown, and the layer stays refused as not a map.
"""

from __future__ import annotations

from typing import Any

from xai_core.adapters.layouts import LayerLayout

SOURCE = "Keras graph: a Reshape of a channels-last map, then token-wise layers"
PER_TOKEN = ("LayerNormalization", "Dense", "Dropout", "Activation", "Identity", "GaussianNoise",
             "GaussianDropout", "SpatialDropout1D", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Rescaling")
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


def token_layouts(model: Any) -> dict[str, LayerLayout]:
    """{layer name: tokens layout} for the top-level layers of a functional Keras
    model whose N x T x C output is established from the graph (empty when the
    model is not a functional graph)."""
    operations = getattr(model, "operations", None)
    if operations is None:
        return {}
    by_tensor: dict[int, LayerLayout | tuple[str, tuple]] = {}  # id(KerasTensor) -> layout, or ("map", shape)
    found: dict[str, LayerLayout] = {}
    for op in operations:
        nodes = getattr(op, "_inbound_nodes", [])
        if len(nodes) != 1:  # a layer used twice has no one layout
            continue
        node = nodes[0]
        inputs = list(getattr(node, "input_tensors", []))
        outputs = list(getattr(node, "output_tensors", []))
        if len(outputs) != 1:
            continue
        out = outputs[0]
        shape = tuple(out.shape)
        if len(shape) == 4 and getattr(op, "data_format", "channels_last") != "channels_first":
            by_tensor[id(out)] = ("map", shape)
            continue
        if len(shape) != 3:
            continue
        layout = _layout(op, inputs, shape, by_tensor)
        if layout is not None:
            by_tensor[id(out)] = layout
            found[op.name] = layout
    return found


def _layout(op: Any, inputs: list, shape: tuple, by_tensor: dict) -> LayerLayout | None:
    kind = type(op).__name__
    known = [by_tensor.get(id(t)) for t in inputs]
    tokens = [k for k in known if isinstance(k, LayerLayout)]
    if kind == "Reshape" and len(inputs) == 1 and isinstance(known[0], tuple):
        _, (_, h, w, c) = known[0]
        if None not in (h, w, c) and tuple(op.target_shape) == (h * w, c):
            return LayerLayout("tokens", (int(h), int(w)), int(c), source=SOURCE)
        return None
    if kind == "Concatenate" and op.axis in (1, -2) and len(tokens) == 1:
        at = known.index(tokens[0])
        before = sum(int(t.shape[1]) for t in inputs[:at])
        after = sum(int(t.shape[1]) for t in inputs[at + 1:])
        base = tokens[0]
        return LayerLayout("tokens", base.grid, int(shape[2]), prefix=base.prefix + before,
                           suffix=base.suffix + after, source=SOURCE)
    if not inputs or not isinstance(known[0], LayerLayout):
        return None
    first = known[0]
    if kind in PER_TOKEN or kind == "MultiHeadAttention":  # attention's output follows its query (the first input)
        if kind == "LayerNormalization" and tuple(_axes(op.axis)) not in ((-1,), (2,)):
            return None
        if shape[1] != first.raw_shape()[0]:
            return None
        return _with_channels(first, shape[2])
    if kind in MERGES:
        if any(t != first for t in tokens) or any(tuple(t.shape)[1] not in (1, shape[1]) for t in inputs):
            return None
        return _with_channels(first, shape[2])
    return None


def _axes(axis) -> list[int]:
    return list(axis) if isinstance(axis, (list, tuple)) else [axis]


def _with_channels(layout: LayerLayout, channels: int | None) -> LayerLayout | None:
    if channels is None:
        return None
    return LayerLayout("tokens", layout.grid, int(channels), layout.prefix, layout.suffix, source=SOURCE)
