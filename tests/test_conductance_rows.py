"""The issue's Titanic row: a PyTorch MLP (12 features, sigmoid layers), IG, then
LayerConductance on the first hidden layer and NeuronConductance for neurons 0 and
10, equal to captum called as its Titanic tutorial calls it (zero baselines)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from tests.test_cli import run_cli
from xai_core.tabular import explain_row, load_table, open_tabular_model

CSV = ROOT / "sample_data" / "titanic_synthetic.csv"


@pytest.fixture(scope="module")
def titanic():
    model = open_tabular_model("titanic_mlp")
    data = load_table(CSV, label_column="survived", n_features=model.n_features, model_features=model.feature_names)
    return model, data


def test_titanic_layer_and_neuron_conductance_equal_captum(titanic):
    from captum.attr import LayerConductance, NeuronConductance

    model, data = titanic
    net = model.model
    x = torch.from_numpy(data.x[:1].astype(np.float32))
    params = {"layer": "sigmoid1", "baseline": "zeros", "steps": 50}
    layer = explain_row(model, data, 0, "layer_conductance", params, target=1)
    reference = LayerConductance(net, net.sigmoid1).attribute(x, target=1)[0].detach().numpy()
    assert layer.layer == "sigmoid1" and len(layer.layer_attribution) == 12
    np.testing.assert_allclose(layer.layer_attribution, reference, rtol=1e-4, atol=1e-6)
    ig = explain_row(model, data, 0, "integrated_gradients", {"baseline": "zeros", "steps": 50}, target=1)
    assert layer.by_feature() == pytest.approx(ig.by_feature())  # the input side: IG on the same path
    for neuron in (0, 10):
        by_index = explain_row(model, data, 0, "neuron_conductance",
                               {"layer": "1", "baseline": "zeros", "neuron": neuron, "steps": 50}, target=1)
        reference = NeuronConductance(net, net.sigmoid1).attribute(x, neuron_selector=neuron, target=1)
        assert by_index.layer == "sigmoid1" and by_index.neuron == neuron
        np.testing.assert_allclose(list(by_index.by_feature().values()), reference[0].detach().numpy(),
                                   rtol=1e-4, atol=1e-7)


def test_titanic_conductance_from_the_command_line(tmp_path):
    listing = run_cli("layers", "--model", "titanic_mlp")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[2].split()[:4] == ["1", "sigmoid1", "Sigmoid", "12"]
    assert "vector of 12 units" in listing.stdout.splitlines()[2]
    result = run_cli("explain-tabular", "--model", "titanic_mlp", "--row", "0", "--method", "layer_conductance",
                     "neuron_conductance", "--param", "layer=sigmoid1", "neuron_conductance.neuron=10",
                     "steps=8", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    layer, neuron = json.loads((tmp_path / "results.json").read_text())
    assert layer["layer"] == "sigmoid1" and len(layer["layer_attribution"]) == 12 and layer["neuron"] is None
    assert neuron["neuron"] == 10 and neuron["layer_attribution"] is None
    np.testing.assert_allclose(np.load(tmp_path / "row0__layer_conductance__layer.npy"), layer["layer_attribution"],
                               rtol=1e-6)
