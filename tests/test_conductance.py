"""Layer and neuron conductance: PyTorch results equal captum called as a notebook
user calls it; the Keras algorithm (written on the adapter's primitives) equals
captum on the exact PyTorch twin; the units of a layer add up to Integrated
Gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from twin_models import digit_images, keras_twin, torch_digits

from tests.test_reference_agreement import Normalised
from xai_core.inputs.images import preprocess
from xai_core.service import explain
from xai_core.types import ImageSpec, InputError

SPEC = ImageSpec((32, 32), (0.5,), (0.5,), grayscale=True)
LABELS = [str(i) for i in range(10)]
STEPS = 16


@pytest.fixture(scope="module")
def twins():
    from xai_core.adapters.keras import KerasAdapter
    from xai_core.adapters.torch import TorchAdapter

    module = torch_digits()
    return (TorchAdapter(module, SPEC, LABELS, name="torch digits", device="cpu"),
            KerasAdapter(keras_twin(module), SPEC, LABELS, name="keras digits"))


@pytest.fixture(scope="module")
def image():
    return digit_images(1, offset=4)[0]


def reference_inputs(adapter, image):
    """What a captum user passes: the [0, 1] N x C x H x W tensor and the model with
    its normalisation inside."""
    wrapped = Normalised(adapter.model, [0.5], [0.5]).eval()
    x = torch.from_numpy(preprocess(image, adapter.spec)).permute(2, 0, 1)[None].contiguous()
    return wrapped, x


def close(ours: np.ndarray, reference: np.ndarray, tolerance: float = 1e-4) -> None:
    """Within ``tolerance`` of the largest magnitude (float32 sums in another order)."""
    scale = float(np.abs(reference).max())
    assert scale > 0
    np.testing.assert_allclose(ours, reference, atol=tolerance * scale, rtol=0)


@pytest.mark.parametrize(("layer", "captum_layer"), [("features", "features"), ("9", "classifier")])
def test_torch_layer_conductance_equals_captum(layer, captum_layer, twins, image):
    from captum.attr import IntegratedGradients, LayerConductance

    adapter = twins[0]
    ours = explain(adapter, image, "layer_conductance", {"steps": STEPS}, layer=layer)
    wrapped, x = reference_inputs(adapter, image)
    module = dict(wrapped.model.named_modules())[captum_layer]
    reference = LayerConductance(wrapped, module).attribute(
        x, baselines=torch.zeros_like(x), target=ours.target, n_steps=STEPS)[0].detach().numpy()
    assert ours.layer == captum_layer and ours.layer_attribution.shape == reference.shape
    close(ours.layer_attribution, reference)
    ig = IntegratedGradients(wrapped).attribute(x, baselines=torch.zeros_like(x), target=ours.target, n_steps=STEPS)
    close(ours.raw, ig[0].permute(1, 2, 0).detach().numpy())


def active_unit(adapter, image, layer: str) -> int:
    """The most active unit of ``layer`` for the image (a dead one explains nothing)."""
    acts, _, _ = adapter.layer_activations_and_gradients(preprocess(image, adapter.spec)[None], 0, layer)
    return int(acts[0].argmax())


@pytest.mark.parametrize("layer", ["features", "classifier"])
def test_torch_neuron_conductance_equals_captum(layer, twins, image):
    from captum.attr import NeuronConductance

    adapter = twins[0]
    neuron = active_unit(adapter, image, layer)
    shape = {"features": (64, 8, 8), "classifier": (10,)}[layer]
    selector = tuple(int(v) for v in np.unravel_index(neuron, shape)) if len(shape) > 1 else neuron
    ours = explain(adapter, image, "neuron_conductance", {"steps": STEPS, "neuron": neuron}, layer=layer)
    wrapped, x = reference_inputs(adapter, image)
    module = dict(wrapped.model.named_modules())[layer]
    reference = NeuronConductance(wrapped, module).attribute(
        x, neuron_selector=selector, baselines=torch.zeros_like(x), target=ours.target, n_steps=STEPS)
    assert ours.neuron == neuron and ours.layer == layer
    close(ours.raw, reference[0].permute(1, 2, 0).detach().numpy())


def test_keras_conductance_equals_captum_on_the_twin(twins, image):
    """The Keras path is our own code on the adapter primitives; its twin runs captum."""
    torch_adapter, keras_adapter = twins
    unit = active_unit(torch_adapter, image, "features")
    for params, torch_layer, keras_layer in [
        ({"steps": STEPS}, "features", "conv3"),
        ({"steps": STEPS, "neuron": unit}, "features", "conv3"),
        ({"steps": STEPS, "neuron": 3, "method": "gausslegendre"}, "classifier", "classifier"),
    ]:
        method = "neuron_conductance" if "neuron" in params else "layer_conductance"
        target = params.get("neuron") if torch_layer == "classifier" else None  # logit 3 feeds class 3 only
        theirs = explain(torch_adapter, image, method, params, layer=torch_layer, target=target)
        ours = explain(keras_adapter, image, method, params, layer=keras_layer, target=target)
        assert ours.target == theirs.target
        if method == "layer_conductance":
            close(ours.layer_attribution, theirs.layer_attribution)
        close(ours.raw, theirs.raw)


def test_neuron_conductances_of_a_layer_add_up_to_integrated_gradients(twins, image):
    """Every path crosses the classifier layer, so its ten units' neuron conductances
    sum to IG with the same steps (Dhamdhere et al. 2018, section 3)."""
    keras_adapter = twins[1]
    params = {"steps": 8, "method": "gausslegendre"}
    total = sum(explain(keras_adapter, image, "neuron_conductance", {**params, "neuron": j}, layer="classifier").raw
                for j in range(10))
    ig = explain(keras_adapter, image, "integrated_gradients", params)
    close(total, ig.raw, 1e-5)


def test_bad_neuron_and_layer_are_clear_errors(twins, image):
    with pytest.raises(InputError, match="neuron 10 is out of range.*10 units"):
        explain(twins[0], image, "neuron_conductance", {"steps": 4, "neuron": 10}, layer="classifier")
    with pytest.raises(InputError, match="no layer named"):
        explain(twins[1], image, "layer_conductance", {"steps": 4}, layer="nope")


def test_cli_writes_the_layer_attribution_and_the_neuron(tmp_path):
    import json

    from tests.test_cli import run_cli

    result = run_cli("explain", "--model", "digits_cnn", "--image", "sample_images/digit_7.png", "--method",
                     "layer_conductance", "neuron_conductance", "--layer", "9", "--param", "steps=4",
                     "neuron_conductance.neuron=7", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    layer, neuron = json.loads((tmp_path / "results.json").read_text())
    assert layer["layer"] == neuron["layer"] == "classifier" and neuron["neuron"] == 7 and layer["neuron"] is None
    units = np.load(layer["layer_attribution"])
    assert layer["layer_attribution"].endswith("digit_7__layer_conductance__layer.npy")
    assert units.shape == (10,) == tuple(layer["layer_attribution_shape"]) and units.dtype == np.float32
    assert "layer_attribution" not in neuron and np.load(neuron["attribution"]).shape == (32, 32)
