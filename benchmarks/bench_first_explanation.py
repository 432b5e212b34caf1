"""Seconds from clicking the landing page's one-click start to the explanation on
screen, in a real browser (Playwright + Debian's /usr/bin/chromium), against
the dashboard served exactly as `make run` serves it.

    python benchmarks/bench_first_explanation.py [--runs 3] [--wait 0] [--short]

Each run starts a fresh server, waits until it answers its health check, opens the
app, waits ``--wait`` seconds (a reader's pause; 0 = click as soon as the button
shows), clicks "Explain a sample photo" and stops the clock when the Grad-CAM
overlay caption and the predictions table are visible.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from served_app import serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(wait: float) -> tuple[float, float]:
    """(seconds from click to explanation, seconds from opening to the button)."""
    import tempfile

    from playwright.sync_api import expect, sync_playwright

    log = Path(tempfile.gettempdir()) / "bench-first-explanation-server.log"
    with serve(free_port(), log, timeout_s=300) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        opened = time.perf_counter()
        page.goto(url)
        button = page.get_by_role("button", name="Explain a sample photo")
        expect(button).to_be_visible(timeout=120_000)
        shown = time.perf_counter() - opened
        page.wait_for_timeout(wait * 1000)
        start = time.perf_counter()
        button.click()
        expect(page.get_by_text("Overlay: Grad-CAM")).to_be_visible(timeout=300_000)
        expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=300_000)
        elapsed = time.perf_counter() - start
        browser.close()
    return elapsed, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wait", type=float, default=0.0)
    parser.add_argument("--short", action="store_true", help="one run")
    args = parser.parse_args()
    if args.short:
        args.runs = 1
    times, shown_times = [], []
    for i in range(args.runs):
        elapsed, shown = one_run(args.wait)
        times.append(elapsed)
        shown_times.append(shown)
        print(f"run {i + 1}: button after {shown:.1f} s, click -> explanation {elapsed:.1f} s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"median click -> explanation: {statistics.median(times):.1f} s over {args.runs} runs, wait {args.wait} s")
    print("\n| runs | wait (s) | page open -> button (s, median) | click -> explanation (s, median) |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {args.runs} | {args.wait:g} | {statistics.median(shown_times):.1f} | {statistics.median(times):.1f} |")


if __name__ == "__main__":
    main()
