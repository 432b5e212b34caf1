"""The dashboard in a real headless Chromium (Playwright) against `streamlit run app.py`.

Uploads a TorchScript digits model and a photo, sets the model's preprocessing,
picks an explainer, clicks Explain, waits for the overlay, downloads the PNG and
checks that it decodes at the photo's size. Screenshots go to artifacts/.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from PIL import Image
from served_app import serve

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SLOW = 180_000  # ms: the first model load imports torch inside the server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url():
    ARTIFACTS.mkdir(exist_ok=True)
    # exactly the Makefile's `make run` command, bound to loopback
    with serve(free_port(), ARTIFACTS / "streamlit-server.log") as url:
        yield url


@pytest.fixture(scope="module")
def upload_files(tmp_path_factory):
    import skimage.data
    import torch

    from model_zoo.pretrained import own_model

    folder = tmp_path_factory.mktemp("browser")
    model = torch.jit.trace(own_model("digits_cnn").eval(), torch.zeros(1, 1, 32, 32))
    model_path = folder / "digits_script.pt"
    torch.jit.save(model, str(model_path))
    photo = skimage.data.chelsea()
    photo_path = folder / "chelsea.jpg"
    Image.fromarray(photo).save(photo_path, quality=92)
    return model_path, photo_path, (photo.shape[1], photo.shape[0])


def settle(page) -> None:
    """Wait until the script rerun triggered by the last interaction has finished."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')"
        " && !document.querySelector('[data-stale=true]')",
        timeout=SLOW,
    )


def upload(page, label: str, path: Path) -> None:
    uploader = page.get_by_test_id("stFileUploader").filter(has_text=label)
    uploader.locator("input[type=file]").set_input_files(str(path))
    page.get_by_text(path.name).first.wait_for(timeout=SLOW)
    settle(page)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` as a user does in a long list: open the box, type to filter it
    (a long option list is virtualised: options below the fold are not in the page)."""
    box = page.get_by_test_id("stSelectbox").filter(has_text=label)
    for attempt in range(3):
        # a rerun that lands between the click and the typing closes the list: open it again
        settle(page)
        box.click()
        try:
            page.get_by_role("listbox").wait_for(timeout=10_000)
            page.keyboard.type(option)
            page.get_by_role("option", name=option, exact=True).click(timeout=15_000)
            break
        except Exception:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
    settle(page)


def set_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    settle(page)


def click_text(page, text: str) -> None:
    page.get_by_text(text, exact=True).click()
    settle(page)


def launch(p):
    return p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def screenshot_results(page, name: str) -> None:
    """The whole app, tall enough to hold settings and results (the app scrolls inside
    its own container, so a full-page screenshot would stop at the viewport)."""
    page.set_viewport_size({"width": 1500, "height": 2300})
    settle(page)
    page.wait_for_timeout(1000)  # let the images finish painting
    page.screenshot(path=str(ARTIFACTS / name))


def test_one_click_start_shows_a_real_explanation(server_url):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(server_url)
            expect(page.get_by_text("See why your image classifier decided")).to_be_visible(timeout=SLOW)
            page.screenshot(path=str(ARTIFACTS / "dashboard-landing.png"))
            page.get_by_role("button", name="Explain a sample photo").click()
            expect(page.get_by_text("Overlay: Grad-CAM")).to_be_visible(timeout=SLOW)
            expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=SLOW)
            assert page.get_by_test_id("stAlertContentError").count() == 0
            screenshot_results(page, "dashboard-quickstart.png")
        finally:
            browser.close()


def test_upload_model_and_photo_explain_and_download_overlay(server_url, upload_files, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    model_path, photo_path, photo_size = upload_files
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
            page.goto(server_url)
            expect(page.get_by_role("button", name="Explain a sample photo")).to_be_visible(timeout=SLOW)

            page.get_by_role("link", name="Image explainer").click()
            expect(page.get_by_text("Explain an image classifier")).to_be_visible(timeout=SLOW)
            settle(page)
            click_text(page, "Upload a model file")
            upload(page, "Model file", model_path)
            click_text(page, "Preprocessing")
            set_number(page, "Input height", 32)
            set_number(page, "Input width", 32)
            click_text(page, "Grayscale (one input channel)")
            choose(page, "Normalization", "[-1, 1] (mean 0.5, std 0.5)")
            click_text(page, "Upload an image")
            upload(page, "Image file", photo_path)
            expect(page.get_by_test_id("stSelectbox").filter(has_text="Explainer")).to_be_visible(timeout=SLOW)
            choose(page, "Explainer", "Occlusion")
            expect(page.get_by_text("Model input: 32x32, gray")).to_be_visible(timeout=SLOW)

            page.get_by_role("button", name="Explain", exact=True).click()
            overlay = page.get_by_text("Overlay: Occlusion")
            expect(overlay).to_be_visible(timeout=SLOW)
            expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=SLOW)
            assert page.get_by_test_id("stAlertContentError").count() == 0
            screenshot_results(page, "dashboard-upload-result.png")

            # a second click with the same settings is served from the cache, progress bar and all
            page.get_by_role("button", name="Explain", exact=True).click()
            settle(page)
            expect(overlay).to_be_visible()
            assert page.get_by_test_id("stAlertContentError").count() == 0
            assert page.get_by_test_id("stException").count() == 0

            with page.expect_download(timeout=SLOW) as info:
                page.get_by_role("button", name="Download overlay PNG").click()
            download = info.value
            assert download.suggested_filename == "chelsea__occlusion.png"
            target = tmp_path / download.suggested_filename
            download.save_as(str(target))
        finally:
            browser.close()
    with Image.open(target) as png:
        png.load()
        assert png.format == "PNG"
        assert png.size == photo_size
        assert png.mode == "RGB"


def test_upload_keras_model_explain_with_grad_cam_and_download(server_url, upload_files, tmp_path):
    """A .keras file of the user's: its 32x32 grayscale input is read from the model,
    Grad-CAM runs through TensorFlow, and the overlay downloads at the photo's size."""
    from playwright.sync_api import expect, sync_playwright

    _, photo_path, photo_size = upload_files
    keras_path = tmp_path / "my_digits.keras"
    keras_path.write_bytes((ROOT / "model_zoo" / "weights" / "keras_digits_cnn.keras").read_bytes())
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
            page.goto(server_url)
            page.get_by_role("link", name="Image explainer").click()
            expect(page.get_by_text("Explain an image classifier")).to_be_visible(timeout=SLOW)
            settle(page)
            choose(page, "Framework", "Keras")
            click_text(page, "Upload a model file")
            upload(page, "Model file", keras_path)
            click_text(page, "Upload an image")
            upload(page, "Image file", photo_path)
            expect(page.get_by_text("Model input: 32x32, gray")).to_be_visible(timeout=SLOW)
            choose(page, "Explainer", "Grad-CAM")
            page.get_by_role("button", name="Explain", exact=True).click()
            expect(page.get_by_text("Overlay: Grad-CAM")).to_be_visible(timeout=SLOW)
            assert page.get_by_test_id("stAlertContentError").count() == 0
            assert page.get_by_test_id("stException").count() == 0
            screenshot_results(page, "dashboard-keras-upload.png")
            with page.expect_download(timeout=SLOW) as info:
                page.get_by_role("button", name="Download overlay PNG").click()
            target = tmp_path / info.value.suggested_filename
            info.value.save_as(str(target))
        finally:
            browser.close()
    with Image.open(target) as png:
        png.load()
        assert png.size == photo_size


def test_stop_ends_a_long_run_cleanly_and_keeps_everything_else(server_url):
    """Integrated Gradients with 2048 steps on EfficientNet-Lite0 runs for minutes on a
    CPU: the progress bar shows the time left, Stop ends the run within a progress
    update, the page says so, the settings are kept, and the next run works."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server_url)
            page.get_by_role("button", name="Explain a sample photo").click()
            expect(page.get_by_text("Overlay: Grad-CAM")).to_be_visible(timeout=SLOW)
            settle(page)
            choose(page, "Explainer", "Integrated Gradients")
            set_number(page, "Steps", 2048)
            page.get_by_role("button", name="Explain", exact=True).click()
            expect(page.get_by_text("left)", exact=False)).to_be_visible(timeout=SLOW)  # the time-left estimate
            page.get_by_role("button", name="Stop").click()
            expect(page.get_by_text("Stopped after")).to_be_visible(timeout=60_000)
            settle(page)
            assert page.get_by_test_id("stProgress").count() == 0
            assert page.get_by_test_id("stException").count() == 0
            assert page.get_by_text("Overlay: Integrated Gradients").count() == 0  # a finished run would show it
            page.screenshot(path=str(ARTIFACTS / "dashboard-stopped.png"))
            # the settings are kept, and the server is free for the next run
            expect(page.get_by_label("Steps", exact=True)).to_have_value("2048")
            set_number(page, "Steps", 8)
            page.get_by_role("button", name="Explain", exact=True).click()
            expect(page.get_by_text("Overlay: Integrated Gradients")).to_be_visible(timeout=SLOW)
        finally:
            browser.close()


def test_two_input_model_one_form_and_one_picture_per_input(server_url, tmp_path):
    """A torch.export model with an image input and a 3-feature input, uploaded with
    its description: the feature names are shown, typed values feed the vector
    input, and each input gets its own picture and .npy download."""
    import json

    import numpy as np
    import torch
    from playwright.sync_api import expect, sync_playwright
    from test_several_inputs import ImageAndVector

    model_path = tmp_path / "image_and_vector.pt2"
    program = torch.export.export(ImageAndVector().eval(), (torch.zeros(1, 1, 8, 8), torch.zeros(1, 3)))
    torch.export.save(program, str(model_path))
    described = tmp_path / "description.json"
    described.write_text(json.dumps({"inputs": [
        {"kind": "image", "name": "digit", "size": [8, 8], "grayscale": True, "mean": [0.0], "std": [1.0]},
        {"kind": "vector", "name": "extra", "size": 3, "feature_names": ["age", "fare", "siblings"]}]}))
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
            page.goto(server_url)
            page.get_by_role("link", name="Image explainer").click()
            expect(page.get_by_text("Explain an image classifier")).to_be_visible(timeout=SLOW)
            settle(page)
            click_text(page, "Upload a model file")
            upload(page, "Model file", model_path)
            upload(page, "Model description", described)
            expect(page.get_by_text("Features, in order: age, fare, siblings")).to_be_visible(timeout=SLOW)
            field = page.get_by_label("Values for extra", exact=True)
            field.fill("30, 7.25, 1")
            field.press("Enter")
            settle(page)
            choose(page, "Explainer", "Integrated Gradients")
            page.get_by_role("button", name="Explain", exact=True).click()
            expect(page.get_by_text("input extra (vector, typed values)", exact=False)).to_be_visible(timeout=SLOW)
            expect(page.get_by_text("input digit (image,", exact=False)).to_be_visible()
            assert page.get_by_test_id("stAlertContentError").count() == 0
            assert page.get_by_test_id("stException").count() == 0
            screenshot_results(page, "dashboard-several-inputs.png")
            with page.expect_download(timeout=SLOW) as info:
                page.get_by_role("button", name="extra .npy").click()
            assert info.value.suggested_filename.endswith("__integrated_gradients__extra.npy")
            target = tmp_path / "extra.npy"
            info.value.save_as(str(target))
        finally:
            browser.close()
    values = np.load(target)
    assert values.shape == (3,) and np.all(np.isfinite(values)) and np.any(values != 0)


def test_a_page_opened_by_its_address_names_the_pages_as_the_menu_does(server_url):
    """A result link or a reload opens /image directly: the sidebar lists the pages by
    their titles, never the file names of a `pages/` folder Streamlit discovers on its own."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{server_url}/image")
            nav = page.get_by_test_id("stSidebarNav")
            expect(nav).to_contain_text("Image explainer", timeout=SLOW)
            names = nav.inner_text()
            assert "Tabular explainer" in names and "Labelled sets" in names
            assert not {"app", "image", "tabular", "sets"} & {line.strip() for line in names.splitlines()}
        finally:
            browser.close()
