"""What `make run` installs runs everything the README and the docs show.

Every ``python -m xai_core`` example of README.md and docs/*.md (parsed out of
their shell blocks by tests/docs_examples.py) runs in ``.venv-runtime``: a clean
virtual environment with requirements.txt only (scripts/runtime_venv.sh, rebuilt
when requirements.txt or pyproject.toml change, reused otherwise). The dev venv
hid a missing runtime dependency once (OpenCV for shap_partition); this venv
cannot. Each example must exit 0. `--out` is moved under a temporary folder so
that nothing is written into the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_examples  # noqa: E402

ROOT = docs_examples.ROOT
EXAMPLES = [e for e in docs_examples.examples() if docs_examples.runnable(e)]

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    """The environment of a user's shell: nothing of the test venv leaks in."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return env


@pytest.fixture(scope="session")
def runtime_python() -> str:
    """.venv-runtime's python (built from requirements.txt only when missing or stale)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "runtime_venv.sh")], cwd=ROOT, env=_clean_env(),
                          capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, f"building .venv-runtime failed:\n{done.stderr[-3000:]}"
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.timeout(3000)
def test_the_runtime_venv_holds_requirements_txt_only(runtime_python):
    """The venv is the runtime one: the test-only packages are absent, OpenCV (headless) is there."""
    probe = ("import importlib.util as u; "
             "print(*(bool(u.find_spec(m)) for m in ('pytest', 'quantus', 'pytorch_grad_cam', 'cv2', 'shap')))")
    done = subprocess.run([runtime_python, "-c", probe], capture_output=True, text=True, env=_clean_env(), cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False", "True", "True"]


def test_the_pages_have_examples_and_every_one_is_collected():
    """The parser finds the README's command-line examples (a moved page keeps them checked)."""
    assert len(EXAMPLES) >= 5
    commands = {e.argv[0] for e in EXAMPLES}
    assert {"models", "explain", "explain-tabular"} <= commands


@pytest.mark.timeout(3000)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.page}:{e.line}")
def test_example_runs_with_requirements_txt_only(example, runtime_python, tmp_path):
    argv = docs_examples.with_out_under(example.argv, tmp_path)
    done = subprocess.run([runtime_python, "-m", "xai_core", *argv], cwd=ROOT, env=_clean_env(),
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, (
        f"{example.page} line {example.line}: python -m xai_core {' '.join(example.argv)}\n"
        f"exit {done.returncode}\n{done.stderr[-2000:]}")
