"""A Keras MLP built with one Input per column (an Embedding for the categorical
one) ending in one sigmoid: a table row feeds the inputs column by column, the
model is a binary classifier, and Kernel SHAP over many rows equals shap's
KernelExplainer called on the same function, with a summary on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tabular_helpers import keras_available

pytestmark = pytest.mark.skipif(not keras_available(), reason="keras is not installed")


@pytest.fixture(scope="module")
def census(tmp_path_factory):
    import pandas as pd
    from tabular_helpers import keras

    k = keras()
    k.utils.set_random_seed(0)
    age, hours = k.Input((1,), name="age"), k.Input((1,), name="hours")
    work = k.Input((1,), name="workclass", dtype="int32")
    embedded = k.layers.Flatten()(k.layers.Embedding(4, 3)(work))
    hidden = k.layers.Dense(8, activation="relu")(k.layers.Concatenate()([age, hours, embedded]))
    model = k.Model([age, hours, work], k.layers.Dense(1, activation="sigmoid")(hidden))
    folder = tmp_path_factory.mktemp("census")
    model.save(folder / "census.keras")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"hours": rng.normal(0, 1, 60), "workclass": rng.integers(0, 4, 60),
                          "age": rng.normal(0, 1, 60), "income": rng.integers(0, 2, 60)})
    frame.to_csv(folder / "census.csv", index=False)
    return folder, model


def test_row_feeds_one_input_per_column(census):
    from xai_core.tabular import load_table, open_tabular_model

    folder, model = census
    adapter = open_tabular_model(folder / "census.keras")
    assert adapter.feature_names == ["age", "hours", "workclass"] and adapter.n_features == 3
    assert adapter.output_kind == "sigmoid" and adapter.num_classes == 2
    data = load_table(folder / "census.csv", label_column="income", n_features=3,
                      model_features=adapter.feature_names)  # columns matched by name, not file order
    x = data.x[:5]
    p = model.predict([x[:, :1], x[:, 1:2], x[:, 2:].astype("int32")], verbose=0)[:, 0]
    np.testing.assert_allclose(adapter.predict(x), np.stack([1 - p, p], 1), atol=1e-6)


def test_kernel_shap_over_rows_matches_shap(census):
    import shap

    from xai_core.tabular import explain_row, load_table, open_tabular_model

    folder, _ = census
    adapter = open_tabular_model(folder / "census.keras")
    data = load_table(folder / "census.csv", label_column="income", n_features=3, model_features=adapter.feature_names)
    params = {"nsamples": 100, "background_size": 10, "background": "sample"}
    ours = explain_row(adapter, data, 3, "kernel_shap", params, target=1, seed=5)
    rng = np.random.default_rng(5)
    background = data.x[np.sort(rng.choice(data.n_rows, size=10, replace=False))].astype(np.float64)
    reference = shap.KernelExplainer(lambda z: adapter.target_scores(z.astype(np.float32), 1), background)
    np.random.seed(5)
    values = reference.shap_values(data.x[3].astype(np.float64)[None], nsamples=100, l1_reg=False, silent=True)
    np.testing.assert_allclose(list(ours.by_feature().values()), np.ravel(values), atol=1e-6)
    assert list(ours.by_feature()) == ["age", "hours", "workclass"]


def test_cli_writes_the_summary_over_rows(census, tmp_path):
    from xai_core.cli.tabular import main

    folder, _ = census
    out = tmp_path / "out"
    assert main(["explain-tabular", "--model", str(folder / "census.keras"), "--data", str(folder / "census.csv"),
                 "--label-column", "income", "--row", "0-9", "--method", "kernel_shap",
                 "--param", "nsamples=64", "background_size=8", "--target", "1", "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())
    assert [r["row"] for r in records] == list(range(10))
    importance = (out / "kernel_shap__importance.csv").read_text().splitlines()
    assert importance[0] == "feature,mean_abs_attribution" and len(importance) == 4
    assert len((out / "kernel_shap__summary.csv").read_text().splitlines()) == 11
