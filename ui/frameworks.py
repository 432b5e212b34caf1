"""The model frameworks the dashboard can offer, in one place.

A framework appears in the selector only when xai_core ships its adapter module
and the framework's own package is installed; both are checked without importing
anything heavy. Adding a framework is one line in :data:`FRAMEWORKS`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    key: str  # the name open_model(framework=...) takes
    label: str
    adapter_module: str  # the xai_core adapter that serves it
    package: str  # the framework package the adapter imports
    suffixes: tuple[str, ...]  # upload file types, without dots
    formats: str  # what the upload may hold, for the help text


FRAMEWORKS: tuple[Framework, ...] = (
    Framework("torch", "PyTorch", "xai_core.adapters.torch", "torch", ("pt", "pth", "pt2", "bin", "safetensors"),
              "TorchScript, a torch.export .pt2 program, a state_dict or .safetensors weights, or a pickled module"),
    Framework("keras", "Keras", "xai_core.adapters.keras", "keras", ("keras", "h5", "zip"),
              "a .keras archive (loaded with safe_mode), a legacy .h5 file, or a SavedModel folder as .zip"),
    Framework("onnx", "ONNX", "xai_core.adapters.onnx", "onnxruntime", ("onnx",),
              "an ONNX graph (predictions only: LIME, SHAP partition, occlusion)"),
)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_frameworks() -> list[Framework]:
    """Frameworks whose xai_core adapter and package are both present."""
    return [f for f in FRAMEWORKS if _module_exists(f.adapter_module) and _module_exists(f.package)]


def get_framework(key: str) -> Framework:
    for framework in FRAMEWORKS:
        if framework.key == key:
            return framework
    raise KeyError(key)
