"""What a fresh clone needs beyond the code: outputs ignored by git, the project
installed into .venv, and a container image that builds small enough to ship and
stops cleanly. (scripts/build_container.sh builds and runs the image itself; too
slow for the suite, its numbers are in the README.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", ["xai_out/x__grad_cam.png", "sub/xai_out/results.json", "out_tab/results.json",
                                  "build/lib/x.py", "xai_dashboard.egg-info/PKG-INFO"])
def test_outputs_are_ignored_by_git(path):
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert done.returncode == 0, f"{path} is not ignored"


def test_setup_installs_the_project_and_the_package_list_finds_every_subpackage():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "pip install --quiet --no-deps -e ." in setup
    from setuptools import find_packages

    found = set(find_packages(str(ROOT), include=["xai_core*", "model_zoo*"]))
    on_disk = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in ROOT.glob("xai_core/**/__init__.py")}
    assert on_disk <= found and "model_zoo" in found


def test_the_image_installs_the_project_in_a_venv_and_stops_on_sigint():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert "ARG BASE=python:3.11-slim" in lines and "FROM ${BASE}" in lines
    assert any("python3 -m venv /opt/venv" in line for line in lines)
    assert any("pip install --no-deps -e ." in line for line in lines)
    assert "STOPSIGNAL SIGINT" in lines
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv/", ".git/", "artifacts/", "xai_out/"} <= set(ignored)
    done = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "build_container.sh")], capture_output=True)
    assert done.returncode == 0, done.stderr
