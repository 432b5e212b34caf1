"""The model frameworks, each registered once: its file kinds, its loader, the
adapter that serves it, whether its files carry code, and the hints that error
messages and forms show.

The command line's ``--framework`` choices, the dashboard's upload types and
framework selector, :func:`infer_framework` and the loaders' "unknown framework"
messages all read :data:`FRAMEWORKS`. Adding a framework is one loader module
with an ``open_*(path, options) -> ModelAdapter`` function, one adapter, and one
:class:`Framework` entry here. Importing this module loads no framework: loader
modules import their packages inside their functions.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xai_core.loading import huggingface, keras, onnx, timm, torch
from xai_core.loading.archives import read_zip_member, zip_names
from xai_core.loading.spec import OpenOptions
from xai_core.types import ImageSpec, InputError


@dataclass(frozen=True)
class Framework:
    """One framework. ``suffixes`` are file suffixes (with the dot) that name it;
    ``claims`` recognises a folder or a zip of one by its content; ``open`` loads a
    file into a ready adapter; ``declared(path, arch)`` returns the preprocessing a
    file declares (None: the model must be loaded to know, which is done in the worker)."""

    key: str  # what --framework and open_model(framework=...) take
    label: str
    package: str  # the import name of the framework's own package
    adapter: str  # the xai_core adapter module that serves it
    open: Callable[[Path, OpenOptions], object]
    suffixes: tuple[str, ...] = ()
    upload_suffixes: tuple[str, ...] = ()  # what the dashboard's uploader accepts, with dots
    claims: Callable[[Path], bool] | None = None
    declared: Callable[[Path, str | None], ImageSpec] | None = None
    carries_code: str = ""  # the formats that carry code (confined worker, or explicit trust); "" for none
    formats: str = ""  # what a file may hold, for help texts
    hint: str = ""  # how to give a model of this kind, for error messages
    rows: bool = False  # serves models of table rows too (open_model(..., rows=True))
    extra_packages: tuple[str, ...] = ()

    @property
    def upload_types(self) -> list[str]:
        """Upload types without dots (what ``st.file_uploader(type=...)`` takes)."""
        return [s.lstrip(".") for s in self.upload_suffixes or self.suffixes]

    @property
    def available(self) -> bool:
        """Its adapter module and packages are installed (checked without importing them)."""
        return all(_module_exists(m) for m in (self.adapter, self.package, *self.extra_packages))


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _config_json(path: Path) -> dict | None:
    """The top-level config.json of a folder or of a zip of one (at most 1 MB read)."""
    if path.is_dir():
        candidate = path / "config.json"
        if not candidate.is_file() or candidate.stat().st_size > 2**20:
            return None
        raw: bytes | None = candidate.read_bytes()
    else:
        names = zip_names(path)
        if not names:
            return None
        configs = sorted((n for n in names if n.rsplit("/", 1)[-1] == "config.json"), key=lambda n: n.count("/"))
        raw = read_zip_member(path, configs[0]) if configs else None
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _claims_huggingface(path: Path) -> bool:
    data = _config_json(path)
    return data is not None and "model_type" in data


def _claims_timm(path: Path) -> bool:
    data = _config_json(path)
    return data is not None and "architecture" in data and "model_type" not in data


def _claims_savedmodel(path: Path) -> bool:
    if path.is_dir():
        return (path / "saved_model.pb").is_file()
    return any(n.rsplit("/", 1)[-1] == "saved_model.pb" for n in zip_names(path) or [])


FRAMEWORKS: tuple[Framework, ...] = (
    Framework(
        "torch", "PyTorch", "torch", "xai_core.adapters.torch", torch.open_torch,
        suffixes=(".pt", ".pth", ".pt2", ".bin", ".ckpt", ".torchscript", ".safetensors"),
        upload_suffixes=(".pt", ".pth", ".pt2", ".bin", ".torchscript", ".safetensors"),
        declared=torch.declared_torch_spec,
        carries_code="TorchScript, torch.export .pt2 programs and fully pickled modules",
        formats="TorchScript, a torch.export .pt2 program, a state_dict or .safetensors weights, or a pickled module",
        hint="a state_dict or .safetensors file needs its architecture: --arch NAME (`python -m xai_core models`)",
        rows=True,
    ),
    Framework(
        "keras", "Keras", "keras", "xai_core.adapters.keras", keras.open_keras,
        suffixes=(".keras", ".h5", ".hdf5"), upload_suffixes=(".keras", ".h5", ".zip"),
        claims=_claims_savedmodel,
        carries_code="SavedModel graphs and Lambda layers",
        formats="a .keras archive (loaded with safe_mode), a legacy .h5 file, or a SavedModel folder as .zip",
        hint="save the whole model with model.save('model.keras'), or zip the SavedModel folder",
        rows=True,
    ),
    Framework(
        "onnx", "ONNX", "onnxruntime", "xai_core.adapters.onnx", onnx.open_onnx,
        suffixes=(".onnx",),
        formats="an ONNX graph (predictions only: LIME, SHAP partition, occlusion)",
        hint="export with torch.onnx.export or tf2onnx",
        rows=True,
    ),
    Framework(
        "huggingface", "Hugging Face", "transformers", "xai_core.adapters.torch", huggingface.open_huggingface,
        upload_suffixes=(".zip",), claims=_claims_huggingface,
        formats="a Hugging Face image classifier folder as .zip: config.json + model.safetensors "
                "(+ preprocessor_config.json), built from the files only, no code from them",
        hint="give the folder (or a zip of it) holding config.json and model.safetensors, or hf-hub:ORG/NAME",
        extra_packages=("safetensors",),
    ),
    Framework(
        "timm", "timm", "timm", "xai_core.adapters.torch", timm.open_timm,
        upload_suffixes=(".safetensors", ".pth", ".pt", ".bin", ".zip"), claims=_claims_timm,
        formats="timm weights (.safetensors, or a state_dict) plus the timm model name, or a timm folder "
                "(config.json + model.safetensors) as .zip",
        hint="name the timm model: --arch timm:NAME (e.g. timm:convnext_atto), or give a timm folder",
        extra_packages=("safetensors",),
    ),
)


def framework_keys(rows: bool = False) -> tuple[str, ...]:
    """Every registered framework's key (only those serving table rows with ``rows``)."""
    return tuple(f.key for f in FRAMEWORKS if f.rows or not rows)


def get_framework(key: str, rows: bool = False) -> Framework:
    """The framework named ``key``; one clear error listing the known ones otherwise."""
    for framework in FRAMEWORKS:
        if framework.key == key and (framework.rows or not rows):
            return framework
    raise InputError(f"unknown framework {key!r}; use {', '.join(framework_keys(rows))}")


def available_frameworks(rows: bool = False) -> list[Framework]:
    """Frameworks whose adapter and packages are installed (for forms)."""
    return [f for f in FRAMEWORKS if f.available and (f.rows or not rows)]


def upload_types(rows: bool = False) -> list[str]:
    """Every upload type the registered frameworks accept, without dots (for models of
    table rows: the single-file kinds only)."""
    types: list[str] = []
    for framework in available_frameworks(rows):
        kinds = [s.lstrip(".") for s in framework.suffixes] if rows else framework.upload_types
        types += [t for t in kinds if t not in types]
    return types


def infer_framework(path: Path, arch: str | None = None) -> str:
    """The framework of a model file or folder: ``--arch timm:NAME`` names timm; a
    folder or zip by its content (a Hugging Face config.json with ``model_type``, a
    timm config.json with ``architecture``, a SavedModel's saved_model.pb); a file by
    its suffix; PyTorch otherwise (its loader then sniffs the content)."""
    path = Path(path)
    if arch and timm.is_timm_arch(arch):
        return "timm"
    if path.is_dir() or path.suffix.lower() == ".zip":
        for framework in FRAMEWORKS:
            if framework.claims is not None and framework.claims(path):
                return framework.key
        if path.is_dir():
            raise InputError(
                f"{path.name}: a folder, but not a model folder we know: "
                + "; ".join(f"{f.label}: {f.hint}" for f in FRAMEWORKS if f.claims is not None)
            )
    suffix = path.suffix.lower()
    for framework in FRAMEWORKS:
        if suffix in framework.suffixes:
            return framework.key
    return "torch"
