"""The same CNN with identical weights in PyTorch and Keras gives the same
predictions and the same attributions: the explainers are written once against
the adapter primitives, so any difference would be an adapter bug (layout,
normalisation, score choice, layer gradients).

Tolerances (float32 on CPU; the two frameworks sum convolutions in different
orders): probabilities within 1e-5; every map within 1e-4 of its largest
magnitude, with the same seed for the stochastic ones (SmoothGrad, LIME, SHAP
expected gradients). Measured on this CPU: probabilities 1.2e-7; saliency 9e-8,
integrated gradients 1.4e-7, Grad-CAM 1.4e-7, SmoothGrad 2.9e-7, SHAP expected
gradients 2.7e-7, LIME 6e-8, occlusion 8e-6 (relative to the map's maximum).

SHAP Partition is the exception: with a budget (max_evals) shap expands the pixel
hierarchy adaptively, picking the next node by the size of its value, so output
differences of 1e-7 can expand a different node (measured: up to 23% of the map's
maximum at 120 evaluations). Its maps still share the efficiency sum and the base
value (within 1e-5) and correlate above 0.98; with the full budget (4200
evaluations for 32 x 32 pixels, too slow for this suite) the two maps agreed to a
relative L2 error of 8e-7 and 4e-3 on the two images tested.
"""

from __future__ import annotations

import numpy as np
import pytest
from twin_models import digit_images, keras_twin, torch_digits

from xai_core import service
from xai_core.types import ImageSpec

SPEC = ImageSpec((32, 32), (0.5,), (0.5,), grayscale=True)
LABELS = [str(i) for i in range(10)]
PARAMS = {
    "saliency": {},
    "integrated_gradients": {"steps": 16},
    "grad_cam": {},
    "smoothgrad": {"samples": 8},
    "lime": {"samples": 120, "segments": 16},
    "shap_partition": {"max_evals": 120},
    "occlusion": {"window": 8, "stride": 4},
    "shap_gradient": {"samples": 8, "background_size": 4},
}
GRADIENT_METHODS = {"saliency", "integrated_gradients", "grad_cam", "smoothgrad", "shap_gradient"}
MAP_TOLERANCE = 1e-4  # of the largest |attribution|


@pytest.fixture(scope="module")
def twins():
    from xai_core.adapters.keras import KerasAdapter
    from xai_core.adapters.torch import TorchAdapter

    module = torch_digits()
    torch_adapter = TorchAdapter(module, SPEC, LABELS, name="torch digits", device="cpu")
    keras_adapter = KerasAdapter(keras_twin(module), SPEC, LABELS, name="keras digits")
    return torch_adapter, keras_adapter


@pytest.fixture(scope="module")
def images():
    return digit_images(3)


def test_same_predictions_and_output_kind(twins, images):
    torch_adapter, keras_adapter = twins
    assert torch_adapter.output_kind == keras_adapter.output_kind == "logit"
    from xai_core.inputs.images import preprocess

    batch = np.stack([preprocess(im, SPEC) for im in images])
    p_torch, p_keras = torch_adapter.predict(batch), keras_adapter.predict(batch)
    assert np.abs(p_torch - p_keras).max() < 1e-5
    np.testing.assert_allclose(torch_adapter.logits_or_probs(batch), keras_adapter.logits_or_probs(batch),
                               atol=1e-4, rtol=1e-4)
    assert (p_torch.argmax(1) == p_keras.argmax(1)).all()


def test_same_layer_primitives(twins, images):
    """Grad-CAM's inputs themselves: the last conv block's activations and gradients
    (torch 'features' = after the third ReLU; Keras 'conv3' with its fused ReLU)."""
    torch_adapter, keras_adapter = twins
    from xai_core.inputs.images import preprocess

    x = preprocess(images[0], SPEC)[None]
    a_t, g_t, s_t = torch_adapter.layer_activations_and_gradients(x, 4, "features")
    a_k, g_k, s_k = keras_adapter.layer_activations_and_gradients(x, 4, "conv3")
    assert a_t.shape == a_k.shape == (1, 64, 8, 8)
    np.testing.assert_allclose(a_k, a_t, atol=1e-4 * np.abs(a_t).max())
    np.testing.assert_allclose(g_k, g_t, atol=1e-4 * np.abs(g_t).max())
    np.testing.assert_allclose(s_k, s_t, atol=1e-4)
    assert keras_adapter.default_cam_layer() == "conv3"


@pytest.mark.parametrize("method", list(PARAMS))
def test_same_attributions(twins, images, method):
    torch_adapter, keras_adapter = twins
    # two images for the gradient methods, one for the (slower) perturbation methods
    for image in images[: 2 if method in GRADIENT_METHODS else 1]:
        results = [
            service.explain(adapter, image, method, PARAMS[method], seed=3)
            for adapter in (torch_adapter, keras_adapter)
        ]
        e_torch, e_keras = results
        assert e_torch.target == e_keras.target
        scale = float(np.abs(e_torch.attribution).max())
        assert scale > 0, f"{method}: all-zero attribution, nothing compared"
        if method == "shap_partition":
            a, b = e_torch.attribution, e_keras.attribution
            assert abs(float(a.sum()) - float(b.sum())) < 1e-5
            assert abs(e_torch.extras["base_value"] - e_keras.extras["base_value"]) < 1e-5
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98
            continue
        diff = float(np.abs(e_torch.attribution - e_keras.attribution).max())
        assert diff <= MAP_TOLERANCE * scale, f"{method}: max diff {diff:.3g} vs scale {scale:.3g}"
        assert e_torch.model_evals == e_keras.model_evals


@pytest.mark.parametrize("method", ["integrated_gradients", "shap_gradient"])
def test_same_attributions_at_a_layer(twins, images, method):
    """The path methods at the last conv block (torch 'features', Keras 'conv3')."""
    torch_adapter, keras_adapter = twins
    params = {"steps": 8} if method == "integrated_gradients" else {"samples": 8, "background_size": 4}
    e_torch = service.explain(torch_adapter, images[0], method, params, seed=3, target=4, layer="features")
    e_keras = service.explain(keras_adapter, images[0], method, params, seed=3, target=4, layer="conv3")
    assert e_torch.layer_attribution.shape == e_keras.layer_attribution.shape == (64, 8, 8)
    scale = float(np.abs(e_torch.layer_attribution).max())
    assert scale > 0
    np.testing.assert_allclose(e_keras.layer_attribution, e_torch.layer_attribution, atol=1e-4 * scale)
