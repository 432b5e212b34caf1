"""The tabular page's runs go through the image page's run machinery: the cost is
stated before the run (row methods count their model evaluations exactly), the run
lives in the server's run store, and its result link (``?trow=<id>``) brings the
result back in a fresh session (a reloaded tab), with its row."""

from __future__ import annotations

import pytest
from tabular_helpers import ROOT

PAGE = str(ROOT / "views" / "tabular.py")


@pytest.fixture(scope="module")
def breast_cancer():
    from model_zoo.tabular import TABULAR_ZOO
    from xai_core import open_model
    from xai_core.tabular import load_table

    model = open_model("breast_cancer_mlp")
    entry = TABULAR_ZOO["breast_cancer_mlp"]
    data = load_table(entry.csv_path, label_column="target", n_features=model.n_features,
                      model_features=model.feature_names)
    return model, data


@pytest.mark.parametrize(("method", "params"), [
    ("integrated_gradients", {"steps": 16}),
    ("lime", {"samples": 100}),
    ("kernel_shap", {"nsamples": 50, "background_size": 5}),
    ("layer_conductance", {"steps": 8}),
    ("neuron_conductance", {"steps": 8, "neuron": 2}),
])
def test_the_estimate_counts_the_evaluations_a_run_makes(breast_cancer, method, params):
    from xai_core.service.estimate import estimate_rows
    from xai_core.tabular import explain_rows

    model, data = breast_cancer
    rows = [0, 4, 9]
    estimate = estimate_rows(model, data, rows, method, params)
    summary = explain_rows(model, data, rows, method, params, seed=0)
    assert estimate.evals == summary.model_evals
    assert estimate.seconds is not None and estimate.seconds >= 0


def test_a_row_run_has_an_estimate_a_link_and_comes_back_after_a_reload(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("XAI_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.selectbox(key="tab_method").set_value("integrated_gradients")
    at.run()
    assert any(c.value.startswith("Estimated") and "66 model evaluations" in c.value for c in at.caption)
    at.number_input(key="tab_row").set_value(4)
    at.button(key="tab_explain_row").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Row 4" in m.value for m in at.markdown)
    run_id = at.query_params["trow"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    assert run_id

    reloaded = AppTest.from_file(PAGE, default_timeout=120)  # a new session: the reloaded tab
    reloaded.query_params["trow"] = run_id
    reloaded.run()
    assert not reloaded.exception and not reloaded.error, [e.value for e in reloaded.error]
    assert reloaded.number_input(key="tab_row").value == 4  # the run's row is put back
    assert any("Row 4" in m.value for m in reloaded.markdown)
    assert len(reloaded.get("plotly_chart")) == 2  # bars + waterfall of the stored result


def test_stop_ends_a_row_run_at_its_next_row(breast_cancer, tmp_path):
    """Stop marks the run in the store; the next row's progress report ends it."""
    import time

    from ui.long_run import _plain
    from ui.row_results import _work
    from ui.table_form import ChosenTable, RowPlan
    from xai_core.explainers import get_explainer
    from xai_core.service.runs import DONE, STOPPED, Runs

    model, data = breast_cancer
    store = Runs(tmp_path / "runs")
    plan = RowPlan(get_explainer("kernel_shap", "vector"), {"nsamples": 400, "background_size": 20}, 0, None)
    table = ChosenTable(data, "breast_cancer.csv", "key")
    started = False

    def work(progress):
        def report(fraction, text=""):
            nonlocal started
            started = True
            progress(fraction, text)
        return _work(model, table, list(range(data.n_rows)), plan, False, report)

    run_id = store.start("trows", work)
    deadline = time.monotonic() + 60
    while not started and not store.get(run_id).finished_state and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started, store.get(run_id).message
    store.stop(run_id)
    deadline = time.monotonic() + 60
    while not store.get(run_id).finished_state and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.get(run_id).state == STOPPED

    quick = store.start("trow", lambda progress: _plain(_work(model, table, [3], plan, True, progress)))
    deadline = time.monotonic() + 60
    while not store.get(quick).finished_state and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.get(quick).state == DONE, store.get(quick).message  # the next run on the model works


def test_explain_tabular_states_its_estimate_first(tmp_path, capsys):
    from xai_core.cli.tabular import main

    assert main(["explain-tabular", "--model", "breast_cancer_mlp", "--row", "0", "1",
                 "--method", "integrated_gradients", "--out", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("estimated ") and "132 model evaluations" in first
