"""The served app (make run, the container) watches no files.

With Streamlit's file watcher on, the server walks the project folder (.venv
included), overflows inotify and reconciles forever while holding the GIL: SHAP
Partition on the cat took over 600 s in the page against 18 s with it off. The
browser tests serve with the Makefile's own arguments (tests/served_app.py); this
checks the effective setting Streamlit resolves from those arguments and the
project's config file, for the Makefile and the Dockerfile.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from served_app import ROOT, dockerfile_streamlit_args, make_run_streamlit_args

RESOLVE = """
import json, sys
from streamlit import config
flags = {}
args = sys.argv[1:]
i = 0
while i < len(args):
    a = args[i]
    if a.startswith("--") and "." in a:
        key, _, value = a[2:].partition("=")
        if not value:
            value, i = args[i + 1], i + 1
        flags[key] = value
    i += 1
config.get_config_options(force_reparse=True, options_from_flags=flags)
print(json.dumps({k: config.get_option(k) for k in
      ("server.fileWatcherType", "server.runOnSave", "server.headless")}))
"""


def effective(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", RESOLVE, *args[2:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("source", ["Makefile", "Dockerfile"])
def test_served_app_watches_no_files(source):
    args = make_run_streamlit_args(8501) if source == "Makefile" else dockerfile_streamlit_args()
    assert args[:2] == ["run", "app.py"]
    options = effective(args)
    assert options["server.fileWatcherType"] == "none", f"{source} serves with the file watcher on"
    assert options["server.runOnSave"] is False
    assert str(options["server.headless"]).lower() == "true"


def test_project_config_turns_the_watcher_off_without_flags():
    """`streamlit run app.py` typed by hand in the project folder is quiet too."""
    assert effective(["run", "app.py"])["server.fileWatcherType"] == "none"
