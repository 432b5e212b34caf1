"""Runs that outlive the page, in a real headless Chromium against `make run`'s server:
the estimate before a run, the time left during it, Stop, a reloaded tab and a
dropped connection that find the run again, and a killed server whose finished
results survive its restart. digits_cnn keeps every run short."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from served_app import make_run_streamlit_args
from test_dashboard_browser import ARTIFACTS, CHROMIUM, SLOW, choose, free_port, launch, set_number, settle

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]


@contextlib.contextmanager
def server(port: int, runs_dir: Path, log_name: str):
    """`make run`'s server with its run store in ``runs_dir``; yields (url, process)."""
    ARTIFACTS.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), XAI_RUNS_DIR=str(runs_dir))
    with (ARTIFACTS / log_name).open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", *make_run_streamlit_args(port),
                                 "--server.address", "127.0.0.1"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start; see {ARTIFACTS / log_name}")
                time.sleep(0.5)
            yield url, proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def served(runs_dir):
    with server(free_port(), runs_dir, "streamlit-runs.log") as (url, _):
        yield url


def run_state(runs_dir: Path, run_id: str) -> tuple[str, float | None]:
    """(state, start time) of a run, read from the server's store."""
    with contextlib.closing(sqlite3.connect(runs_dir / "runs.sqlite3")) as db:
        return db.execute("SELECT state, started FROM runs WHERE id=?", (run_id,)).fetchone()


def count_runs(runs_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(runs_dir / "runs.sqlite3")) as db:
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def digits_page(page, url: str, method: str) -> None:
    """The image page with the zoo's digits model and ``method`` chosen."""
    from playwright.sync_api import expect

    page.goto(f"{url}/image")
    expect(page.get_by_text("Explain an image classifier")).to_be_visible(timeout=SLOW)
    settle(page)
    choose(page, "Zoo model", "digits_cnn")
    expect(page.get_by_text("Model input: 32x32, gray")).to_be_visible(timeout=SLOW)
    expect(page.get_by_test_id("stSelectbox").filter(has_text="Explainer")).to_be_visible(timeout=SLOW)
    settle(page)
    choose(page, "Explainer", method)


def test_an_explain_run_outlives_a_reloaded_tab_and_a_dropped_connection(served, runs_dir):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            digits_page(page, served, "LIME (superpixels)")
            set_number(page, "Samples", 20000)
            # before the start: the estimate of what pressing Explain will cost
            expect(page.get_by_text("Estimated ~", exact=False).first).to_contain_text("20,001 model evaluations",
                                                                                      timeout=SLOW)
            page.get_by_role("button", name="Explain", exact=True).click()
            expect(page.get_by_text("Explaining: LIME (superpixels)", exact=False)).to_be_visible(timeout=SLOW)
            expect(page.get_by_text("result link", exact=False)).to_be_visible()
            link = page.url
            run_id = parse_qs(urlparse(link).query)["run"][0]
            state, started_at = run_state(runs_dir, run_id)
            assert state in ("queued", "running")

            page.reload()  # the tab reloads: a new session follows the same run (or shows it, once finished)
            expect(page.get_by_text(re.compile(r"Explaining: LIME \(superpixels\)|Overlay: LIME \(superpixels\)"))
                   .first).to_be_visible(timeout=SLOW)
            page.close()  # the connection drops

            again = browser.new_context().new_page()  # a fresh session, from the result link alone
            again.goto(link)
            expect(again.get_by_text("Overlay: LIME (superpixels)")).to_be_visible(timeout=SLOW)
            expect(again.get_by_text("The result of the run in this page's link", exact=False)).to_be_visible()
            assert again.get_by_test_id("stAlertContentError").count() == 0
            assert again.get_by_test_id("stException").count() == 0
            again.screenshot(path=str(ARTIFACTS / "dashboard-run-from-link.png"))
            # one run, started once and never again: the reload and the dropped connection only followed it
            state, started = run_state(runs_dir, run_id)
            assert state == "done" and started_at in (None, started) and count_runs(runs_dir) == 1
        finally:
            browser.close()


def test_the_metrics_run_states_its_estimate_and_time_left_and_stop_ends_it(served):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            digits_page(page, served, "LIME (superpixels)")
            set_number(page, "Samples", 4000)
            page.get_by_role("button", name="Explain", exact=True).click()
            expect(page.get_by_text("Overlay: LIME (superpixels)")).to_be_visible(timeout=SLOW)
            settle(page)
            page.get_by_text("Can I trust these maps?", exact=False).click()
            settle(page)
            # the quick budget states its estimate and leaves out what does not fit
            expect(page.get_by_text("Estimated ~", exact=False).last).to_be_visible(timeout=SLOW)
            page.get_by_text("Full (the metric settings)").click()
            settle(page)
            assert page.get_by_text("Can I trust these maps?", exact=False).count() == 1
            expect(page.get_by_role("button", name="Check faithfulness")).to_be_visible()  # the panel stayed open
            expect(page.get_by_text("Estimated ~", exact=False).last).to_contain_text("randomization, sensitivity",
                                                                                     timeout=SLOW)
            page.get_by_role("button", name="Check faithfulness").click()
            expect(page.get_by_text("left)", exact=False)).to_be_visible(timeout=SLOW)  # time left, while it runs
            expect(page.get_by_text("Checking the maps", exact=False)).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "dashboard-metrics-running.png"))
            page.get_by_role("button", name="Stop").click()
            expect(page.get_by_text("Stopped after")).to_be_visible(timeout=60_000)
            settle(page)
            assert page.get_by_test_id("stProgress").count() == 0
            assert page.get_by_test_id("stException").count() == 0
            assert page.get_by_text("mean rank").count() == 0  # no metrics table: the run ended unfinished
            expect(page.get_by_text("Overlay: LIME (superpixels)")).to_be_visible()  # the explanation is kept
        finally:
            browser.close()


def test_a_killed_server_keeps_every_finished_result_and_names_the_lost_run(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    runs_dir = tmp_path / "runs"
    port = free_port()
    with sync_playwright() as p:
        browser = launch(p)
        try:
            with server(port, runs_dir, "streamlit-restart-1.log") as (url, proc):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                digits_page(page, url, "Saliency (gradients)")
                page.get_by_role("button", name="Explain", exact=True).click()
                expect(page.get_by_text("Overlay: Saliency (gradients)")).to_be_visible(timeout=SLOW)
                finished = page.url
                choose(page, "Explainer", "LIME (superpixels)")
                set_number(page, "Samples", 20000)
                page.get_by_role("button", name="Explain", exact=True).click()
                expect(page.get_by_text("Explaining: LIME (superpixels)", exact=False)).to_be_visible(timeout=SLOW)
                lost = page.url
                assert lost != finished
                os.killpg(proc.pid, signal.SIGKILL)  # the server dies mid-run
                proc.wait()
                page.close()
            with server(port, runs_dir, "streamlit-restart-2.log") as (url, _):
                page = browser.new_context().new_page()
                page.goto(finished)
                expect(page.get_by_text("Overlay: Saliency (gradients)")).to_be_visible(timeout=SLOW)
                page.goto(lost)
                expect(page.get_by_text("interrupted by a server restart", exact=False)).to_be_visible(timeout=SLOW)
                assert page.get_by_test_id("stException").count() == 0
        finally:
            browser.close()


def keras_upload_page(page, url: str, keras_path: Path, method: str) -> None:
    """The image page with the user's .keras file uploaded (it runs in a model worker)
    and ``method`` chosen."""
    from playwright.sync_api import expect
    from test_dashboard_browser import click_text, upload

    page.goto(f"{url}/image")
    expect(page.get_by_text("Explain an image classifier")).to_be_visible(timeout=SLOW)
    settle(page)
    choose(page, "Framework", "Keras")
    click_text(page, "Upload a model file")
    upload(page, "Model file", keras_path)
    expect(page.get_by_text("Model input: 32x32, gray")).to_be_visible(timeout=SLOW)
    choose(page, "Explainer", method)


def test_a_second_session_on_the_same_model_says_it_waits_and_its_place(served, tmp_path):
    """Two browser sessions upload the same model file: they share one model worker,
    so the second run waits, and its page says so (with its place in the queue)
    instead of showing nothing; Stop on the first lets the second run."""
    from playwright.sync_api import expect, sync_playwright

    keras_path = tmp_path / "shared_digits.keras"
    keras_path.write_bytes((ROOT / "model_zoo" / "weights" / "keras_digits_cnn.keras").read_bytes())
    with sync_playwright() as p:
        browser = launch(p)
        try:
            first = browser.new_context().new_page()
            first.set_viewport_size({"width": 1400, "height": 1000})
            keras_upload_page(first, served, keras_path, "LIME (superpixels)")
            set_number(first, "Samples", 20000)
            second = browser.new_context().new_page()  # another session: its own cookies and state
            second.set_viewport_size({"width": 1400, "height": 1000})
            keras_upload_page(second, served, keras_path, "Occlusion")

            first.get_by_role("button", name="Explain", exact=True).click()
            expect(first.get_by_text("Explaining: LIME (superpixels)", exact=False)).to_be_visible(timeout=SLOW)
            second.get_by_role("button", name="Explain", exact=True).click()
            expect(second.get_by_text("waiting for another run on this model (1 ahead)", exact=False)) \
                .to_be_visible(timeout=SLOW)
            second.screenshot(path=str(ARTIFACTS / "dashboard-run-waiting.png"))

            first.get_by_role("button", name="Stop").click()
            expect(first.get_by_text("Stopped after")).to_be_visible(timeout=60_000)
            expect(second.get_by_text("Overlay: Occlusion")).to_be_visible(timeout=SLOW)
            for page in (first, second):
                assert page.get_by_test_id("stException").count() == 0
                assert page.get_by_test_id("stAlertContentError").count() == 0
        finally:
            browser.close()
