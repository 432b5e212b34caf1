"""Screenshots of every page at 1400 and 800 px wide, light and dark, with results on
screen, from `make run`'s server in headless Chromium (Playwright).

    .venv/bin/python scripts/screenshots.py [--out artifacts/screens] [--readme]

Writes <page>-<width>-<theme>.png to --out; with --readme also refreshes
docs/dashboard.png (the image page after the one-click start, 1400 px, light).
Needs Debian's chromium (scripts/setup.sh test installs it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from served_app import serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SLOW = 240_000


def settle(page) -> None:
    page.wait_for_timeout(400)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')"
                           " && !document.querySelector('[data-stale=true]')", timeout=SLOW)
    page.wait_for_timeout(800)


def shoot(page, path: Path, width: int) -> None:
    """The whole app: the page scrolls inside its own container, so grow the viewport to it."""
    page.set_viewport_size({"width": width, "height": 1000})
    settle(page)
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
                           "[data-testid=stAppViewContainer] section')].map(e => e.scrollHeight), 1000)")
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 6000)})
    settle(page)
    page.screenshot(path=str(path))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "screens"))
    parser.add_argument("--port", type=int, default=8597)
    parser.add_argument("--readme", action="store_true", help="also refresh docs/dashboard.png")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import expect, sync_playwright

    with serve(args.port, out / "server.log") as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox",
                                                                        "--disable-gpu"])
            for theme in ("light", "dark"):
                page = browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme=theme)
                page.goto(url)
                expect(page.get_by_role("button", name="Explain a sample photo")).to_be_visible(timeout=SLOW)
                for width in (1400, 800):
                    shoot(page, out / f"start-{width}-{theme}.png", width)
                page.set_viewport_size({"width": 1400, "height": 1000})
                page.get_by_role("button", name="Explain a sample photo").click()
                expect(page.get_by_text("Overlay: Grad-CAM")).to_be_visible(timeout=SLOW)
                for width in (1400, 800):
                    shoot(page, out / f"image-{width}-{theme}.png", width)
                if theme == "light" and args.readme:
                    page.set_viewport_size({"width": 1400, "height": 1000})
                    settle(page)
                    page.screenshot(path=str(ROOT / "docs" / "dashboard.png"))
                # the compare view: Grad-CAM next to Integrated Gradients
                page.set_viewport_size({"width": 1400, "height": 1000})
                page.get_by_test_id("stMultiSelect").filter(has_text="Compare with").click()
                page.get_by_role("option", name="Integrated Gradients").click()
                page.keyboard.press("Escape")
                settle(page)
                page.get_by_text("Integrated Gradients settings").click()
                settle(page)
                field = page.get_by_label("Steps", exact=True)
                field.fill("16")
                field.press("Enter")
                settle(page)
                page.get_by_role("button", name="Explain", exact=True).click()
                expect(page.get_by_text("Overlay: Integrated Gradients")).to_be_visible(timeout=SLOW)
                for width in (1400, 800):
                    shoot(page, out / f"compare-{width}-{theme}.png", width)
                # the tabular page with one row explained
                page.set_viewport_size({"width": 1400, "height": 1000})
                page.get_by_role("link", name="Tabular explainer").click()
                expect(page.get_by_text("Tabular rows")).to_be_visible(timeout=SLOW)
                settle(page)
                page.get_by_role("button", name="Explain row").click()
                expect(page.get_by_text("model evaluations in")).to_be_visible(timeout=SLOW)
                for width in (1400, 800):
                    shoot(page, out / f"tabular-{width}-{theme}.png", width)
                page.close()
            browser.close()
    print(f"wrote {len(list(out.glob('*.png')))} screenshots to {out}")
    return 0


if __name__ == "__main__":
    if not shutil.which(CHROMIUM):
        raise SystemExit(f"error: needs Debian's chromium at {CHROMIUM}")
    sys.exit(main())
