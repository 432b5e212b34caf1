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

from .base import Context, RawAttribution, register
from .conductance import (
    ConductanceExplainer,
    ConductanceParams,
    baseline,
    captum_tensors,
    conductance_layer,
    uses_captum,
)
from .integrated_gradients import integrate, quadrature


@register
class LayerConductance(ConductanceExplainer):
    name = "layer_conductance"
    label = "Layer conductance"
    description = ("How much each unit of a hidden layer (dense or convolutional) carries of the class "
                   "score's change from a baseline; with the input map it decomposes.")
    Params = ConductanceParams

    def run(self, ctx: Context, params: ConductanceParams) -> RawAttribution:
        layer = conductance_layer(ctx)
        base = baseline(ctx, params.baseline)
        if uses_captum(ctx) and ctx.batch_size > 1:  # captum differences two path points per batch
            units = self._captum(ctx, layer, base, params)
        else:
            units = self._on_primitives(ctx, layer, base, params)
        result = integrate(ctx, base, params.steps, params.method)
        result.layer = layer
        result.layer_attribution = units.astype(np.float32)
        result.extras["layer_total"] = float(units.sum(dtype=np.float64))
        return result

    def _captum(self, ctx: Context, layer: str, base: np.ndarray, params: ConductanceParams) -> np.ndarray:
        from captum.attr import LayerConductance as CaptumLayerConductance

        adapter = ctx.adapter
        x, b = captum_tensors(ctx, base)
        with adapter.lock:
            attr = CaptumLayerConductance(adapter.forward_scores, adapter.module(layer)).attribute(
                x, baselines=b, target=ctx.target, n_steps=params.steps, method=params.method,
                internal_batch_size=ctx.batch_size,
            )
        ctx.model_evals += params.steps + 1
        return attr[0].detach().float().cpu().numpy()

    def _on_primitives(self, ctx: Context, layer: str, base: np.ndarray, params: ConductanceParams) -> np.ndarray:
        """captum's algorithm: steps + 1 path points a_0 < ... < a_n (the rule's nodes
        for steps + 1), sum_k dF/dy(a_k) * (y(a_{k+1}) - y(a_k))."""
        x = ctx.image
        alphas, _ = quadrature(params.steps + 1, params.method)
        diff = x - base
        total = None
        previous = None  # the last path point's (activation, gradient) of the chunk before
        points = len(alphas)
        for start, stop in ctx.chunks(points):
            a = alphas[start:stop].astype(np.float32).reshape((-1,) + (1,) * x.ndim)
            acts, grads, _ = ctx.layer_gradients(layer, base[None] + a * diff[None])
            if previous is not None:
                acts = np.concatenate([previous[0][None], acts])
                grads = np.concatenate([previous[1][None], grads])
            part = (grads[:-1].astype(np.float64) * (acts[1:] - acts[:-1])).sum(axis=0)
            total = part if total is None else total + part
            previous = (acts[-1], grads[-1])
            ctx.progress(stop / points / 2, f"{stop}/{points} layer steps")
        return total
