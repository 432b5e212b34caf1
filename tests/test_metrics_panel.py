"""The dashboard's faithfulness panel and compare table (AppTest, no browser)."""

from __future__ import annotations

from tests.test_dashboard import assert_clean, click_explain, image_page, set_params, use_digits_model


def test_panel_ranks_methods_in_one_table_and_caches(monkeypatch):
    import xai_core.metrics.service as service

    calls = []
    real = service.evaluate_inputs
    monkeypatch.setattr(service, "evaluate_inputs", lambda *a, **k: calls.append(a[3]) or real(*a, **k))

    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("grad_cam").run()
    at.multiselect(key="img_compare").set_value(["occlusion"]).run()
    set_params(at, "occlusion")
    click_explain(at)
    assert_clean(at)
    at.multiselect(key="metric_choice_image").set_value(["deletion", "insertion", "randomization"]).run()
    at.radio(key="metric_budget_image").set_value("full").run()  # the settings as set, not the quick budget
    at.number_input(key="metric_image_deletion_steps").set_value(8).run()
    next(b for b in at.button if b.label == "Check faithfulness").click().run()
    assert_clean(at)
    # shown one column per method (narrow: never cut), each cell the value and its random baseline
    table = at.dataframe[-1].value.set_index("metric")
    assert set(table.columns) == {"Grad-CAM", "Occlusion"}
    assert {"mean rank", "deletion (↓ better)", "insertion (↑ better)", "randomization (↓ better)",
            "model evaluations"} <= set(table.index)
    assert all("(random " in cell for cell in table.loc["deletion (↓ better)"])
    assert [float(v) for v in table.loc["mean rank"]] == sorted(float(v) for v in table.loc["mean rank"])
    assert len(calls) == 6
    assert any("the explanation:" in c.value for c in at.caption)

    next(b for b in at.button if b.label == "Check faithfulness").click().run()  # cached: nothing recomputed
    assert_clean(at)
    assert len(calls) == 6


def test_tabular_row_panel():
    from streamlit.testing.v1 import AppTest

    from tests.test_tabular_page import PAGE

    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.selectbox(key="tab_method").set_value("integrated_gradients").run()
    at.button(key="tab_explain_row").click().run()
    assert not at.exception and not at.error
    assert at.multiselect(key="metric_choice_rows").value == [
        "deletion", "insertion", "correlation", "randomization", "sensitivity"]
    at.multiselect(key="metric_choice_rows").set_value(["deletion", "correlation", "randomization"]).run()
    next(b for b in at.button if b.label == "Check faithfulness").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value.set_index("metric")
    assert list(table.columns) == ["integrated_gradients, row 0"]
    cell = table.loc["correlation (↑ better)"].iloc[0]  # "0.912 (random 0.0123)"
    value, baseline = float(cell.split(" (")[0]), float(cell.split("random ")[1].rstrip(")"))
    assert value > baseline


def test_several_inputs_give_one_row_per_method_and_input():
    """The picture feeds both image inputs of a two-view model; the panel's runner
    gives each input its own metrics, and the table one row per method x input."""
    import numpy as np

    from tests.test_several_inputs import TwoViews
    from ui import metrics_panel
    from xai_core.adapters.torch import TorchAdapter
    from xai_core.service import explain
    from xai_core.types import ImageSpec

    adapter = TorchAdapter(TwoViews().eval(), [ImageSpec((8, 8), name="small"), ImageSpec((12, 12), name="large")],
                           name="two_views", device="cpu")
    picture = (np.random.default_rng(0).random((20, 20, 3)) * 255).astype(np.uint8)
    items = []
    for method in ("saliency", "integrated_gradients"):
        items.append((method, f"key-{method}", explain(adapter, picture, method, target=0)))
    results: dict = {}
    for _, key, exp in items:
        for name in ("deletion", "road"):
            per_input = metrics_panel._image_metric.__wrapped__(key, name, "{}", adapter, picture, exp, None)
            assert list(per_input) == ["small", "large"]
            for input_name, result in per_input.items():
                assert result.input == input_name
                results.setdefault(metrics_panel.row_key(key, input_name, True), {})[name] = result
    labels = metrics_panel.row_labels(items, results)
    table = metrics_panel.ranking_table(labels, results)
    assert sorted(table["Method"]) == ["integrated_gradients · large", "integrated_gradients · small",
                                       "saliency · large", "saliency · small"]
    assert {"deletion (↓)", "road (↑)", "mean rank"} <= set(table)
