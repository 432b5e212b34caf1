"""The command line `make run` serves the dashboard with, read from the Makefile, so
the tests serve the app exactly as a user does (a watcher left on in the Makefile
but switched off in a test would go unseen)."""

from __future__ import annotations

import contextlib
import shlex
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


@contextlib.contextmanager
def serve(port: int, log_path: Path, timeout_s: float = 90):
    """``make run``'s server on loopback at ``port`` (log in ``log_path``): yields its
    URL once /_stcore/health answers, and stops it afterwards."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", *make_run_streamlit_args(port), "--server.address", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                        if response.read().strip() == b"ok":
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start; see {log_path}")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
