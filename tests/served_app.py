"""The command line `make run` serves the dashboard with, read from the Makefile, so
the tests serve the app exactly as a user does (a watcher left on in the Makefile
but switched off in a test would go unseen)."""

from __future__ import annotations

import shlex
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_run_streamlit_args(port: int) -> list[str]:
    """The arguments after ``-m streamlit`` in the Makefile's ``run`` recipe, with
    ``$(PORT)`` filled in."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = lines.index("run:")
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        if "-m streamlit" in line:
            args = shlex.split(line.split("-m streamlit", 1)[1].replace("$(PORT)", str(port)))
            return args
    raise AssertionError("the Makefile's run recipe starts no streamlit server")


def dockerfile_streamlit_args() -> list[str]:
    """The arguments after ``-m streamlit`` in the Dockerfile's CMD."""
    import json

    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            argv = json.loads(line[4:])
            return argv[argv.index("streamlit") + 1:]
    raise AssertionError("the Dockerfile has no CMD")


def wait_until_healthy(url: str, proc, timeout: float) -> bool:
    """Poll Streamlit's health endpoint until it answers ok (True), the server
    process exits or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return True
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.5)
