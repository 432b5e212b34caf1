"""The explain-tabular subcommand, driven through add_parser/run as the main
command line will drive it."""

from __future__ import annotations

import argparse
import json

import pytest
from PIL import Image
from tabular_helpers import FEATURES, KNOWN, SAMPLE_CSV, known_feature_onnx, synthetic_csv

from xai_core.cli.tabular import add_parser, main, run

CONTRACT = {"row", "method", "target", "target_label", "predictions", "attributions", "base_value",
            "params", "model_evals", "elapsed_s"}


def _parse(argv):
    parser = argparse.ArgumentParser(prog="xai")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return parser.parse_args(argv)


def test_zoo_model_writes_results_and_charts(tmp_path, capsys):
    out = tmp_path / "out"
    args = _parse(["explain-tabular", "--model", "breast_cancer_mlp", "--data", str(SAMPLE_CSV),
                   "--label-column", "target", "--row", "0", "4", "--method", "kernel_shap", "integrated_gradients",
                   "--out", str(out), "--param", "nsamples=120", "background_size=10", "integrated_gradients.steps=40",
                   "--target", "benign", "--seed", "3"])
    assert args.func is run
    assert run(args) == 0
    records = json.loads((out / "results.json").read_text())
    assert [(r["row"], r["method"]) for r in records] == [
        (0, "kernel_shap"), (0, "integrated_gradients"), (4, "kernel_shap"), (4, "integrated_gradients")]
    for r in records:
        assert CONTRACT <= set(r)
        assert r["target"] == 1 and r["target_label"] == "benign"
        assert len(r["attributions"]) == 30 and "target" not in r["attributions"]
        assert r["predictions"][0]["label"] in ("benign", "malignant")
        assert r["model_evals"] > 0 and r["elapsed_s"] >= 0
        assert abs(r["base_value"] + sum(r["attributions"].values()) - r["output"]) < 5e-3
        with Image.open(out / r["chart"]) as png:
            assert png.format == "PNG" and png.size[0] > 300
    assert records[0]["params"] == {"nsamples": 120, "background_size": 10, "background": "kmeans", "l1_reg": "off", "tolerance": 0.0,
                                    "background_file": ""}
    assert records[1]["params"]["steps"] == 40
    assert "wrote 4 record(s)" in capsys.readouterr().out


def test_zoo_model_defaults_to_its_sample_csv(tmp_path):
    assert main(["explain-tabular", "--model", "breast_cancer_sklearn", "--row", "2", "--method", "lime",
                 "--param", "samples=300", "--out", str(tmp_path)]) == 0
    (record,) = json.loads((tmp_path / "results.json").read_text())
    assert record["base_value"] is None and record["label"] in (0, 1)


def test_onnx_file_with_feature_columns(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_bytes(synthetic_csv())
    model = tmp_path / "known.onnx"
    model.write_bytes(known_feature_onnx(zipmap=True))
    assert main(["explain-tabular", "--model", str(model), "--data", str(csv), "--features", ",".join(FEATURES),
                 "--row", "1", "--method", "kernel_shap", "--out", str(tmp_path / "o")]) == 0
    (record,) = json.loads((tmp_path / "o" / "results.json").read_text())
    top = max(record["attributions"], key=lambda f: abs(record["attributions"][f]))
    assert top == FEATURES[KNOWN]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "breast_cancer_mlp", "--row", "100"], "error: row 100 is out of range"),
        (["--model", "breast_cancer_mlp", "--row", "0", "--data", str(SAMPLE_CSV), "--label-column", "mean area"],
         "error: breast_cancer.csv: 'mean area' is one of the model's features; it cannot be the label column"),
        (["--model", "breast_cancer_mlp", "--row", "0", "--param", "steps=1"],
         "error: integrated_gradients: parameter steps must be between 2"),
        (["--model", "breast_cancer_mlp", "--row", "0", "--param", "segments=4"],
         "error: --param 'segments' is not a parameter of integrated_gradients"),
        (["--model", "breast_cancer_mlp", "--row", "0", "--target", "cat"], "error: no output named 'cat'"),
        (["--model", "nope.pt", "--row", "0", "--data", str(SAMPLE_CSV)], "error: nope.pt: neither a model file"),
        (["--model", "breast_cancer_sklearn", "--row", "0"],
         "error: integrated_gradients needs gradients, which breast_cancer_sklearn does not provide"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    args = _parse(["explain-tabular", *argv, "--method", "integrated_gradients", "--out", str(tmp_path)])
    assert run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_method_is_named(tmp_path, capsys):
    assert main(["explain-tabular", "--model", "breast_cancer_mlp", "--row", "0", "--method", "grad_cam",
                 "--out", str(tmp_path)]) == 2
    assert "unknown tabular method 'grad_cam'; available: lime, kernel_shap, integrated_gradients" in capsys.readouterr().err


def _reversed_columns(path, out, drop=None):
    import pandas as pd

    frame = pd.read_csv(path)
    frame = frame[list(reversed(frame.columns))]
    frame.drop(columns=[drop] if drop else []).to_csv(out, index=False)
    return out


def test_reordered_csv_gives_the_same_predictions_and_attributions(tmp_path):
    """Columns are matched to the zoo model's feature names, and the label column
    'target' is found by name, so a CSV in the sample's format in any column order works."""
    reordered = _reversed_columns(SAMPLE_CSV, tmp_path / "reordered.csv")
    results = {}
    for name, data in (("original", SAMPLE_CSV), ("reordered", reordered)):
        assert main(["explain-tabular", "--model", "breast_cancer_mlp", "--data", str(data), "--row", *map(str, range(20)),
                     "--method", "integrated_gradients", "--param", "steps=8", "--out", str(tmp_path / name)]) == 0
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
    for a, b in zip(results["original"], results["reordered"], strict=True):
        assert a["predictions"] == b["predictions"] and a["attributions"] == b["attributions"]
        assert a["label"] == b["label"] and "target" not in a["attributions"]


def test_missing_column_is_an_error_naming_it(tmp_path, capsys):
    short = _reversed_columns(SAMPLE_CSV, tmp_path / "short.csv", drop="worst area")
    assert main(["explain-tabular", "--model", "breast_cancer_mlp", "--data", str(short), "--row", "0",
                 "--method", "lime", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: short.csv: columns are matched to the model's 30 features by name; "
                          "missing 1 of the model's features: 'worst area'"), err
    assert err.count("\n") == 1


def test_sidecar_feature_names_match_a_model_file_by_name(tmp_path):
    """A model file whose sidecar names its features reads a CSV with shuffled columns
    correctly: the known-answer model's only feature still gets the top attribution."""
    model = tmp_path / "known.onnx"
    model.write_bytes(known_feature_onnx(zipmap=False))
    model.with_suffix(".json").write_text(json.dumps({"feature_names": FEATURES, "label_column": "y"}))
    (tmp_path / "t.csv").write_bytes(synthetic_csv())
    shuffled = _reversed_columns(tmp_path / "t.csv", tmp_path / "shuffled.csv")
    assert main(["explain-tabular", "--model", str(model), "--data", str(shuffled), "--row", "1",
                 "--method", "kernel_shap", "--out", str(tmp_path / "o")]) == 0
    (record,) = json.loads((tmp_path / "o" / "results.json").read_text())
    assert list(record["attributions"]) == FEATURES
    assert max(record["attributions"], key=lambda f: abs(record["attributions"][f])) == FEATURES[KNOWN]
