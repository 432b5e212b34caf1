"""Integrated Gradients with a background the user gives: every item is a baseline
and the map is the mean of the IG maps over them. Checked against captum's
IntegratedGradients run once per baseline and averaged, for images (the zoo digits
CNN) and table rows (the zoo breast-cancer MLP), through the same parameter route
as shap_gradient's background_file (command line --param)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.test_reference_agreement import Normalised, nchw
from xai_core.inputs.images import preprocess
from xai_core.service import explain
from xai_core.types import InputError


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    path = tmp_path_factory.mktemp("ig_bg") / "bg.npy"
    np.save(path, np.random.default_rng(5).random((5, 32, 32, 1)).astype(np.float32))
    return path


def test_image_ig_over_a_background_equals_captum_averaged(digits_adapter, digit_image, background):
    from captum.attr import IntegratedGradients

    params = {"steps": 24, "background_file": str(background), "background_size": 3}
    ours = explain(digits_adapter, digit_image, "integrated_gradients", params, seed=2)
    picked = np.load(background)[np.sort(np.random.default_rng(2).choice(5, 3, replace=False))]  # the seed's pick
    wrapped = Normalised(digits_adapter.model, [0.5], [0.5]).eval()
    x = torch.from_numpy(preprocess(digit_image, digits_adapter.spec)).permute(2, 0, 1)[None].contiguous()
    refs, deltas = [], []
    for b in picked:
        ref, delta = IntegratedGradients(wrapped).attribute(
            x, baselines=torch.from_numpy(b).permute(2, 0, 1)[None].contiguous(), target=ours.target, n_steps=24,
            method="gausslegendre", return_convergence_delta=True)
        refs.append(ref[0].detach().numpy())
        deltas.append(float(delta[0]))
    mean = np.mean(refs, 0)
    np.testing.assert_allclose(nchw(ours.raw), mean, rtol=1e-3, atol=1e-6 * np.abs(mean).max())
    assert ours.extras["background_size"] == 3
    assert ours.extras["convergence_delta"] == pytest.approx(np.mean(deltas), abs=1e-3)
    one = explain(digits_adapter, digit_image, "integrated_gradients", {**params, "background_size": 1}, seed=2)
    assert not np.allclose(one.attribution, ours.attribution)  # the background is what is used


def test_ig_background_through_the_command_line_and_at_a_layer(tmp_path, background, digits_adapter):
    from tests.conftest import SAMPLES
    from xai_core.cli.main import main

    out = tmp_path / "out"
    code = main(["explain", "--model", "digits_cnn", "--image", str(SAMPLES / "digit_7.png"), "--method",
                 "integrated_gradients", "--param", "steps=8", f"background_file={background}", "background_size=2",
                 "--out", str(out)])
    assert code == 0
    (record,) = json.loads((out / "results.json").read_text())
    assert record["params"]["background_size"] == 2 and record["extras"]["background_size"] == 2
    with pytest.raises(InputError, match="at a layer takes one baseline"):
        explain(digits_adapter, np.zeros((32, 32, 3), np.uint8), "integrated_gradients",
                {"background_file": str(background)}, layer="features.3")


def test_row_ig_over_background_rows_equals_captum_averaged(tmp_path):
    import pandas as pd
    from captum.attr import IntegratedGradients

    from tests.test_tabular_methods import SAMPLE_CSV
    from xai_core.loading.tables import open_tabular_model
    from xai_core.tabular import explain_row, load_table

    model = open_tabular_model("breast_cancer_mlp")
    data = load_table(SAMPLE_CSV, label_column="target", n_features=model.n_features)
    rows = data.x[25:95]  # 70 rows: two gradient calls of up to 64 baselines
    path = tmp_path / "bg.csv"
    pd.DataFrame(rows, columns=data.feature_names).to_csv(path, index=False)
    params = {"steps": 32, "background_file": str(path), "background_size": 70}
    expl = explain_row(model, data, 5, "integrated_gradients", params, target=1, seed=0)
    ig = IntegratedGradients(model.model)
    x = torch.from_numpy(data.x[5:6])
    ref = np.mean([ig.attribute(x, torch.from_numpy(b[None]), target=1, n_steps=32).numpy()[0] for b in rows], 0)
    ours = np.array(list(expl.by_feature().values()))
    np.testing.assert_allclose(ours, ref, atol=1e-5 + 1e-4 * np.abs(ref).max())
    assert expl.extras["background_size"] == 70 and expl.extras["baseline"] == "background"
    outputs = model.predict(np.concatenate([data.x[5:6], rows]))[:, 1]
    assert expl.base_value == pytest.approx(float(outputs[1:].mean()), abs=1e-6)
