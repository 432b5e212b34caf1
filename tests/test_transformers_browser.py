"""Issue 18's dashboard flow in a real headless Chromium against `make run`'s server:
a new user uploads a zipped Hugging Face folder (the shipped digits ViT, as
`save_pretrained` wrote it) and a photo, and gets Grad-CAM, attention rollout, LIME
and Integrated Gradients side by side; the model runs in the confined worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from served_app import serve
from test_dashboard_browser import (
    ARTIFACTS,
    CHROMIUM,
    SLOW,
    choose,
    click_text,
    free_port,
    launch,
    screenshot_results,
    settle,
    upload,
)
from test_huggingface import zip_folder

ROOT = Path(__file__).resolve().parent.parent
VIT = ROOT / "model_zoo" / "weights" / "digits_vit"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]

@pytest.fixture(scope="module")
def server_url():
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(free_port(), ARTIFACTS / "streamlit-transformers.log") as url:  # `make run`'s command
        yield url


METHODS = ("Grad-CAM", "Attention rollout", "LIME (superpixels)", "Integrated Gradients")


def test_a_zipped_hugging_face_folder_gets_cams_rollout_lime_and_ig_on_a_photo(server_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    archive = zip_folder(VIT, tmp_path / "my_vit.zip")
    photo = ROOT / "sample_images" / "digit_3.png"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"{server_url}/image")
            expect(page.get_by_text("Explain an image classifier")).to_be_visible(timeout=SLOW)
            settle(page)
            started = time.monotonic()
            choose(page, "Framework", "Hugging Face")
            click_text(page, "Upload a model file")
            upload(page, "Model file", archive)
            # the processor config's preprocessing is shown, read from the folder
            expect(page.get_by_text("processor config", exact=False).first).to_be_visible(timeout=SLOW)
            click_text(page, "Upload an image")
            upload(page, "Image file", photo)
            choose(page, "Explainer", METHODS[0])
            box = page.get_by_test_id("stMultiSelect").filter(has_text="Compare with")
            for method in METHODS[1:]:
                box.locator("input").click()  # the box itself: a click on a chip would remove it
                page.keyboard.type(method)
                page.get_by_role("option", name=method, exact=True).click()
                page.keyboard.press("Escape")
                settle(page)
            for method in METHODS[1:]:
                expect(box).to_contain_text(method)
            page.get_by_role("button", name="Explain", exact=True).click()
            for method in METHODS:
                expect(page.get_by_text(f"Overlay: {method}")).to_be_visible(timeout=SLOW)
            elapsed = time.monotonic() - started
            assert page.get_by_test_id("stAlertContentError").count() == 0
            assert page.get_by_test_id("stException").count() == 0
            print(f"\nupload to four maps: {elapsed:.1f} s")
            screenshot_results(page, "dashboard-huggingface-zip.png")
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard-huggingface-zip.png").exists()
