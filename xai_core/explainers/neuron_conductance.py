"""Neuron conductance (Dhamdhere et al. 2018, arXiv:1805.12233): which inputs feed
one unit of a hidden layer, in the class score's change from a baseline.

``neuron`` is a flat index into the layer's output (C x h x w order for a
convolutional layer, as ``python -m xai_core layers`` shows the shape). The input
map is the normal ``attribution``; summed over every unit of a layer that every
path crosses, neuron conductances give Integrated Gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Context, RawAttribution, channel_sum, param, register
from .conductance import (
    ConductanceExplainer,
    ConductanceParams,
    baseline,
    captum_tensors,
    conductance_layer,
    layer_shape,
    neuron_position,
    path_rule,
    uses_captum,
)


@dataclass(frozen=True)
class NeuronConductanceParams(ConductanceParams):
    method: str = param(  # captum's NeuronConductance defaults to the trapezoid rule
        "riemann_trapezoid", choices=("gausslegendre", "riemann_trapezoid", "riemann_middle"),
        help="quadrature rule for the path integral",
    )
    neuron: int = param(0, low=0, high=2**31 - 1,
                        help="the unit of the layer: a flat index into its output (C x h x w order)")


@register
class NeuronConductance(ConductanceExplainer):
    name = "neuron_conductance"
    label = "Neuron conductance"
    description = "Which inputs feed one unit of a hidden layer, in the class score's change from a baseline."
    Params = NeuronConductanceParams

    def run(self, ctx: Context, params: NeuronConductanceParams) -> RawAttribution:
        layer = conductance_layer(ctx)
        selector = neuron_position(layer_shape(ctx, layer), params.neuron, layer)
        base = baseline(ctx, params.baseline)
        if uses_captum(ctx):
            raw = self._captum(ctx, layer, selector, base, params)
        else:
            raw = self._on_primitives(ctx, layer, base, params)
        raw = raw.astype(np.float32)
        return RawAttribution(
            channel_sum(raw) if raw.ndim == 3 else raw, raw=raw, layer=layer, neuron=params.neuron,
            extras={"neuron_total": float(raw.sum(dtype=np.float64))},
        )

    def _captum(self, ctx: Context, layer: str, selector, base: np.ndarray,
                params: NeuronConductanceParams) -> np.ndarray:
        from captum.attr import NeuronConductance as CaptumNeuronConductance

        adapter = ctx.adapter
        x, b = captum_tensors(ctx, base)
        with adapter.lock:
            attr = CaptumNeuronConductance(adapter.forward_scores, adapter.module(layer)).attribute(
                x, neuron_selector=selector, baselines=b, target=ctx.target, n_steps=params.steps,
                method=params.method, internal_batch_size=ctx.batch_size,
            )
        ctx.model_evals += params.steps
        return attr[0].detach().float().cpu().numpy()

    def _on_primitives(self, ctx: Context, layer: str, base: np.ndarray,
                       params: NeuronConductanceParams) -> np.ndarray:
        """captum's algorithm: (x - x') * sum_k w_k dF/dy(a_k) dy/dx(a_k)."""
        x = ctx.image
        alphas, weights = path_rule(params.steps, params.method)
        diff = x - base
        total = np.zeros_like(x, dtype=np.float64)
        for start, stop in ctx.chunks(params.steps):
            a = alphas[start:stop].astype(np.float32).reshape((-1,) + (1,) * x.ndim)
            d_input, d_unit = ctx.neuron_gradients(base[None] + a * diff[None], layer, params.neuron)
            total += np.tensordot(weights[start:stop] * d_unit, d_input, axes=(0, 0))
            ctx.progress(stop / params.steps, f"{stop}/{params.steps} steps")
        return total * diff
