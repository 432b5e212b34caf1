"""The frameworks as the adapters meet them: quiet lazy imports of TensorFlow and
onnxruntime, and what a loaded model offers before it is wrapped (a SavedModel's
serving signature, the checks on a Keras model's inputs and outputs, an ONNX graph
input). The loaders (:mod:`xai_core.loading`) build these; the adapters use them.
Also the process's memory: what it holds now and the limit it runs under."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Any

from xai_core.types import ModelLoadError


def import_tensorflow():
    """Import TensorFlow quietly (its C++ start-up chatter would bury our messages).

    With TensorFlow loaded before triton's native library (which torch.export and
    torch.compile load on first use), that later load crashes the process
    (tensorflow-cpu 2.21 + torch 2.14), so triton, when installed, is imported first.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401
        except Exception:  # noqa: BLE001 - triton is optional; only its load order matters
            pass
    try:
        import tensorflow as tf
    except ImportError:
        raise ModelLoadError(
            "Keras models need TensorFlow: pip install -r requirements.txt (tensorflow-cpu)"
        ) from None
    return tf


def memory_limit_bytes() -> int:
    """The memory this process may use: ``XAI_MEMORY_MB`` (the model worker is
    started with its own limit there), else half the machine's memory up to 16 GB."""
    if os.environ.get("XAI_MEMORY_MB"):
        return int(float(os.environ["XAI_MEMORY_MB"]) * 2**20)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(min(total // 2, 16 * 2**30))


def memory_limit_setting() -> str:
    """The setting a user changes for :func:`memory_limit_bytes` (the worker's is its own)."""
    return os.environ.get("XAI_MEMORY_SETTING", "XAI_MEMORY_MB")


def resident_bytes() -> int:
    """This process's resident memory (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class SavedModelFunction:
    """A SavedModel's serving signature as a one-input, one-output callable.

    ``input_shape`` is (None, H, W, C) with None where the graph accepts any size.
    """

    function: Any
    input_name: str
    output_name: str
    input_shape: tuple
    resource: Any  # the loaded object; keeps the variables alive

    def __call__(self, x):
        return self.function(**{self.input_name: x})[self.output_name]


def check_model_io(model: Any, label: str) -> None:
    """Refuse models whose inputs are neither images (N x H x W x C) nor feature rows
    (N x F), or with several outputs. Several inputs are fine."""
    inputs = _model_inputs(model)
    for t in inputs:
        shape = tuple(t.shape)
        if len(shape) not in (2, 4):
            raise ModelLoadError(
                f"{label} takes input {getattr(t, 'name', '?')!r} of shape {shape}; inputs must be "
                "images (N x H x W x C) or feature rows (N x F)"
            )
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) > 1:
        raise ModelLoadError(
            f"{label} has {len(outputs)} outputs; only models with one N x classes (or N x 1) output are supported"
        )


def _model_inputs(model: Any) -> list:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ModelLoadError(
            f"{getattr(model, 'name', 'the model')} has no defined input (a subclassed or "
            "unbuilt model); save it as a functional or Sequential model with an Input"
        )
    return list(inputs)


ONNX_FLOAT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}


@dataclass(frozen=True)
class OnnxInput:
    """What one graph input wants: layout 'NCHW' or 'NHWC' (an image) or 'NF' (feature
    rows, ``width`` features), dims (None where dynamic), NumPy dtype name and a fixed
    batch size (None when any batch works)."""

    name: str
    layout: str
    height: int | None
    width: int | None
    channels: int | None
    dtype: str
    batch: int | None


def import_onnxruntime():
    """onnxruntime with its telemetry events off (nothing written or sent about use)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelLoadError("ONNX models need onnxruntime: pip install -r requirements.txt") from None
    try:
        ort.disable_telemetry_events()
    except AttributeError:  # builds without telemetry
        pass
    return ort
