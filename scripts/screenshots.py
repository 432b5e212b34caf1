"""Take the documentation's screenshots (docs/img/*.png) from the served dashboard.

    .venv/bin/python scripts/screenshots.py [--port 8765] [--out docs/img]

Serves the app as `make run` does (tests/served_app.py reads the Makefile), drives
Debian's Chromium with Playwright at 1400 x 1000 and saves one full-page PNG per view:
the landing page, the image explainer after the one-click start, the tabular page
after "Explain row" and the labelled-sets page after its evaluation. The first-hour
views (docs/img/first-hour-*.png) come from their browser test:
``XAI_DOCS_SCREENSHOTS=1 .venv/bin/python -m pytest tests/test_first_hour_browser.py``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from served_app import serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def _settle(page, timeout_ms: int = 180_000) -> None:
    """Wait until Streamlit has no script running (the status widget is gone)."""
    page.wait_for_timeout(1500)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_timeout(1000)


def take(url: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_role("button", name="Explain a sample photo").wait_for(timeout=120_000)
        shots.append(out / "home.png")
        page.screenshot(path=shots[-1])
        page.get_by_role("button", name="Explain a sample photo").click()
        page.get_by_text("Download overlay").first.wait_for(timeout=300_000)
        _settle(page)
        page.get_by_text("Download overlay").first.scroll_into_view_if_needed()
        page.mouse.wheel(0, -450)
        page.wait_for_timeout(500)
        shots.append(out / "dashboard.png")
        page.screenshot(path=shots[-1])
        shots.append(out / "image-full.png")
        page.screenshot(path=shots[-1], full_page=True)
        page.goto(f"{url}/tabular")
        page.get_by_role("button", name="Explain row").wait_for(timeout=120_000)
        page.get_by_role("button", name="Explain row").click()
        page.get_by_role("button", name=re.compile("^Download")).first.wait_for(timeout=300_000)
        _settle(page)
        shots.append(out / "tabular.png")
        page.screenshot(path=shots[-1], full_page=True)
        page.goto(f"{url}/sets")
        page.get_by_text("Accuracy").first.wait_for(timeout=300_000)
        _settle(page)
        shots.append(out / "sets.png")
        page.screenshot(path=shots[-1], full_page=True)
        browser.close()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, serve(args.port, Path(tmp) / "server.log", timeout_s=120) as url:
        for shot in take(url, Path(args.out)):
            print(shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
