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

from xai_core.explainers.base import Context, RawAttribution, channel_sum, param, register
from xai_core.explainers.conductance import (
    ConductanceExplainer,
    ConductanceParams,
    RowConductanceExplainer,
    RowConductanceParams,
    default_layer,
    neuron_inputs,
)
from xai_core.explainers.integrated_gradients import make_baseline


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

    def planned_evals(self, params: NeuronConductanceParams, adapter) -> int:
        return params.steps  # one path point each

    def run(self, ctx: Context, params: NeuronConductanceParams) -> RawAttribution:
        layer = ctx.layer or default_layer(ctx.adapter)
        base = make_baseline(ctx.image, params.baseline, ctx.rng)
        raw, evals = neuron_inputs(ctx.adapter, ctx.image, base, ctx.target, layer, params.neuron, params.steps,
                                   params.method, ctx.batch_size, ctx.progress)
        ctx.model_evals += evals
        raw = raw.astype(np.float32)
        return RawAttribution(
            channel_sum(raw) if raw.ndim == 3 else raw, raw=raw, layer=layer, neuron=params.neuron,
            extras={"neuron_total": float(raw.sum(dtype=np.float64))},
        )


@dataclass(frozen=True)
class RowNeuronConductanceParams(RowConductanceParams):
    method: str = NeuronConductanceParams.__dataclass_fields__["method"]
    neuron: int = NeuronConductanceParams.__dataclass_fields__["neuron"]


@register
class NeuronConductanceRows(RowConductanceExplainer):
    """The same method on table rows: which features feed one hidden unit."""

    key = "neuron_conductance_tabular"
    name = "neuron_conductance"
    rank = 41
    label = NeuronConductance.label
    description = NeuronConductance.description
    Params = RowNeuronConductanceParams

    def planned_evals(self, params: RowNeuronConductanceParams, adapter) -> int:
        return params.steps

    def run(self, ctx: Context, params: RowNeuronConductanceParams) -> RawAttribution:
        layer = self.layer(ctx, params)
        raw, evals = neuron_inputs(ctx.adapter, ctx.image.astype(np.float32), np.asarray(ctx.prepared, np.float32),
                                   ctx.target, layer, params.neuron, params.steps, params.method, ctx.batch_size)
        ctx.model_evals += evals
        return RawAttribution(raw.astype(np.float64), extras={"neuron_total": float(raw.sum(dtype=np.float64))},
                              layer=layer, neuron=params.neuron)
