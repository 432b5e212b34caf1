"""Table columns matched to models whose input names differ from them (issue 20):
ignoring case, '-', ' ' and '_' when unambiguous; by position on the user's
explicit choice for inputs without names of their own; ambiguous stays an error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xai_core.inputs.tables import generated_names, load_table, match_model_features
from xai_core.types import InputError

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["Age", "Education-Num", "Capital Gain", "Hours per week"]


def test_names_match_ignoring_case_and_separators():
    columns = ["capital gain", "AGE", "education-num", "income"]
    got = match_model_features(columns, ["Age", "Education_Num", "Capital-Gain"], "income")
    assert got == ["AGE", "education-num", "capital gain"]  # the table's names, in the model's order
    # an exact name wins over a loose one
    assert match_model_features(["a_b", "a-b"], ["a-b", "a_b"], None) == ["a-b", "a_b"]


def test_an_ambiguous_match_stays_an_error():
    with pytest.raises(InputError, match=r"could be any of the columns 'capital gain', 'Capital_Gain'"):
        match_model_features(["capital gain", "Capital_Gain", "age"], ["Capital-Gain", "Age"], None)


def test_generated_input_names_need_the_explicit_choice():
    assert generated_names(["input_layer", "input_layer_1", "input_layer_12"])
    assert generated_names(["input.1", "input.7"]) and generated_names(["keras_tensor_3", "args_0"])
    assert not generated_names(["input_layer", "Age"]) and not generated_names([])
    with pytest.raises(InputError, match="carry no names of their own.*--columns-in-order"):
        match_model_features(COLUMNS, ["input_layer", "input_layer_1", "input_layer_2", "input_layer_3"], None)
    paired = match_model_features(COLUMNS, ["input_layer", "input_layer_1", "input_layer_2", "input_layer_3"],
                                  None, in_order=True)
    assert paired == COLUMNS
    with pytest.raises(InputError, match="takes 3 inputs in order but 4"):
        match_model_features(COLUMNS, ["input.1", "input.2", "input.3"], None, in_order=True)


def _census_table(path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.integers(17, 90, 40), rng.integers(1, 16, 40), rng.integers(0, 5000, 40),
                            rng.integers(10, 60, 40)])
    lines = [",".join([*COLUMNS, "Income"])] + [",".join(map(str, [*r, int(r[1] > 9)])) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _chapter_census_models(out: Path) -> dict[str, Path]:
    """As the book chapter builds it: one Input per column, concatenated, dense;
    once with unnamed inputs, once with inputs named as Keras renames the columns."""
    code = (
        "import sys, keras\n"
        "for path, names in ((sys.argv[1], None), (sys.argv[2], ['Age', 'Education_Num', 'Capital_Gain', "
        "'Hours_per_week'])):\n"
        "    keras.utils.set_random_seed(0)\n"
        "    ins = [keras.Input((1,), name=None if names is None else n) for n in (names or range(4))]\n"
        "    h = keras.layers.Dense(8, activation='relu')(keras.layers.Concatenate()(ins))\n"
        "    keras.Model(ins, keras.layers.Dense(1, activation='sigmoid')(h)).save(path)\n"
    )
    paths = {"unnamed": out / "census_unnamed.keras", "renamed": out / "census_renamed.keras"}
    subprocess.run([sys.executable, "-c", code, str(paths["unnamed"]), str(paths["renamed"])], check=True,
                   capture_output=True, timeout=300)
    return paths


@pytest.fixture(scope="module")
def census(tmp_path_factory):
    out = tmp_path_factory.mktemp("census")
    return {"table": _census_table(out / "census.csv"), **_chapter_census_models(out)}


def test_census_table_feeds_the_chapters_models(census, tmp_path):
    from xai_core.inputs.tables import model_columns
    from xai_core.loading.tables import open_tabular_model
    from xai_core.service.rows import explain_row

    unnamed = open_tabular_model(census["unnamed"])
    assert model_columns(unnamed) == ["input_layer", "input_layer_1", "input_layer_2", "input_layer_3"]
    with pytest.raises(InputError, match="--columns-in-order"):
        load_table(census["table"], label_column="Income", model_features=model_columns(unnamed),
                   n_features=unnamed.n_features)
    data = load_table(census["table"], label_column="Income", model_features=model_columns(unnamed),
                      n_features=unnamed.n_features, columns_in_order=True)
    assert data.feature_names == COLUMNS
    exp = explain_row(unnamed, data, 3, "kernel_shap", {"nsamples": 64, "background_size": 10})
    assert exp.feature_names == COLUMNS
    # the row's own values went in, in the model's input order: SHAP's values add up to its output
    out = float(unnamed.explained_scores(data.x[3][None])[0, 0])
    assert exp.base_value + float(np.sum(exp.attributions)) == pytest.approx(out, abs=1e-3)

    renamed = open_tabular_model(census["renamed"])
    data = load_table(census["table"], label_column="Income", model_features=model_columns(renamed),
                      n_features=renamed.n_features)  # Education_Num <- Education-Num, by loose name
    assert data.feature_names == COLUMNS



def _onnx_without_names(path: Path) -> Path:
    """One input of 4 features called 'input.1' (as torch.onnx.export names it)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input.1", "w"], ["z"]), helper.make_node("Sigmoid", ["z"], ["y"])], "g",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor("w", TensorProto.FLOAT, [4, 1], [0.01, 0.2, 0.0001, 0.03])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_sidecar_columns_pair_the_inputs_with_the_table(census, tmp_path):
    pytest.importorskip("onnx")
    from xai_core.inputs.tables import model_columns
    from xai_core.loading.tables import open_tabular_model

    path = _onnx_without_names(tmp_path / "census.onnx")
    shuffled = ["Hours per week", "Age", "Capital Gain", "Education-Num"]  # the model's own input order
    path.with_suffix(".json").write_text(json.dumps({"columns": shuffled, "label_column": "Income"}))
    model = open_tabular_model(path)
    assert model_columns(model) == shuffled
    data = load_table(census["table"], label_column="Income", model_features=model_columns(model),
                      n_features=model.n_features)
    assert data.feature_names == shuffled
    raw = np.loadtxt(census["table"], delimiter=",", skiprows=1, dtype=np.float32)
    np.testing.assert_array_equal(data.x, raw[:, [3, 0, 2, 1]])


def test_columns_in_order_from_the_command_line(census, tmp_path):
    done = subprocess.run([sys.executable, "-m", "xai_core", "explain-tabular", "--model", str(census["unnamed"]),
                           "--data", str(census["table"]), "--label-column", "Income", "--row", "0",
                           "--method", "lime", "--param", "samples=100", "--out", str(tmp_path / "out"),
                           "--columns-in-order"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "results.json").read_text())[0]
    first = np.loadtxt(census["table"], delimiter=",", skiprows=1, dtype=np.float32)[0]
    assert record["feature_values"] == dict(zip(COLUMNS, first[:4].tolist(), strict=True))
