"""Layer conductance (Dhamdhere et al. 2018, arXiv:1805.12233): how much each unit
of a hidden layer carries of the change in the class score from a baseline to the
input.

``layer_attribution`` holds one value per unit: (units,) for a dense layer, drawn
as bars, (C, h, w) for a convolutional layer, drawn as its channel sum upsampled
over the image. The input map (``attribution``) is what those units decompose:
Integrated Gradients along the same path, the sum of every unit's neuron
conductance.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, RawAttribution, register
from xai_core.explainers.conductance import (
    ConductanceExplainer,
    ConductanceParams,
    RowConductanceExplainer,
    RowConductanceParams,
    default_layer,
    layer_units,
)
from xai_core.explainers.integrated_gradients import IntegratedGradientsRows, integrate, make_baseline


@register
class LayerConductance(ConductanceExplainer):
    name = "layer_conductance"
    label = "Layer conductance"
    description = ("How much each unit of a hidden layer (dense or convolutional) carries of the class "
                   "score's change from a baseline; with the input map it decomposes.")
    Params = ConductanceParams

    def planned_evals(self, params: ConductanceParams, adapter) -> int:
        """The layer's path (``steps`` points, forward and backward to the layer) and
        the input's own Integrated Gradients path beside it, plus their ends."""
        return 2 * params.steps + 3

    def run(self, ctx: Context, params: ConductanceParams) -> RawAttribution:
        layer = ctx.layer or default_layer(ctx.adapter)
        base = make_baseline(ctx.image, params.baseline, ctx.rng)
        units, evals = layer_units(ctx.adapter, ctx.image, base, ctx.target, layer, params.steps, params.method,
                                   ctx.batch_size, lambda f, text: ctx.progress(f / 2, text))
        ctx.model_evals += evals
        result = integrate(ctx, [base], params.steps, params.method)
        result.layer = layer
        result.layer_attribution = units.astype(np.float32)
        result.extras["layer_total"] = float(units.sum(dtype=np.float64))
        return result


@register
class LayerConductanceRows(RowConductanceExplainer):
    """The same method on table rows: per-unit values of a hidden layer, and the row's
    Integrated Gradients (same baseline row and path) as the feature attributions."""

    key = "layer_conductance_tabular"
    name = "layer_conductance"
    rank = 40
    label = LayerConductance.label
    description = LayerConductance.description
    Params = RowConductanceParams

    def planned_evals(self, params: RowConductanceParams, adapter) -> int:
        return 2 * params.steps + 3  # the layer's path (steps + 1), the row's IG (steps + 2)

    def run(self, ctx: Context, params: RowConductanceParams) -> RawAttribution:
        layer = self.layer(ctx, params)
        units, evals = layer_units(ctx.adapter, ctx.image.astype(np.float32), np.asarray(ctx.prepared, np.float32),
                                   ctx.target, layer, params.steps, params.method, ctx.batch_size)
        ctx.model_evals += evals
        ig = IntegratedGradientsRows().run(ctx, params)
        ig.extras["layer_total"] = float(units.sum(dtype=np.float64))
        ig.layer, ig.layer_attribution = layer, units.astype(np.float32)
        return ig
