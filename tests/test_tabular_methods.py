"""Every tabular method on models with known answers: ranking, additivity,
completeness, determinism, and the service's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from tabular_helpers import (
    FAST,
    FEATURES,
    KNOWN,
    SAMPLE_CSV,
    known_feature_onnx,
    known_feature_torch_module,
    synthetic_csv,
)

from xai_core.explainers import REGISTRY, available_for, get_explainer
from xai_core.tabular import explain_row, explain_rows, get_tabular_explainer, load_table, open_uploaded_model
from xai_core.types import InputError, UnsupportedError

ROWS = (0, 7, 31)


@pytest.fixture(scope="module")
def table():
    return load_table(synthetic_csv(), label_column="y", name="synthetic.csv")


@pytest.fixture(scope="module")
def torch_known():
    from xai_core.adapters.torch import TorchAdapter
    from xai_core.types import VectorSpec

    return TorchAdapter(known_feature_torch_module(), VectorSpec(), name="known_torch", device="cpu")


@pytest.fixture(scope="module")
def breast_cancer():
    from xai_core.loading.tables import open_tabular_model

    model = open_tabular_model("breast_cancer_mlp")
    return model, load_table(SAMPLE_CSV, label_column="target", n_features=model.n_features)


@pytest.fixture(scope="module")
def onnx_known():
    return open_uploaded_model("known.onnx", known_feature_onnx(zipmap=False))


def test_one_registry_serves_rows_and_images_without_ambiguity():
    rows = [e for e in REGISTRY.values() if e.input_kind == "vector"]
    assert {e.name for e in rows} == {"lime", "kernel_shap", "integrated_gradients", "layer_conductance",
                                      "neuron_conductance"}
    assert all(e.modality == "tabular" for e in rows)
    assert REGISTRY["lime"].input_kind == "image"  # image names keep their registry keys
    assert get_explainer("lime", "vector") is not get_explainer("lime", "image")
    assert get_explainer("lime", "vector") is REGISTRY["lime_tabular"]


@pytest.mark.parametrize("method", ["lime", "kernel_shap", "integrated_gradients"])
def test_known_feature_ranks_first_torch(table, torch_known, method):
    for row in ROWS:
        for target in (0, 1):
            expl = explain_row(torch_known, table, row, method, FAST[method], target=target, seed=1)
            ranked = expl.ranked()
            assert ranked[0][0] == FEATURES[KNOWN], (row, target, ranked[:3])
            others = max(abs(v) for f, v in ranked[1:])
            assert abs(ranked[0][1]) > 3 * others, (row, target, ranked[:3])


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_known_feature_ranks_first_onnx(table, onnx_known, method):
    for row in ROWS:
        expl = explain_row(onnx_known, table, row, method, FAST[method], target=1, seed=2)
        assert expl.ranked()[0][0] == FEATURES[KNOWN]


def test_kernel_shap_additivity(breast_cancer):
    model, data = breast_cancer
    for row in (0, 3, 42):
        expl = explain_row(model, data, row, "kernel_shap", FAST["kernel_shap"], seed=0)
        output = model.predict(data.x[row : row + 1])[0, expl.target]
        assert expl.base_value is not None
        assert abs(expl.base_value + sum(expl.by_feature().values()) - output) < 1e-5
        assert abs(expl.extras["additivity_error"]) < 1e-5
        # the base value is the model's mean output over the k-means background
        assert 0.0 < expl.base_value < 1.0


def test_integrated_gradients_completeness_and_captum_agreement(breast_cancer):
    import torch
    from captum.attr import IntegratedGradients

    model, data = breast_cancer
    row = 5
    expl = explain_row(model, data, row, "integrated_gradients", {"steps": 256, "baseline": "mean"}, target=1)
    outputs = model.predict(np.stack([data.x[row], data.feature_means()]))[:, 1]
    assert abs(expl.output - outputs[0]) < 1e-6
    assert abs(expl.base_value - outputs[1]) < 1e-6
    total = sum(expl.by_feature().values())
    assert abs(total - (outputs[0] - outputs[1])) < 5e-3
    assert abs(expl.extras["convergence_delta"]) < 5e-3
    # captum (the field's reference implementation) agrees feature by feature
    ig = IntegratedGradients(model.model)
    ref = ig.attribute(torch.from_numpy(data.x[row : row + 1]), torch.from_numpy(data.feature_means()[None]),
                       target=1, n_steps=256).numpy()[0]
    ours = np.array(list(expl.by_feature().values()))
    assert np.allclose(ours, ref, atol=1e-4 + 1e-3 * np.abs(ref).max())


def test_zero_baseline_changes_base_value(table, torch_known):
    a = explain_row(torch_known, table, 0, "integrated_gradients", {"baseline": "zeros"}, target=1)
    b = explain_row(torch_known, table, 0, "integrated_gradients", {"baseline": "mean"}, target=1)
    zero_out = 1 / (1 + np.exp(3.0))  # softmax([0, 1.5 * (0 - 2)])[1]
    assert a.base_value == pytest.approx(zero_out, abs=1e-6)
    mean_out = torch_known.predict(table.feature_means()[None])[0, 1]
    assert b.base_value == pytest.approx(float(mean_out), abs=1e-6)
    assert abs(a.base_value - b.base_value) > 1e-3


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
def test_seeded_methods_are_reproducible(breast_cancer, method):
    # 30 features: Kernel SHAP samples coalitions (with 6 it enumerates all of them)
    model, data = breast_cancer
    a = explain_row(model, data, 4, method, FAST[method], target=1, seed=7)
    b = explain_row(model, data, 4, method, FAST[method], target=1, seed=7)
    c = explain_row(model, data, 4, method, FAST[method], target=1, seed=8)
    assert a.by_feature() == b.by_feature()
    assert a.by_feature() != c.by_feature()
    state = np.random.get_state()[1].copy()
    explain_row(model, data, 4, method, FAST[method], target=1, seed=9)
    assert np.array_equal(np.random.get_state()[1], state)  # the global RNG is left alone


def test_explain_rows_matches_explain_row_and_reports_progress(table, torch_known):
    calls = []
    summary = explain_rows(torch_known, table, [3, 9, 12], "kernel_shap", FAST["kernel_shap"],
                           target=1, seed=3, progress=lambda f, t: calls.append((f, t)))
    alone = explain_row(torch_known, table, 9, "kernel_shap", FAST["kernel_shap"], target=1, seed=3)
    assert summary.explanations[1].by_feature() == alone.by_feature()
    assert list(summary.attributions.index) == [3, 9, 12]
    assert list(summary.attributions.columns) == FEATURES[:3] + FEATURES[3:]
    assert summary.mean_abs.index[0] == FEATURES[KNOWN]
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(calls) == 4
    table_out = summary.table()
    assert list(table_out.columns[:4]) == ["row", "label", "output", "base_value"]
    assert len(table_out) == 3
    assert summary.model_evals >= sum(e.model_evals for e in summary.explanations[1:])


def test_default_target_is_the_predicted_output(table, torch_known):
    expl = explain_row(torch_known, table, 0, "integrated_gradients", FAST["integrated_gradients"])
    probs = torch_known.predict(table.x[:1])[0]
    assert expl.target == int(np.argmax(probs))
    assert expl.predictions[0].index == expl.target
    named = explain_row(torch_known, table, 0, "integrated_gradients", target="class 0")
    assert named.target == 0


def test_onnx_has_no_integrated_gradients(table, onnx_known):
    assert {e.name for e in available_for(onnx_known, "vector")} == {"lime", "kernel_shap"}
    with pytest.raises(UnsupportedError, match="ONNX models offer predictions only"):
        explain_row(onnx_known, table, 0, "integrated_gradients")


def test_bad_params_and_rows_are_input_errors(table, torch_known):
    with pytest.raises(InputError, match="nsamples"):
        explain_row(torch_known, table, 0, "kernel_shap", {"nsamples": 2})
    with pytest.raises(InputError, match="unknown parameter"):
        explain_row(torch_known, table, 0, "lime", {"segments": 5})
    with pytest.raises(InputError, match="baseline must be one of"):
        explain_row(torch_known, table, 0, "integrated_gradients", {"baseline": "black"})
    with pytest.raises(InputError, match="out of range"):
        explain_row(torch_known, table, 120, "lime")
    with pytest.raises(InputError, match="target 5 is out of range"):
        explain_row(torch_known, table, 0, "lime", target=5)
    with pytest.raises(InputError, match="unknown tabular method"):
        get_tabular_explainer("grad_cam")


def test_explanation_pickles_and_records(table, torch_known):
    import json
    import pickle

    expl = explain_row(torch_known, table, 1, "lime", FAST["lime"], seed=0)
    clone = pickle.loads(pickle.dumps(expl))
    assert clone.by_feature() == expl.by_feature()
    record = json.loads(json.dumps(expl.record()))
    assert record["base_value"] is None and "local_prediction" in record["extras"]
    assert record["label"] == table.labels[1]
    assert record["feature_values"][FEATURES[KNOWN]] == pytest.approx(float(table.x[1, KNOWN]))
