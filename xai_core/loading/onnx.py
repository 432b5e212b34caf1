"""Loader for ONNX image classifiers (untrusted input): onnxruntime parses the graph,
which holds no Python code. onnxruntime is imported only when an ONNX model is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xai_core.adapters.runtime import ONNX_FLOAT_TYPES, OnnxInput, import_onnxruntime
from xai_core.loading.spec import (
    OpenOptions,
    model_default_spec,
    read_sidecar,
    sidecar_inputs,
    sidecar_labels,
)
from xai_core.loading.torch import check_model_file
from xai_core.types import ModelLoadError


def load_onnx_file(path: str | Path) -> tuple[Any, OnnxInput]:
    """An onnxruntime CPU session for ``path`` and a description of its image input."""
    path = Path(path)
    label = check_model_file(path)
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any failure is the file's
        raise ModelLoadError(
            f"{label}: not a readable ONNX model; the file may be corrupt or truncated ({_short(exc)})"
        ) from None
    return session, describe_input(session, label)


def describe_input(session: Any, label: str) -> OnnxInput:
    """The first input of the graph (see :func:`describe_inputs`)."""
    return describe_inputs(session, label)[0]


def describe_inputs(session: Any, label: str) -> list[OnnxInput]:
    """Every input of the graph: images (layout 'NCHW' or 'NHWC') or feature rows
    (layout 'NF', ``width`` = number of features)."""
    inputs = session.get_inputs()
    if not inputs:
        raise ModelLoadError(f"{label} has no inputs")
    if not session.get_outputs():
        raise ModelLoadError(f"{label} has no outputs")
    return [_describe_one(inp, label) for inp in inputs]


def _describe_one(inp: Any, label: str) -> OnnxInput:
    if inp.type not in ONNX_FLOAT_TYPES:
        raise ModelLoadError(
            f"{label} takes {inp.type} input; only float image tensors or feature rows (float32, "
            f"float16, double) are supported (input {inp.name!r})"
        )
    shape = [d if isinstance(d, int) and d > 0 else None for d in inp.shape]
    if len(shape) == 2:
        return OnnxInput(inp.name, "NF", None, shape[1], None, ONNX_FLOAT_TYPES[inp.type], shape[0])
    if len(shape) != 4:
        raise ModelLoadError(
            f"{label} takes input of shape {inp.shape} at {inp.name!r}; inputs must be images "
            "(N x C x H x W or N x H x W x C) or feature rows (N x F)"
        )
    d1, d3 = shape[1], shape[3]
    if d3 in (1, 3) and d1 not in (1, 3):
        layout, (h, w, c) = "NHWC", shape[1:]
    else:  # NCHW when it says so, and by default (PyTorch exports)
        layout, (c, h, w) = "NCHW", shape[1:]
    if c is not None and c not in (1, 3):
        raise ModelLoadError(f"{label} takes {c}-channel images; only 1 (grayscale) or 3 (RGB) channels are supported")
    return OnnxInput(inp.name, layout, h, w, c, ONNX_FLOAT_TYPES[inp.type], shape[0])


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "") or type(exc).__name__


__all__ = ["OnnxInput", "load_onnx_file", "describe_input", "describe_inputs"]


def open_onnx(path: Path, options: OpenOptions):
    """An ONNX graph (and its ``model.json`` sidecar) -> an OnnxAdapter; preprocessing
    defaults from the first image input's fixed dimensions."""
    from xai_core.adapters.onnx import OnnxAdapter, onnx_class_labels

    if options.rows:
        name = options.name or path.name
        session, _ = load_onnx_file(path)
        return OnnxAdapter(session, describe_inputs(session, name), options.inputs, options.labels, name=name,
                           batch_size=options.batch_size, output_kind=options.output_kind,
                           class_labels=onnx_class_labels(path.read_bytes()))
    sidecar = read_sidecar(path)
    session, _ = load_onnx_file(path)
    infos = describe_inputs(session, path.name)
    images = [i for i in infos if i.layout != "NF"]
    first = images[0] if images else None
    spec = sidecar_inputs(sidecar) or options.overrides.apply(model_default_spec(
        sidecar, *((first.height, first.width, first.channels) if first else (None, None, None))))
    return OnnxAdapter(session, infos, spec, sidecar_labels(sidecar, options.labels), name=path.name,
                       batch_size=options.batch_size, output_kind=sidecar.get("output"))
