"""What the two conductance methods share (Dhamdhere, Sundararajan & Yan 2018,
"How Important Is a Neuron?", arXiv:1805.12233): parameters, the layer choice,
the baseline, and the neuron's position in its layer.

Conductance splits Integrated Gradients through a hidden layer: the conductance of
unit j is ``sum_i (x_i - x'_i) * int_0^1 dF/dy_j * dy_j/dx_i da`` along the
straight path from the baseline x' to the input x. Summed over the inputs it is
the layer conductance of unit j; kept per input for one unit it is the neuron
conductance ("which inputs feed this neuron"); summed over the units of a layer
every path crosses, it is Integrated Gradients again.

PyTorch models run captum's LayerConductance / NeuronConductance on the adapter's
module; other models with layer gradients (Keras) run the same algorithm on the
adapter's primitives, with the path points captum uses.
"""

from __future__ import annotations

import numpy as np

from ..types import Capability, InputError, UnsupportedError
from .base import Context, Explainer
from .integrated_gradients import IntegratedGradientsParams, make_baseline, quadrature

# the path parameters are Integrated Gradients' own: steps, baseline, quadrature rule
ConductanceParams = IntegratedGradientsParams


class ConductanceExplainer(Explainer):
    """What both conductance methods declare; subclasses implement :meth:`run`."""

    paper = "Dhamdhere, Sundararajan & Yan, 2018, How Important Is a Neuron?"
    requires = frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS, Capability.LAYER_GRADIENTS})
    uses_layer = True
    spatial_layers_only = False
    slow = True


def path_rule(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, step sizes) as captum takes them: :func:`quadrature`'s, except that
    captum's trapezoid rule weighs its n points 1/n (the two ends 1/2n), which sum
    to 1 - 1/n; kept so that results equal captum's."""
    alphas, weights = quadrature(steps, method)
    if method == "riemann_trapezoid":
        weights = np.full(steps, 1.0 / steps)
        weights[[0, -1]] /= 2
    return alphas, weights


def conductance_layer(ctx: Context) -> str:
    """The chosen layer, else the last convolution-like feature map, else the first
    vector layer (the first hidden layer of an MLP)."""
    if ctx.layer:
        return ctx.layer
    default = ctx.adapter.default_cam_layer()
    if default is None:
        vectors = [info.name for info in ctx.adapter.layers() if not info.spatial]
        default = vectors[0] if vectors else None
    if default is None:
        raise UnsupportedError(f"{ctx.adapter.name} has no layer whose units can be attributed")
    return default


def layer_shape(ctx: Context, layer: str) -> tuple[int, ...]:
    """(units,) or (C, h, w) of ``layer``'s output for one input."""
    for info in ctx.adapter.layers():
        if info.name == layer:
            return info.output_shape
    raise UnsupportedError(
        f"layer {layer!r} of {ctx.adapter.name} has no single output per forward pass (it runs more "
        "than once, or its output is neither a feature map nor a vector); pick another layer"
    )


def baseline(ctx: Context, how: str) -> np.ndarray:
    return make_baseline(ctx.image, how, ctx.rng)


def uses_captum(ctx: Context) -> bool:
    return ctx.adapter.framework == "torch"


def captum_tensors(ctx: Context, base: np.ndarray):
    """The image and the baseline as 1 x H x W x C tensors on the model's device."""
    import torch

    device = ctx.adapter.device
    return (torch.from_numpy(np.ascontiguousarray(ctx.image[None])).to(device),
            torch.from_numpy(np.ascontiguousarray(base[None], dtype=np.float32)).to(device))


def neuron_position(shape: tuple[int, ...], neuron: int, layer: str) -> int | tuple[int, ...]:
    """A flat unit index -> captum's neuron selector (an int, or (c, i, j))."""
    size = int(np.prod(shape))
    if not 0 <= neuron < size:
        raise InputError(f"neuron {neuron} is out of range; layer {layer!r} has {size} units (0..{size - 1})")
    if len(shape) == 1:
        return int(neuron)
    return tuple(int(v) for v in np.unravel_index(neuron, shape))
