"""The documentation site builds with --strict (no broken link, no docstring reference
that mkdocstrings cannot resolve), every page is in the navigation, and the README's
links lead to files that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT


def test_docs_site_builds_strict(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"), timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("open_model") > 1


def test_every_docs_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    missing = sorted(p for p in pages if f" {p}" not in nav)
    assert missing == []


def test_readme_links_exist_and_it_fits_two_screens():
    text = (ROOT / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)#]+)", text) if not t.startswith("http")]
    assert targets and [t for t in targets if not (ROOT / t).exists()] == []
    assert len(text.splitlines()) <= 60
