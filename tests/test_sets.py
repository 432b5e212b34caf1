"""Labelled sets: loaders and their per-item errors, evaluation against
scikit-learn's metrics, selection, explaining items against classes (equal to
explaining them one by one through the service), summaries, the grid, the
explain-set command (files, numbers, resume, bad input) and the Ray engine."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xai_core.sets.data import open_set
from xai_core.sets.evaluate import evaluate
from xai_core.sets.explain import ExplainRequest, SetSummary, explain_selection, parse_classes
from xai_core.sets.model import ModelRef
from xai_core.types import InputError

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "sample_data" / "digits_test.npz"
CANCER = ROOT / "sample_data" / "breast_cancer.csv"
NAMES = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def digits():
    return ModelRef("digits_cnn", device="cpu", batch_size=64).open()


@pytest.fixture(scope="module")
def digits_set(digits):
    return open_set(DIGITS, digits.class_names)


@pytest.fixture(scope="module")
def digits_eval(digits, digits_set):
    return evaluate(digits, digits_set)


def _digit_pngs():
    with np.load(DIGITS) as f:
        return f["x"][:30], f["y"][:30]


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_shipped_digits_set_is_the_models_held_out_split(digits_eval):
    # the zoo's digits_cnn.json records 0.96 on this split
    m = digits_eval.metrics()
    assert m["items"] == 450 and m["failed"] == 0
    assert m["accuracy"] == pytest.approx(0.96, abs=1e-9)


def test_metrics_match_scikit_learn(digits_eval):
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_score, recall_score

    y, p = digits_eval.labels, digits_eval.predictions
    m = digits_eval.metrics()
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-6)
    np.testing.assert_array_equal(np.array(m["confusion"]), confusion_matrix(y, p, labels=range(10)))
    prec = precision_score(y, p, average=None, labels=range(10), zero_division=np.nan)
    rec = recall_score(y, p, average=None, labels=range(10))
    for row, pr, rc in zip(m["per_class"], prec, rec, strict=True):
        assert row["recall"] == pytest.approx(rc, abs=1e-6)
        if np.isfinite(pr):
            assert row["precision"] == pytest.approx(pr, abs=1e-6)


def test_evaluation_equals_one_batched_forward(digits, digits_set, digits_eval):
    from xai_core.inputs.images import preprocess

    x = np.stack([preprocess(digits_set.read(i), digits.model.spec) for i in range(len(digits_set))])
    np.testing.assert_allclose(digits_eval.probabilities, digits.model.predict(x), atol=1e-5)


def test_misclassified_sorted_by_loss_and_selections(digits_eval):
    ev = digits_eval
    wrong = ev.misclassified()
    assert len(wrong) == ev.metrics()["misclassified"] > 0
    loss = ev.loss()[wrong]
    assert np.all(np.diff(loss) <= 0)
    assert all(ev.predictions[i] != ev.labels[i] for i in wrong)
    t, p = int(ev.labels[wrong[0]]), int(ev.predictions[wrong[0]])
    cell = ev.select("cell", cell=(t, p))
    assert wrong[0] in cell and all(ev.labels[i] == t and ev.predictions[i] == p for i in cell)
    assert ev.confusion()[t, p] == len(cell)
    assert all(ev.labels[i] == 3 for i in ev.select("class", cls=3))
    assert ev.select("random", top=7, seed=1) == ev.select("random", top=7, seed=1)
    assert len(ev.select("all")) == 450
    with pytest.raises(InputError, match="unknown selection"):
        ev.select("worst")


def test_folder_zip_and_csv_sets_name_bad_items_and_run_the_rest(tmp_path, digits):
    x, y = _digit_pngs()
    root = tmp_path / "folder"
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        (root / str(label) / f"d{i:02d}.png").write_bytes(_png(img))
    (root / "ten").mkdir()
    (root / "ten" / "odd.png").write_bytes(_png(x[0]))  # unknown label
    (root / str(y[5]) / "d05.png").write_bytes(_png(x[5])[:60])  # truncated, in the middle
    ds = open_set(root, digits.class_names)
    assert len(ds) == 31
    ev = evaluate(digits, ds, batch_size=8)
    problems = ev.errors
    assert any("ten/odd.png" in m and "not a class" in m for m in problems.values())
    assert any(f"{y[5]}/d05.png" in m and ("corrupt" in m or "not a readable" in m) for m in problems.values())
    assert ev.metrics()["evaluated"] == 29 and ev.metrics()["failed"] == 2

    zpath = tmp_path / "set.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted(root.rglob("*.png")):
            z.write(f, "top/" + str(f.relative_to(root)))
    zev = evaluate(digits, open_set(zpath, digits.class_names), batch_size=8)
    assert sorted(zev.names) == sorted(ev.names)
    order = [zev.names.index(n) for n in ev.names]
    np.testing.assert_allclose(zev.probabilities[order], ev.probabilities, atol=1e-6, equal_nan=True)

    csv = tmp_path / "labels.csv"
    rows = [f"folder/{n},{n.split('/')[0]}" for n in ev.names] + ["folder/missing.png,3"]
    csv.write_text("path,label\n" + "\n".join(rows) + "\n")
    cev = evaluate(digits, open_set(csv, digits.class_names), batch_size=8)
    assert cev.metrics()["evaluated"] == 29
    assert any("missing.png" in m and "no such image file" in m for m in cev.errors.values())


def test_bad_sets_give_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_set(tmp_path / "nope", NAMES)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no class folders"):
        open_set(tmp_path / "empty", NAMES)
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 8, 8)))
    with pytest.raises(InputError, match="'x'.*'y'"):
        open_set(bad, NAMES)
    with pytest.raises(InputError, match="not a readable zip"):
        open_set(b"not a zip", NAMES, name="up.zip")
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="no label column"):
        open_set(csv, NAMES, kind="rows")


def test_explaining_items_equals_the_service_one_class_at_a_time(digits, digits_set, digits_eval):
    from xai_core.service import explain

    chosen = digits_eval.select("misclassified", top=2)
    params = {"samples": 8, "background_size": 4}
    request = ExplainRequest("shap_gradient", params, 3, "all")
    results = list(explain_selection(digits, digits_set, chosen, request, chunk_size=1))
    assert [r.index for r in results] == chosen
    for r in results:
        assert r.classes == list(range(10)) and r.attributions.shape == (10, 32, 32)
        image = digits_set.read(r.index)
        for c in (r.label, r.prediction):
            ref = explain(digits.model, image, "shap_gradient", params, target=c, seed=3)
            np.testing.assert_array_equal(r.attributions[c], ref.attribution)
    only = list(explain_selection(digits, digits_set, chosen, ExplainRequest("saliency", {}, 0, "true")))
    assert [o.classes for o in only] == [[int(digits_eval.labels[i])] for i in chosen]
    summary = SetSummary(NAMES)
    for r in results:
        summary.add(r)
    np.testing.assert_allclose(summary.mean_signed(0), np.mean([r.attributions[0] for r in results], 0), rtol=1e-5)
    assert set(summary.per_class()) == set(NAMES)


def test_parse_classes():
    assert parse_classes("all", NAMES) == "all"
    assert parse_classes("4,9", NAMES) == (4, 9)
    with pytest.raises(InputError):
        parse_classes("eleven", NAMES)


def test_tabular_set_rows_match_explain_rows():
    from xai_core.inputs.tables import TabularData
    from xai_core.service.rows import explain_rows

    model = ModelRef("breast_cancer_mlp", "rows").open()
    ds = open_set(CANCER, model.class_names, kind="rows")
    ev = evaluate(model, ds)
    assert ev.metrics()["evaluated"] == 100 and ev.metrics()["accuracy"] > 0.9
    background = np.stack([ds.read(i) for i in range(len(ds))])
    chosen = ev.select("random", top=3, seed=0)
    request = ExplainRequest("integrated_gradients", {}, 0, "all", background, tuple(ds.feature_names))
    results = list(explain_selection(model, ds, chosen, request))
    data = TabularData(background, ds.feature_names)
    ref = explain_rows(model.model, data, chosen, "integrated_gradients", {}, target=1, seed=0)
    for r, e in zip(results, ref.explanations, strict=True):
        np.testing.assert_allclose(r.attributions[1], [e.by_feature()[f] for f in ds.feature_names], rtol=1e-6)


def test_class_grid_draws_one_row_per_item(digits, digits_set, digits_eval):
    from xai_core.render.sets import set_grid

    chosen = digits_eval.select("misclassified", top=3)
    results = list(explain_selection(digits, digits_set, chosen, ExplainRequest("saliency", {}, 0, "all")))
    one = set_grid(results[:1], NAMES)
    three = set_grid(results, NAMES)
    assert one.ndim == 3 and three.shape[0] > 2 * one.shape[0] * 0.8
    assert three.shape[1] == one.shape[1]


def test_safe_csv_escapes_formulas():
    import pandas as pd

    from xai_core.render.files import safe_csv

    text = safe_csv(pd.DataFrame({"name": ["=cmd|' /C calc'!A0", "ok"], "v": [-1.5, 2]})).decode()
    assert "'=cmd" in text and "-1.5" in text and "'-1.5" not in text


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "xai_core", "explain-set", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_explain_set_command_files_numbers_and_resume(tmp_path, digits_eval):
    out = tmp_path / "out"
    args = ["--model", "digits_cnn", "--data", str(DIGITS), "--select", "misclassified", "--top", "3",
            "--classes", "all", "--method", "saliency", "--out", str(out)]
    run = _cli(*args)
    assert run.returncode == 0, run.stderr
    assert "evaluated 450 of 450 item(s)" in run.stderr and "items/s" in run.stderr
    record = json.loads((out / "results.json").read_text())
    assert record["metrics"]["accuracy"] == digits_eval.metrics()["accuracy"]
    assert record["metrics"]["confusion"] == digits_eval.metrics()["confusion"]
    assert record["selection"]["items"] == digits_eval.select("misclassified", top=3)
    items = record["methods"][0]["items"]
    assert [i["item"] for i in items] == record["selection"]["items"]
    for item in items:
        with np.load(out / item["file"]) as f:
            assert f["attributions"].shape == (10, 32, 32)
        assert (out / item["grid"]).is_file()
    assert (out / record["methods"][0]["grids"][0]).is_file()
    assert (out / "summary__saliency.png").is_file() and (out / "evaluation.csv").is_file()
    first = (out / items[0]["file"]).stat().st_mtime_ns
    with np.load(out / "summary__saliency.npz") as f:
        streamed = {k: f[k] for k in f.files}
    again = _cli(*args)
    assert again.returncode == 0 and "3 item(s) already done" in again.stdout
    assert (out / items[0]["file"]).stat().st_mtime_ns == first
    with np.load(out / "summary__saliency.npz") as f:  # folded while streaming = folded from the files
        for k, v in streamed.items():
            np.testing.assert_allclose(f[k], v, rtol=1e-6)


def test_meter_says_rate_time_left_and_workers():
    from xai_core.sets.meter import Meter

    class Engine:
        counts = {"w1@10.0.0.1": 100, "w2@10.0.0.2": 0}  # an earlier run's

        def per_worker(self):
            return dict(self.counts)

    engine = Engine()
    meter = Meter(200, "explained", engine)
    engine.counts = {"w1@10.0.0.1": 130, "w2@10.0.0.2": 20}
    meter.start -= 10.0  # ten seconds ago
    meter.add(50)
    text = meter.text()
    assert meter.fraction == 0.25 and "explained 50 of 200 item(s)" in text
    assert "5.0 items/s" in text and "30 s left" in text and "w1@10.0.0.1 30, w2@10.0.0.2 20" in text


def test_explain_set_bad_input_exits_2_with_one_line(tmp_path):
    run = _cli("--model", "digits_cnn", "--data", str(tmp_path / "none"), "--method", "saliency",
               "--out", str(tmp_path / "o"))
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and run.stderr.startswith("error: ") and "none" in run.stderr
    run = _cli("--model", "digits_cnn", "--data", str(DIGITS), "--method", "kernel_shap", "--out", str(tmp_path))
    assert run.returncode == 2 and "kernel_shap" in run.stderr


def test_default_engine_never_imports_ray(tmp_path):
    code = ("import sys; from xai_core.sets.model import ModelRef; from xai_core.sets.data import open_set; "
            "from xai_core.sets.evaluate import evaluate; m = ModelRef('digits_cnn').open(); "
            f"evaluate(m, open_set({str(DIGITS)!r}, m.class_names)); print('ray' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.stdout.strip() == "False", run.stderr
