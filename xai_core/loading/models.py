"""Open a model by zoo name or file path and wrap it in its framework's adapter.

Preprocessing precedence: explicit arguments, then the zoo entry, then a sidecar
JSON next to the model file (``model.pt`` -> ``model.json`` with ``size``,
``mean``, ``std``, ``grayscale`` and optionally ``labels``/``arch``), then
ImageNet defaults.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xai_core.adapters.base import ModelAdapter
from xai_core.types import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageSpec,
    InputError,
    InputSpec,
    ModelLoadError,
    spec_from_dict,
)

_FIRST_USE_LOCK = threading.RLock()
TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".bin", ".ckpt", ".torchscript", ".safetensors")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
ONNX_SUFFIXES = (".onnx",)


@dataclass(frozen=True)
class SpecOverrides:
    """Preprocessing the user set explicitly; None means 'not given'."""

    size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    grayscale: bool | None = None

    def apply(self, spec: ImageSpec) -> ImageSpec:
        changes: dict[str, Any] = {}
        if self.size is not None:
            changes["size"] = self.size
        if self.grayscale is not None:
            changes["grayscale"] = self.grayscale
            if self.grayscale != spec.grayscale and self.mean is None:
                changes["mean"] = (0.5,) if self.grayscale else (0.485, 0.456, 0.406)
                changes["std"] = (0.5,) if self.grayscale else (0.229, 0.224, 0.225)
        if self.mean is not None:
            changes["mean"] = self.mean
        if self.std is not None:
            changes["std"] = self.std
        return replace(spec, **changes) if changes else spec


def infer_framework(path: Path) -> str:
    suffix = path.suffix.lower()
    if path.is_dir():
        return "keras"  # a SavedModel directory
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in KERAS_SUFFIXES:
        return "keras"
    return "torch"


def read_json_sidecar(path: Path) -> dict[str, Any]:
    """The JSON object in ``model.json`` beside ``model.pt`` ({} when there is none)."""
    sidecar = path.with_suffix(".json")
    if sidecar == path or not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{sidecar.name}: invalid JSON sidecar ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{sidecar.name}: the sidecar must be a JSON object")
    for where in (data, data.get("spec") if isinstance(data.get("spec"), dict) else {}):
        for key, meant in MISTAKEN_KEYS.items():
            if key in where and meant not in where:
                raise InputError(f'{sidecar.name}: "{key}" is not a key we read (it would be ignored); '
                                 f'write "{meant}" instead')
    return data


# keys users write for the ones the sidecar has: refused with the right name rather
# than ignored (other keys, such as training notes, are left alone)
MISTAKEN_KEYS = {
    "input_size": "size", "image_size": "size", "img_size": "size", "input_shape": "size", "shape": "size",
    "resolution": "size", "class_names": "labels", "classes": "labels", "label_names": "labels",
    "normalize_mean": "mean", "normalize_std": "std", "gray": "grayscale", "greyscale": "grayscale",
    "features": "feature_names", "target_column": "label_column",
    "output_kind": "output", "activation": "output",
}


def read_sidecar(path: Path) -> dict[str, Any]:
    """Image preprocessing (flat or under "spec") plus labels/arch from the sidecar."""
    data = read_json_sidecar(path)
    if not data:
        return {}
    name = path.with_suffix(".json").name
    spec = data.get("spec", data)
    if not isinstance(spec, dict):
        raise InputError(f'{name}: "spec" must be a JSON object')
    try:
        ImageSpec.from_dict(spec)  # checked here so the message names the file
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    labels = data.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(v, (str, int, float)) for v in labels):
        raise InputError(f'{name}: "labels" must be a list of class names')
    if not isinstance(data.get("arch", ""), str):
        raise InputError(f'{name}: "arch" must be an architecture name (a string)')
    return spec | {k: data[k] for k in ("labels", "arch") if k in data}


def open_model(
    ref: str | Path,
    *,
    framework: str | None = None,
    arch: str | None = None,
    overrides: SpecOverrides | None = None,
    labels: list[str] | None = None,
    trust_pickle: bool = False,
    device: str = "auto",
    batch_size: int = 16,
    engine: str | None = None,
) -> ModelAdapter:
    """A zoo name or a model file -> a ready adapter.

    ``engine``: where a model *file* is loaded and run: "worker" (the confined model
    worker, :mod:`xai_core.worker.client`; the default, or ``XAI_ENGINE``) or
    "inprocess" (this process; files that carry code then need ``trust_pickle``).
    Zoo models always run in-process."""
    import model_zoo

    overrides = overrides or SpecOverrides()
    ref_str = str(ref)
    if ref_str in model_zoo.ZOO and not Path(ref_str).exists():
        entry = model_zoo.get_entry(ref_str)
        spec = overrides.apply(entry.spec)
        with _FIRST_USE_LOCK:  # two sessions' first use: framework imports and builds one at a time
            module = entry.build()
            return _wrap(entry.framework, module, spec, labels or entry.labels(), entry.name, "module", device,
                         batch_size, getattr(entry, "output_kind", None))

    path = Path(ref_str)
    if not path.exists():
        raise InputError(
            f"{ref_str}: neither a model file nor a zoo model; zoo models: {', '.join(model_zoo.ZOO)}"
        )
    framework = framework or infer_framework(path)
    if choose_engine(engine) == "worker":
        from xai_core.worker.client import open_remote

        return open_remote(
            "xai_core.loading.models:open_model", path, path.name, framework=framework, arch=arch,
            overrides=overrides, labels=labels, trust_pickle=trust_pickle, device=device,
            batch_size=batch_size, engine="inprocess",
        )
    sidecar = read_sidecar(path)  # model.json next to model.keras, or next to a SavedModel folder
    if labels is None and "labels" in sidecar:
        labels = [str(v) for v in sidecar["labels"]]
    output_kind = sidecar.get("output")
    declared_inputs = sidecar_inputs(sidecar)
    if framework == "torch":
        from xai_core.loading.torch import load_torch_file

        spec = declared_inputs or overrides.apply(ImageSpec.from_dict(sidecar) if sidecar else ImageSpec())
        arch = arch or sidecar.get("arch")
        module, kind = load_torch_file(path, arch=arch, trust_pickle=trust_pickle,
                                       num_classes=len(labels) if labels else None)
        return _wrap("torch", module, spec, labels, path.name, kind, device, batch_size, output_kind)
    if framework == "keras":
        from xai_core.loading.keras import load_keras_file

        # trusting the file allows Keras Lambda layers (Python code), like a trusted pickle
        model, kind = load_keras_file(path, trust_code=trust_pickle)
        from xai_core.adapters.keras import model_input_shapes

        spec = declared_inputs or overrides.apply(_first_image_default(sidecar, model_input_shapes(model)))
        return _wrap("keras", model, spec, labels, path.name, kind, device, batch_size, output_kind)
    if framework == "onnx":
        from xai_core.loading.onnx import describe_inputs, load_onnx_file

        session, _ = load_onnx_file(path)
        infos = describe_inputs(session, path.name)
        images = [i for i in infos if i.layout != "NF"]
        first = images[0] if images else None
        spec = declared_inputs or overrides.apply(model_default_spec(
            sidecar, *((first.height, first.width, first.channels) if first else (None, None, None))))
        from xai_core.adapters.onnx import OnnxAdapter

        return OnnxAdapter(session, infos, spec, labels, name=path.name, batch_size=batch_size,
                           output_kind=output_kind)
    raise InputError(f"unknown framework {framework!r}; use torch, keras or onnx")


def sidecar_inputs(sidecar: dict[str, Any]) -> tuple[InputSpec, ...] | None:
    """The sidecar's ``inputs`` list (one entry per model input: {"kind": "image", ...}
    or {"kind": "vector", "size": F, "feature_names": [...]}) as specs, else None."""
    entries = sidecar.get("inputs")
    if entries is None:
        return None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise InputError("the sidecar's 'inputs' must be a non-empty list of objects, one per model input")
    return tuple(spec_from_dict(e) for e in entries)


def _first_image_default(sidecar: dict[str, Any], shapes: list[tuple]) -> ImageSpec:
    """Preprocessing defaults from the first 4-D (image) input of a Keras model."""
    for shape in shapes:
        if len(shape) == 4:
            _, h, w, c = shape
            return model_default_spec(sidecar, h, w, c)
    return model_default_spec(sidecar, None, None, None)


def choose_engine(engine: str | None) -> str:
    """'worker' or 'inprocess': the argument, else ``XAI_ENGINE``, else 'worker'."""
    choice = (engine or os.environ.get("XAI_ENGINE") or "worker").strip().lower()
    if choice not in ("worker", "inprocess"):
        raise InputError(f"unknown engine {choice!r}; use worker or inprocess")
    return choice


def declared_spec(path: str | Path, framework: str | None = None, trust_code: bool = False,
                  engine: str | None = None) -> ImageSpec:
    """The preprocessing a model file declares, before any user override: the
    sidecar for PyTorch (else ImageNet defaults); for Keras and ONNX the model's
    own input shape, then the sidecar. Used to prefill forms."""
    path = Path(path)
    framework = framework or infer_framework(path)
    if framework in ("keras", "onnx") and choose_engine(engine) == "worker":
        # the model must be loaded to read its input shape: in the worker, like any file
        return open_model(path, framework=framework, trust_pickle=trust_code, engine="worker").spec
    sidecar = read_sidecar(path)
    if framework == "keras":
        from xai_core.adapters.keras import model_input_shapes
        from xai_core.loading.keras import load_keras_file

        model, _ = load_keras_file(path, trust_code=trust_code)
        return _first_image_default(sidecar, model_input_shapes(model))
    if framework == "onnx":
        from xai_core.loading.onnx import load_onnx_file

        _, info = load_onnx_file(path)
        return model_default_spec(sidecar, info.height, info.width, info.channels)
    return ImageSpec.from_dict(sidecar) if sidecar else ImageSpec()


def model_default_spec(sidecar: dict[str, Any], height: int | None, width: int | None,
                       channels: int | None) -> ImageSpec:
    """Preprocessing defaults for a model that declares its input shape (Keras, ONNX):
    its fixed height/width and channel count, then whatever the sidecar sets."""
    grayscale = channels == 1
    base: dict[str, Any] = {
        "size": (height, width) if height and width else (224, 224),
        "grayscale": grayscale,
        "mean": (0.5,) if grayscale else IMAGENET_MEAN,
        "std": (0.5,) if grayscale else IMAGENET_STD,
    }
    base.update({k: sidecar[k] for k in ("size", "mean", "std", "grayscale") if k in sidecar})
    return ImageSpec.from_dict(base)


def _wrap(framework, module, spec, labels, name, kind, device, batch_size, output_kind=None) -> ModelAdapter:
    if framework == "torch":
        from xai_core.adapters.torch import TorchAdapter

        return TorchAdapter(module, spec, labels, name=name, kind=kind, device=device, batch_size=batch_size,
                            output_kind=output_kind)
    if framework == "keras":
        from xai_core.adapters.keras import KerasAdapter

        kind = "model" if kind == "module" else kind  # zoo entries build in-memory models
        return KerasAdapter(module, spec, labels, name=name, kind=kind, device=device, batch_size=batch_size,
                            output_kind=output_kind)
    raise ModelLoadError(f"no adapter for framework {framework!r}")
