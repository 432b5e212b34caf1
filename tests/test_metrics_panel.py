"""The dashboard's faithfulness panel and compare table (AppTest, no browser)."""

from __future__ import annotations

from tests.test_dashboard import assert_clean, click_explain, image_page, set_params, use_digits_model


def test_panel_ranks_methods_in_one_table_and_caches(monkeypatch):
    import xai_core.metrics.service as service

    calls = []
    real = service.evaluate_image
    monkeypatch.setattr(service, "evaluate_image", lambda *a, **k: calls.append(a[3]) or real(*a, **k))

    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("grad_cam").run()
    at.multiselect(key="img_compare").set_value(["occlusion"]).run()
    set_params(at, "occlusion")
    click_explain(at)
    assert_clean(at)
    at.multiselect(key="metric_choice_image").set_value(["deletion", "insertion", "randomization"]).run()
    at.number_input(key="metric_image_deletion_steps").set_value(8).run()
    next(b for b in at.button if b.label == "Check faithfulness").click().run()
    assert_clean(at)
    table = at.dataframe[-1].value
    assert list(table["Method"]) and set(table["Method"]) == {"Grad-CAM", "Occlusion"}
    assert {"mean rank", "deletion (↓)", "deletion random", "insertion (↑)", "randomization (↓)", "evals"} <= set(table)
    assert table["mean rank"].is_monotonic_increasing
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
    table = at.dataframe[-1].value
    assert list(table["Method"]) == ["integrated_gradients, row 0"]
    assert table["correlation (↑)"][0] > table["correlation random"][0]
