"""Every registered image explainer through one contract suite, on every PyTorch
model kind that can serve it: shape, finite values, determinism, seed effect."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FAST_PARAMS, torch_image_methods
from xai_core.explainers import REGISTRY, available_for
from xai_core.service import explain

IMAGE_METHODS = torch_image_methods()  # the Keras-only ones run their suite in test_keras_adapter


def test_registry_has_the_contract_methods():
    expected = {"saliency", "smoothgrad", "integrated_gradients", "grad_cam", "occlusion",
                "lime", "shap_partition", "shap_gradient"}
    assert expected <= set(IMAGE_METHODS)


@pytest.mark.parametrize("method", IMAGE_METHODS)
def test_contract_on_digits_cnn(method, digits_adapter, digit_image):
    params = FAST_PARAMS.get(method, {})
    first = explain(digits_adapter, digit_image, method, params, seed=3)
    again = explain(digits_adapter, digit_image, method, params, seed=3)
    assert first.attribution.shape == (32, 32)
    assert first.attribution.dtype == np.float32
    assert np.isfinite(first.attribution).all()
    assert np.abs(first.attribution).max() > 0, "an all-zero map explains nothing"
    np.testing.assert_array_equal(first.attribution, again.attribution)
    assert first.target == first.predictions[0].index == 7
    assert first.target_label == "7"
    assert first.model_evals >= 1 and first.elapsed_s > 0
    assert first.params == {**first.params, **{k: v for k, v in params.items()}}
    record = first.record()
    assert record["method"] == method and record["seed"] == 3


@pytest.mark.parametrize("method", [n for n in IMAGE_METHODS if REGISTRY[n].stochastic])
def test_seed_changes_stochastic_methods(method, digits_adapter, digit_image):
    params = FAST_PARAMS.get(method, {})
    a = explain(digits_adapter, digit_image, method, params, seed=1)
    b = explain(digits_adapter, digit_image, method, params, seed=2)
    assert not np.array_equal(a.attribution, b.attribution)


@pytest.mark.parametrize("kind", ["torchscript", "export", "state_dict"])
def test_every_available_method_runs_on_each_format(kind, digits_files, digit_image):
    from xai_core.loading.models import open_model

    adapter = open_model(digits_files[kind], arch="digits_cnn" if kind == "state_dict" else None)
    names = {e.name for e in available_for(adapter)}
    if kind == "torchscript":  # layers through the program's wrappers; LRP and DeepExplainer need a module
        assert {"grad_cam", "layer_conductance", "saliency"} <= names and "lrp" not in names
    else:
        assert set(IMAGE_METHODS) <= names
    for method in sorted(names):
        e = explain(adapter, digit_image, method, FAST_PARAMS.get(method, {}), seed=0)
        assert e.attribution.shape == (32, 32) and np.isfinite(e.attribution).all()
        assert e.target_label == "7"


def test_explicit_target_by_index_and_label(digits_adapter, digit_image):
    by_index = explain(digits_adapter, digit_image, "saliency", target=1)
    by_label = explain(digits_adapter, digit_image, "saliency", target="1")
    assert by_index.target == by_label.target == 1
    predicted = explain(digits_adapter, digit_image, "saliency")
    assert not np.allclose(by_index.attribution, predicted.attribution)


def test_lite0_explains_the_cat_with_every_method(lite0_adapter, cat_image):
    budgets = {**FAST_PARAMS, "occlusion": {"window": 56, "stride": 56}}
    for method in IMAGE_METHODS:
        e = explain(lite0_adapter, cat_image, method, budgets.get(method, {}), seed=0)
        assert e.target_label == "Egyptian cat"
        assert e.attribution.shape == (224, 224) and np.isfinite(e.attribution).all()
