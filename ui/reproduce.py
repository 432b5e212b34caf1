"""The JSON record that reproduces a dashboard result from the command line.

Pure Python (no Streamlit), so the command it writes can be checked in tests.
"""

from __future__ import annotations

import shlex
from typing import Any

from xai_core.types import Explanation, ImageSpec


def _numbers(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


def command_argv(
    *,
    model: str,
    image: str,
    explanation: Explanation,
    spec: ImageSpec,
    framework: str | None = None,
    arch: str | None = None,
    labels: str | None = None,
    trust_pickle: bool = False,
    out: str = "xai_out",
) -> list[str]:
    """``python -m xai_core explain ...`` with every setting that decided the result."""
    argv = ["python", "-m", "xai_core", "explain", "--model", model]
    if framework:
        argv += ["--framework", framework]
    if arch:
        argv += ["--arch", arch]
    if trust_pickle:
        argv.append("--trust-pickle")
    if labels:
        argv += ["--labels", labels]
    argv += ["--image", image, "--method", explanation.method]
    for key, value in explanation.params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        argv += ["--param", f"{key}={text}"]
    argv += ["--seed", str(explanation.seed), "--target", str(explanation.target)]
    if explanation.layer:
        argv += ["--layer", explanation.layer]
    h, w = spec.size
    argv += ["--input-size", f"{h},{w}", "--mean", _numbers(spec.mean), "--std", _numbers(spec.std)]
    if spec.grayscale:
        argv.append("--grayscale")
    argv += ["--out", out]
    return argv


def reproduce_record(
    *,
    model: str,
    model_source: str,
    image: str,
    image_sha256: str,
    image_size: tuple[int, int],
    explanation: Explanation,
    spec: ImageSpec,
    framework: str,
    arch: str | None = None,
    labels: str | None = None,
    trust_pickle: bool = False,
    uploaded: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``image_sha256`` is the image file's own hash (as ``sha256sum`` prints it);
    ``uploaded`` names the files the user uploaded, which the command names by their
    bare names (everything else is a zoo name or an absolute path)."""
    argv = command_argv(
        model=model, image=image, explanation=explanation, spec=spec, framework=framework,
        arch=arch, labels=labels, trust_pickle=trust_pickle,
    )
    where = {}
    if uploaded:
        names = " and ".join(uploaded)
        where = {"run_in": f"the folder that holds {names} (the file(s) you uploaded), or write their paths "
                           "in the command instead"}
    return {
        "command": shlex.join(argv),
        "argv": argv,
        **where,
        "model": {"ref": model, "source": model_source, "framework": framework, "arch": arch,
                  "labels": labels, "trust_pickle": trust_pickle},
        "preprocessing": spec.to_dict(),
        "image": {"file": image, "sha256": image_sha256, "height": image_size[0], "width": image_size[1]},
        **explanation.record(),
    }
