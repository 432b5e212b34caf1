"""Integrated Gradients and expected gradients at a layer's output or input:
captum's LayerIntegratedGradients called on the same model, and the known answer
where the rest of the network is linear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xai_core import explain, load_image, open_model
from xai_core.inputs.images import preprocess
from xai_core.types import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    return open_model("digits_cnn", device="cpu")


@pytest.fixture(scope="module")
def digit():
    return load_image(ROOT / "sample_images" / "digit_9.png")


def _normalised(adapter, x01: np.ndarray) -> torch.Tensor:
    mean, std = adapter.spec.mean_array(), adapter.spec.std_array()
    return torch.from_numpy(((x01 - mean) / std).astype(np.float32)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize(("layer", "at"), [("features.3", "output"), ("classifier", "input")])
def test_layer_integrated_gradients_match_captum(digits, digit, layer, at):
    from captum.attr import LayerIntegratedGradients

    result = explain(digits, digit, "integrated_gradients", {"steps": 24, "at": at}, target=4, layer=layer)
    x = preprocess(digit, digits.spec)[None]
    module = dict(digits.model.named_modules())[layer]
    reference, delta = LayerIntegratedGradients(digits.model, module).attribute(
        _normalised(digits, x), baselines=_normalised(digits, np.zeros_like(x)), target=4, n_steps=24,
        method="gausslegendre", attribute_to_layer_input=at == "input", return_convergence_delta=True)
    np.testing.assert_allclose(result.layer_attribution, reference[0].detach().numpy(), atol=1e-5)
    assert result.layer == layer
    assert result.extras["convergence_delta"] == pytest.approx(float(delta[0]), abs=1e-4)
    assert result.attribution.shape == (32, 32)


def test_expected_gradients_at_the_last_dense_layer_input_are_exact(digits, digit):
    """After the classifier's input the model is linear, so against one black
    reference every sample gives w_target * (a - r)."""
    result = explain(digits, digit, "shap_gradient",
                     {"samples": 8, "background": "black", "background_size": 1, "at": "input"},
                     target=4, layer="classifier")
    x = preprocess(digit, digits.spec)[None]
    a = digits.layer_values(x, "classifier", "input")[0]
    r = digits.layer_values(np.zeros_like(x), "classifier", "input")[0]
    w = digits.model.classifier.weight[4].detach().numpy()
    np.testing.assert_allclose(result.layer_attribution, w * (a - r), atol=1e-5)
    assert result.record()["layer"] == "classifier"


def test_layer_on_a_method_without_layers_is_an_error(digits, digit):
    with pytest.raises(InputError, match="occlusion does not use a layer"):
        explain(digits, digit, "occlusion", layer="features.3")


def test_cli_writes_the_layer_attribution(tmp_path):
    from xai_core.cli.main import main

    out = tmp_path / "out"
    assert main(["explain", "--model", "digits_cnn", "--image", str(ROOT / "sample_images" / "digit_9.png"),
                 "--method", "integrated_gradients", "--layer", "features.3", "--param", "steps=8",
                 "--out", str(out)]) == 0
    values = np.load(out / "digit_9__integrated_gradients__layer.npy")
    assert values.ndim == 3 and values.shape[1:] == (16, 16)
