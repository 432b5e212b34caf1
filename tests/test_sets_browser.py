"""The labelled-set page in a real headless Chromium: a new user opens "Labelled
sets" in the sidebar, the shipped digits set is evaluated on arrival, and one click
on "Explain selection" shows the worst misclassified digits' all-class grid.
Screenshot: artifacts/sets_page.png."""

from __future__ import annotations

import time

import pytest
from test_dashboard_browser import ARTIFACTS, SLOW, launch, server_url, settle  # noqa: F401

pytestmark = pytest.mark.browser


def test_new_user_sees_worst_misclassified_grid_within_a_minute(server_url):  # noqa: F811
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 2300})
        page.goto(server_url)
        settle(page)
        started = time.monotonic()
        page.get_by_test_id("stSidebarNav").get_by_text("Labelled sets").click()
        page.get_by_text("Accuracy").first.wait_for(timeout=SLOW)
        settle(page)
        assert page.get_by_test_id("stMetricValue").first.inner_text() == "0.960"
        page.get_by_role("button", name="Explain selection").click()
        page.get_by_text("shap_gradient: 10 item(s) x class").wait_for(timeout=SLOW)
        settle(page)
        took = time.monotonic() - started
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTIFACTS / "sets_page.png"), full_page=True)
        assert page.get_by_role("button", name="Download grid (PNG)").is_visible()
        assert not page.get_by_test_id("stException").count()
        print(f"start page to grid: {took:.1f} s")
        # click the confusion-matrix cell "true 7, pred 0": the grid draws on a canvas,
        # rows 35 px under a 35 px header; the index column is as wide as a class column
        grid = page.get_by_test_id("stDataFrame").first
        grid.scroll_into_view_if_needed()
        box = grid.bounding_box()
        column = box["width"] / 11
        page.mouse.click(box["x"] + column * 1.5, box["y"] + 35 * 8 + 17)
        settle(page)
        page.get_by_text("Cell: true").wait_for(timeout=SLOW)
        assert "true 7" in page.get_by_text("Cell: true").inner_text()
        captions = page.get_by_test_id("stImageCaption").all_inner_texts()
        assert captions and all("true 7 → 0" in c for c in captions), captions
        browser.close()
