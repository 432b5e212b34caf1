"""Path attributions at a layer (the template shap_gradient and integrated_gradients
use when given a layer): the path runs through the layer's output (or input)
values instead of the image, from reference values to the image's values, and the
attribution is one value per unit of that layer (``layer_attribution``: the
canonical C x h x w map for a layer whose output is a map, whatever its own layout,
one per unit for a dense one; a layer whose axes are not established is refused), as captum's
LayerIntegratedGradients and shap's GradientExplainer on ``(model, layer)`` do.
"""

from __future__ import annotations

import numpy as np

from xai_core.explainers.base import Context, RawAttribution
from xai_core.inputs.images import resize_map


def layer_path_attribution(ctx: Context, references: np.ndarray, alphas: np.ndarray, weights: np.ndarray,
                           picks: np.ndarray | None, where: str, extras: dict) -> RawAttribution:
    """sum_k weights_k * grad f(r_k + alpha_k (a - r_k)) * (a - r_k) at the layer, where
    a is the image's value there and r_k the reference values (``picks`` chooses a
    reference per path point; None uses ``references[0]`` throughout). Returns the
    layer attribution, with its channel sum upsampled to the input for conv layers."""
    layer = ctx.layer
    a = ctx.adapter.layer_values(ctx.one(), layer, where)[0]
    layout = ctx.adapter.unit_layout(layer, where, a.shape)
    chosen_refs = references[picks] if picks is not None else np.repeat(references[:1], len(alphas), axis=0)
    total = np.zeros_like(a, dtype=np.float64)
    total_sq = np.zeros_like(a, dtype=np.float64)
    for start, stop in ctx.chunks(len(alphas)):
        refs = chosen_refs[start:stop]
        delta = a[None] - refs
        path = refs + alphas[start:stop].astype(np.float32).reshape(-1, *[1] * a.ndim) * delta
        batch = ctx.adapter.join([np.repeat(x[None], stop - start, axis=0) for x in ctx.inputs])
        ctx.model_evals += stop - start
        grads, _ = ctx.adapter.layer_gradients_at(batch, ctx.target, layer, path, where, ctx.batch_size)
        sample = grads.astype(np.float64) * delta
        total += np.tensordot(weights[start:stop], sample, axes=(0, 0))
        total_sq += np.tensordot(weights[start:stop], sample**2, axes=(0, 0))
        ctx.progress(stop / len(alphas), f"{stop}/{len(alphas)} at {layer}")
    units = layout.fold(total.astype(np.float32), batched=False)
    h, w = ctx.image.shape[:2]
    shown = resize_map(units.sum(0), h, w) if units.ndim == 3 else np.zeros((h, w), np.float32)
    extras = {**extras, "layer_where": where, "layer_units": int(units.size)}
    if picks is not None:  # expected gradients: equal weights 1/n, so the variance of the mean follows
        n = len(alphas)
        var = np.maximum(total_sq - total**2, 0) / n
        extras["layer_variance"] = layout.fold(var.astype(np.float32), batched=False)
    return RawAttribution(shown, layer=layer, layer_attribution=units, extras=extras)
