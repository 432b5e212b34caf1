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
    inputs: tuple[tuple[str, str], ...] = (),
) -> list[str]:
    """``python -m xai_core explain ...`` with every setting that decided the result;
    ``inputs`` are (input name, file) pairs of a model with several inputs, for the
    inputs that ``--image`` does not feed."""
    argv = ["python", "-m", "xai_core", "explain", "--model", model]
    if framework:
        argv += ["--framework", framework]
    if arch:
        argv += ["--arch", arch]
    if trust_pickle:
        argv.append("--trust-pickle")
    if labels:
        argv += ["--labels", labels]
    argv += ["--image", image]
    for name, file in inputs:
        argv += ["--input", f"{name}={file}"]
    argv += ["--method", explanation.method]
    for key, value in explanation.params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        argv += ["--param", f"{key}={text}"]
    argv += ["--seed", str(explanation.seed), "--target", str(explanation.target)]
    if explanation.layer:
        argv += ["--layer", explanation.layer]
    if explanation.output_kind == "logit":  # a no-op for a logit model; strips a softmax model's softmax
        argv += ["--explains", "logit"]
    h, w = spec.size
    argv += ["--input-size", f"{h},{w}", "--mean", _numbers(spec.mean), "--std", _numbers(spec.std)]
    if spec.grayscale:
        argv.append("--grayscale")
    if spec.resize is not None or spec.interpolation != "bilinear":  # a centre crop or a model's own filter
        argv += ["--resize", resize_text(spec), "--interpolation", spec.interpolation]
    argv += ["--out", out]
    return argv


def resize_text(spec: ImageSpec) -> str:
    """``spec.resize`` as --resize takes it: none, E or H,W."""
    if spec.resize is None:
        return "none"
    return str(spec.resize) if isinstance(spec.resize, int) else f"{spec.resize[0]},{spec.resize[1]}"


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
    inputs: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """``image_sha256`` is the image file's own hash (as ``sha256sum`` prints it);
    ``uploaded`` names the files the user uploaded, which the command names by their
    bare names (everything else is a zoo name or an absolute path). ``inputs``
    describes each input of a model with several ({"name", "kind", "file"
    (None: fed by --image), "sha256", and "values" for a typed row})."""
    argv = command_argv(
        model=model, image=image, explanation=explanation, spec=spec, framework=framework,
        arch=arch, labels=labels, trust_pickle=trust_pickle,
        inputs=tuple((i["name"], i["file"]) for i in inputs if i.get("file")),
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
        **({"model_inputs": list(inputs)} if inputs else {}),
        **explanation.record(),
    }
