"""What the two conductance methods share (Dhamdhere, Sundararajan & Yan 2018,
"How Important Is a Neuron?", arXiv:1805.12233): the two algorithms, the layer
choice, the path rule and the neuron's position in its layer.

Conductance splits Integrated Gradients through a hidden layer: the conductance of
unit j is ``sum_i (x_i - x'_i) * int_0^1 dF/dy_j * dy_j/dx_i da`` along the
straight path from the baseline x' to the input x. Summed over the inputs it is
the layer conductance of unit j; kept per input for one unit it is the neuron
conductance ("which inputs feed this neuron"); summed over the units of a layer
every path crosses, it is Integrated Gradients again.

PyTorch models run captum's LayerConductance / NeuronConductance on the adapter's
module; other models with layer gradients (Keras) run the same algorithm on the
adapter's primitives, with the path points and step sizes captum uses. The
functions here take one input item (an image H x W x C or a row (F,)) and its
baseline, so image and row explainers share them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_core.adapters.base import ModelAdapter
from xai_core.explainers.base import Context, Explainer, param
from xai_core.explainers.integrated_gradients import (
    IntegratedGradientsParams,
    IntegratedGradientsRows,
    TabularIGParams,
    quadrature,
)
from xai_core.types import Capability, InputError, UnsupportedError

# the path parameters are Integrated Gradients' own: steps, baseline, quadrature rule
ConductanceParams = IntegratedGradientsParams
Progress = Callable[[float, str], None]


class ConductanceExplainer(Explainer):
    """What both conductance methods declare; subclasses implement :meth:`run`."""

    paper = "Dhamdhere, Sundararajan & Yan, 2018, How Important Is a Neuron?"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS, Capability.LAYER_GRADIENTS})
    uses_layer = True
    spatial_layers_only = False
    slow = True


@dataclass(frozen=True)
class RowConductanceParams(TabularIGParams):
    """Rows: the row IG's path parameters, and the layer (rows have no --layer)."""

    layer: str = param("", help="hidden layer by name or index (see python -m xai_core layers); "
                                "empty: the first layer with a vector output")


class RowConductanceExplainer(ConductanceExplainer):
    """The row form of a conductance method: the baseline row is the row IG's."""

    input_kind = "vector"

    def prepare(self, ctx: Context, params: RowConductanceParams) -> Any:
        return IntegratedGradientsRows().prepare(ctx, params)[0]  # one baseline row

    @staticmethod
    def layer(ctx: Context, params: RowConductanceParams) -> str:
        return ctx.adapter.resolve_layer(params.layer) or default_layer(ctx.adapter)


def path_rule(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, step sizes) as captum takes them: :func:`quadrature`'s, except that
    captum's trapezoid rule weighs its n points 1/n (the two ends 1/2n), which sum
    to 1 - 1/n; kept so that results equal captum's."""
    alphas, weights = quadrature(steps, method)
    if method == "riemann_trapezoid":
        weights = np.full(steps, 1.0 / steps)
        weights[[0, -1]] /= 2
    return alphas, weights


def default_layer(adapter: ModelAdapter) -> str:
    """The last convolution-like feature map, else the first vector layer (the first
    hidden layer of an MLP)."""
    default = adapter.default_cam_layer()
    if default is None:
        vectors = [info.name for info in adapter.layers() if info.vector]
        default = vectors[0] if vectors else None
    if default is None:
        raise UnsupportedError(f"{adapter.name} has no layer whose units can be attributed")
    return default


def layer_shape(adapter: ModelAdapter, layer: str) -> tuple[int, ...]:
    """(units,) or the canonical (C, h, w) of ``layer``'s output for one input; one
    line saying why for a layer whose output is neither (attention weights...)."""
    layout = unit_layout(adapter, layer)
    return layout.canonical_shape


def unit_layout(adapter: ModelAdapter, layer: str):
    """``layer``'s layout when its units can be attributed (a map or a vector)."""
    layout = adapter.layer_layout(layer)
    if not (layout.is_map or layout.kind == "vector"):
        raise layout.refusal(layer, "conductance", "a map or a vector of units")
    return layout


def neuron_position(shape: tuple[int, ...], neuron: int, layer: str) -> int | tuple[int, ...]:
    """A flat unit index -> captum's neuron selector (an int, or (c, i, j))."""
    size = int(np.prod(shape))
    if not 0 <= neuron < size:
        raise InputError(f"neuron {neuron} is out of range; layer {layer!r} has {size} units (0..{size - 1})")
    if len(shape) == 1:
        return int(neuron)
    return tuple(int(v) for v in np.unravel_index(neuron, shape))


def _batch(adapter: ModelAdapter, batch_size: int) -> int:
    return max(1, min(batch_size, adapter.max_batch or batch_size))


def _path(x: np.ndarray, base: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    a = alphas.astype(np.float32).reshape((-1,) + (1,) * x.ndim)
    return (base[None] + a * (x - base)[None]).astype(np.float32)


def _captum_tensors(adapter, x: np.ndarray, base: np.ndarray):
    import torch

    return (torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32)).to(adapter.device),
            torch.from_numpy(np.ascontiguousarray(base[None], dtype=np.float32)).to(adapter.device))


def layer_units(adapter: ModelAdapter, x: np.ndarray, base: np.ndarray, target: int, layer: str,
                steps: int, method: str, batch_size: int,
                progress: Progress | None = None) -> tuple[np.ndarray, int]:
    """Layer conductance of every unit of ``layer`` ((units,) or (C, h, w)) and the
    number of model evaluations (steps + 1)."""
    size = _batch(adapter, batch_size)
    layout = unit_layout(adapter, layer)
    if adapter.framework == "torch" and size > 1:  # captum differences two path points per batch
        from captum.attr import LayerConductance

        inputs, baselines = _captum_tensors(adapter, x, base)
        with adapter.lock:
            attr = LayerConductance(adapter.forward_scores, adapter.module(layer)).attribute(
                inputs, baselines=baselines, target=target, n_steps=steps, method=method,
                internal_batch_size=size,
            )
        return layout.fold(attr[0].detach().float().cpu().numpy(), batched=False), steps + 1
    # captum's algorithm: steps + 1 path points a_0 < ... < a_n (the rule's nodes for
    # steps + 1), sum_k dF/dy(a_k) * (y(a_{k+1}) - y(a_k))
    alphas, _ = quadrature(steps + 1, method)
    total = None
    previous = None  # the last path point's (activation, gradient) of the chunk before
    for start in range(0, len(alphas), size):
        stop = min(len(alphas), start + size)
        acts, grads, _ = adapter.layer_activations_and_gradients(_path(x, base, alphas[start:stop]), target, layer)
        if previous is not None:
            acts = np.concatenate([previous[0][None], acts])
            grads = np.concatenate([previous[1][None], grads])
        part = (grads[:-1].astype(np.float64) * (acts[1:] - acts[:-1])).sum(axis=0)
        total = part if total is None else total + part
        previous = (acts[-1], grads[-1])
        if progress is not None:
            progress(stop / len(alphas), f"{stop}/{len(alphas)} layer steps")
    return total, steps + 1


def neuron_inputs(adapter: ModelAdapter, x: np.ndarray, base: np.ndarray, target: int, layer: str,
                  neuron: int, steps: int, method: str, batch_size: int,
                  progress: Progress | None = None) -> tuple[np.ndarray, int]:
    """Neuron conductance of every input value (shaped like ``x``) for unit ``neuron``
    of ``layer``, and the number of model evaluations (steps)."""
    selector = neuron_position(layer_shape(adapter, layer), neuron, layer)
    layout = unit_layout(adapter, layer)
    if not isinstance(selector, int):  # the unit's place in the layer's own output
        selector = layout.raw_index(neuron)
    size = _batch(adapter, batch_size)
    if adapter.framework == "torch":
        from captum.attr import NeuronConductance

        inputs, baselines = _captum_tensors(adapter, x, base)
        with adapter.lock:
            attr = NeuronConductance(adapter.forward_scores, adapter.module(layer)).attribute(
                inputs, neuron_selector=selector, baselines=baselines, target=target, n_steps=steps,
                method=method, internal_batch_size=size,
            )
        return attr[0].detach().float().cpu().numpy(), steps
    # captum's algorithm: (x - x') * sum_k w_k dF/dy(a_k) dy/dx(a_k)
    alphas, weights = path_rule(steps, method)
    total = np.zeros_like(x, dtype=np.float64)
    for start in range(0, steps, size):
        stop = min(steps, start + size)
        d_input, d_unit = adapter.neuron_gradients(_path(x, base, alphas[start:stop]), target, layer, neuron)
        total += np.tensordot(weights[start:stop] * d_unit, d_input, axes=(0, 0))
        if progress is not None:
            progress(stop / steps, f"{stop}/{steps} steps")
    return total * (x - base), steps
