"""The labelled-set page through AppTest: the shipped digits set evaluates on open,
the worst misclassified digits get their all-class grid with one click, and a
tabular zoo model reads its shipped test rows."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "views" / "sets.py")


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_digits_worst_misclassified_grid_in_one_click():
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.run()
    _clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy"] == "0.960" and metrics["Misclassified"] == "18"
    at.selectbox(key="set_method_image").set_value("saliency")
    at.number_input(key="set_top").set_value(3)
    at.button[0].click()
    at.run()
    _clean(at)
    headings = [s.value for s in at.subheader]
    assert "saliency: 3 item(s) x class" in headings
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download grid (PNG)", "Download table (CSV)", "Download attributions (.npz)"]


def test_tabular_model_reads_its_test_rows_and_explains_a_sample():
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.run()
    at.selectbox(key="set_model").set_value("breast_cancer_mlp")
    at.run()
    _clean(at)
    assert {m.label: m.value for m in at.metric}["Items evaluated"] == "100"
    at.selectbox(key="set_method_rows").set_value("integrated_gradients")
    at.radio(key="set_select").set_value("random")
    at.radio(key="set_against").set_value("predicted")
    at.number_input(key="set_top").set_value(2)
    at.button[0].click()
    at.run()
    _clean(at)
    assert any("integrated_gradients: 2 item(s)" in s.value for s in at.subheader)
