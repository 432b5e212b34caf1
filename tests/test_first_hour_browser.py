"""A new user's first hour in a real headless Chromium, at Playwright's default window
(1280 x 720): the result of a run is in view after the click, tables are shown
whole (nothing to scroll inside, nothing cut), the confusion matrix shows every
class, the grid is drawn at its own size (labels 12.5 px), and the report-ready
figure downloads. Screenshots of the changed views are taken on every run; they
replace docs/img/first-hour-*.png only with ``XAI_DOCS_SCREENSHOTS=1`` (a test run
leaves the checkout as it found it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from test_dashboard_browser import ROOT, SLOW, launch, server_url, settle  # noqa: F401

pytestmark = pytest.mark.browser

DOCS_IMG = ROOT / "docs" / "img" if os.environ.get("XAI_DOCS_SCREENSHOTS") == "1" else \
    Path(tempfile.gettempdir()) / "xai-first-hour-screenshots"
VIEWPORT = {"width": 1280, "height": 720}

# every st.dataframe on the page: its scroll box against its content (glide-data-grid)
TABLES = """() => Array.from(document.querySelectorAll('[data-testid=stDataFrame]')).map(d => {
    const s = d.querySelector('.dvn-scroller');
    return {scrollW: s.scrollWidth, clientW: s.clientWidth, scrollH: s.scrollHeight, clientH: s.clientHeight,
            headers: Array.from(d.querySelectorAll('[role=columnheader]')).map(t => t.textContent.trim()),
            cells: Array.from(d.querySelectorAll('[role=gridcell]')).map(t => t.textContent.trim())};
})"""


def in_view(page, locator) -> bool:
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height


def assert_whole(tables: list[dict]) -> None:
    for table in tables:
        assert table["scrollW"] <= table["clientW"] + 1, f"table cut on the right: {table['headers']}"
        assert table["scrollH"] <= table["clientH"] + 1, f"table cut at the bottom: {table['headers']}"


def save_view(page, name: str, height: int = 1500) -> None:
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": height})
    settle(page)
    page.wait_for_timeout(800)
    page.screenshot(path=str(DOCS_IMG / name))
    page.set_viewport_size(VIEWPORT)


def test_sets_page_shows_the_whole_confusion_matrix_and_brings_the_grid_into_view(server_url):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(server_url)
            settle(page)
            page.get_by_test_id("stSidebarNav").get_by_text("Labelled sets").click()
            page.get_by_test_id("stDataFrame").first.wait_for(timeout=SLOW)
            settle(page)
            page.wait_for_timeout(1000)
            tables = page.evaluate(TABLES)
            assert tables[0]["headers"][1:] == [f"pred {k}" for k in range(10)]  # every class, class 9 too
            assert_whole(tables)
            field = page.get_by_label("How many (at most)", exact=True)
            field.fill("3")
            field.press("Enter")
            settle(page)
            page.get_by_role("button", name="Explain selection").click()
            heading = page.get_by_text("shap_gradient: 3 item(s) x class")
            heading.wait_for(timeout=SLOW)
            settle(page)
            page.wait_for_timeout(1500)  # the scroll runs once the heading is drawn
            assert in_view(page, heading), "the grid's heading is not in view after the click"
            # the grid at its own size (not shrunk): its 9-pt labels are 12.5 px on screen
            sizes = page.evaluate("() => Array.from(document.querySelectorAll('[data-testid=stImage] img'))"
                                  ".map(i => [i.naturalWidth, i.clientWidth])")
            grid_natural, grid_shown = max(sizes)
            assert grid_shown >= 0.88 * grid_natural, sizes
            grid_src = ("() => Array.from(document.querySelectorAll('[data-testid=stImage] img'))"
                        ".sort((a, b) => b.naturalWidth - a.naturalWidth)[0].src")
            before = page.evaluate(grid_src)
            page.get_by_text("one per map").click()
            page.wait_for_function(f"() => ({grid_src})() !== {before!r}", timeout=SLOW)
            settle(page)
            save_view(page, "first-hour-sets.png", 2000)
            assert not page.get_by_test_id("stException").count()
        finally:
            browser.close()


def test_one_click_result_in_view_figure_download_and_metrics_table_whole(server_url, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(server_url)
            page.get_by_role("button", name="Explain a sample photo").click(timeout=SLOW)
            expect(page.get_by_text("Overlay: Grad-CAM")).to_be_visible(timeout=SLOW)
            settle(page)
            page.wait_for_timeout(1500)
            heading = page.locator("#results")
            assert in_view(page, heading), "the result's heading is not in view after the click"
            with page.expect_download(timeout=SLOW) as got:
                page.get_by_role("button", name="Download figure PNG (colour bar, class, probability)").click()
            path = tmp_path / got.value.suggested_filename
            got.value.save_as(path)
            assert path.name.endswith("__grad_cam__figure.png")
            figure = Image.open(path)
            assert figure.format == "PNG" and figure.width > figure.height

            chooser = page.get_by_test_id("stMultiSelect").filter(has_text="Metrics")

            def panel_open() -> None:  # a rerun may fold the panel (issue 23, item 2: not this test's)
                if not chooser.is_visible():
                    page.get_by_text("Can I trust these maps?").click()
                    settle(page)

            panel_open()
            chooser.get_by_role("button", name="Clear all").click()
            settle(page)
            panel_open()
            chooser.click()
            page.get_by_role("option", name="road", exact=True).click()
            page.keyboard.press("Escape")
            settle(page)
            panel_open()
            page.get_by_role("button", name="Check faithfulness").click()
            page.get_by_text("higher is better").wait_for(state="attached", timeout=SLOW)
            settle(page)
            panel_open()
            page.wait_for_timeout(1000)
            tables = page.evaluate(TABLES)
            metrics = next(t for t in tables if t["headers"][:1] == ["metric"])
            assert metrics["headers"] == ["metric", "Grad-CAM"]
            assert_whole([metrics])
            road = next(c for c in metrics["cells"] if "(random " in c)
            assert not road.endswith("(random 0)"), road  # measured, not assumed
            save_view(page, "first-hour-image.png", 2600)
            assert not page.get_by_test_id("stException").count()
        finally:
            browser.close()
