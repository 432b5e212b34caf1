"""Open a tabular model by zoo name, file path or uploaded bytes: the same loaders
and the same framework adapters as images, with a feature-vector input spec.

Formats (untrusted files load without running their code):

* PyTorch: TorchScript, ``torch.export`` programs (``.pt2``), a ``state_dict`` of a
  zoo tabular architecture (``tabular_mlp``: sizes inferred from the weights), and
  fully pickled modules only with ``trust_pickle``.
* Keras: ``.keras`` with ``safe_mode=True`` (legacy ``.h5`` too).
* ONNX (``.onnx``), e.g. scikit-learn models converted with skl2onnx.

A JSON sidecar next to the file (``model.pt`` -> ``model.json``) may give
``labels`` (output names), ``arch``/``architecture``, ``output`` (probability,
logit, sigmoid or score), ``feature_names`` (input columns in order: tables are then matched
to the model by column name) and ``label_column``.
"""

from __future__ import annotations

import pickle
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from xai_core.adapters.base import ModelAdapter
from xai_core.inputs.tables import feature_names_from_sidecar
from xai_core.loading.torch import check_model_file
from xai_core.types import InputError, ModelLoadError, VectorSpec


def infer_tabular_framework(path: Path) -> str:
    from xai_core.loading.registry import infer_framework

    return infer_framework(path)


def read_tabular_sidecar(path: Path) -> dict[str, Any]:
    from xai_core.loading.models import read_json_sidecar

    return read_json_sidecar(path)


def open_tabular_model(
    ref: str | Path,
    *,
    framework: str | None = None,
    arch: str | None = None,
    labels: list[str] | None = None,
    output_kind: str | None = None,
    trust_pickle: bool = False,
    display_name: str | None = None,
    engine: str | None = None,
) -> ModelAdapter:
    """A tabular zoo name or a model file -> a ready adapter over one feature vector.
    A file runs in the confined model worker unless ``engine="inprocess"`` (see
    :func:`xai_core.loading.models.open_model`); zoo models run in-process."""
    from model_zoo.tabular import TABULAR_ZOO, get_tabular_entry

    ref_str = str(ref)
    if ref_str in TABULAR_ZOO and not Path(ref_str).exists():
        entry = get_tabular_entry(ref_str)
        if not entry.path.exists():
            raise ModelLoadError(f"zoo model {entry.name}: {entry.path.name} is missing; run {entry.source}")
        return open_tabular_model(entry.path, framework=entry.framework, labels=labels,
                                  output_kind=output_kind, display_name=entry.name, engine="inprocess")
    path = Path(ref_str)
    if not path.exists():
        raise InputError(
            f"{ref_str}: neither a model file nor a tabular zoo model; zoo models: {', '.join(TABULAR_ZOO)}"
        )
    name = display_name or path.name
    from xai_core.loading.models import choose_engine

    if choose_engine(engine) == "worker":
        from xai_core.worker.client import open_remote

        return open_remote("xai_core.loading.tables:open_tabular_model", path, name, framework=framework,
                           arch=arch, labels=labels, output_kind=output_kind, trust_pickle=trust_pickle,
                           display_name=name, engine="inprocess")
    check_model_file(path, directories=True)
    sidecar = read_tabular_sidecar(path) if path.is_file() else {}
    labels = labels if labels is not None else sidecar.get("labels")
    output_kind = output_kind or sidecar.get("output")
    arch = arch or sidecar.get("arch") or sidecar.get("architecture")
    framework = framework or infer_tabular_framework(path)
    from xai_core.loading.models import sidecar_inputs

    spec = sidecar_inputs(sidecar) or VectorSpec()  # a model with one input per column declares them
    if framework == "torch":
        from xai_core.adapters.torch import TorchAdapter

        module, kind = _load_torch(path, name, arch, trust_pickle)
        model: ModelAdapter = TorchAdapter(module, spec, labels, name=name, kind=kind, device="cpu",
                                           batch_size=4096, output_kind=output_kind)
    elif framework == "keras":
        from xai_core.adapters.keras import KerasAdapter
        from xai_core.loading.keras import load_keras_file

        loaded, kind = load_keras_file(path, trust_code=trust_pickle)
        model = KerasAdapter(loaded, spec, labels, name=name, kind=kind, device="cpu",
                             batch_size=4096, output_kind=output_kind)
    elif framework == "onnx":
        from xai_core.adapters.onnx import OnnxAdapter, onnx_class_labels
        from xai_core.loading.onnx import describe_inputs, load_onnx_file

        session, _ = load_onnx_file(path)
        model = OnnxAdapter(session, describe_inputs(session, name), spec, labels, name=name, batch_size=4096,
                            output_kind=output_kind, class_labels=onnx_class_labels(path.read_bytes()))
    else:
        from xai_core.loading.registry import get_framework

        get_framework(framework, rows=True)  # the one message naming the frameworks that serve rows
        raise InputError(f"unknown framework {framework!r}")
    names = feature_names_from_sidecar(sidecar, model.n_features, name)
    if names is not None and not model.multi_input:
        model.inputs = (replace(model.inputs[0], feature_names=tuple(names)),)
    # the table's columns in the model's input order, for inputs without names of their own
    model.table_columns = feature_names_from_sidecar(sidecar, model.n_features, name, key="columns")
    model.label_column = sidecar.get("label_column") if isinstance(sidecar.get("label_column"), str) else None
    return model


def open_uploaded_model(
    filename: str,
    data: bytes,
    *,
    framework: str | None = None,
    arch: str | None = None,
    labels: list[str] | None = None,
    trust_pickle: bool = False,
) -> ModelAdapter:
    """Bytes of an uploaded model file (the dashboard) -> a ready model. The file is
    written to a private temporary folder because Keras and torch read from paths."""
    if not data:
        raise ModelLoadError(f"{filename}: the file is empty")
    safe_name = Path(filename).name or "model"
    from xai_core.loading.models import choose_engine

    if choose_engine(None) == "worker":  # the worker reads the file from the upload store
        from xai_core.inputs.uploads import store_upload

        return open_tabular_model(store_upload(data, safe_name), framework=framework, arch=arch,
                                  labels=labels, trust_pickle=trust_pickle, display_name=safe_name)
    with tempfile.TemporaryDirectory(prefix="xai_tabular_") as tmp:
        path = Path(tmp) / safe_name
        path.write_bytes(data)
        return open_tabular_model(path, framework=framework, arch=arch, labels=labels,
                                  trust_pickle=trust_pickle, display_name=safe_name)


def _load_torch(path: Path, name: str, arch: str | None, trust_pickle: bool):
    from xai_core.loading.torch import (
        _extract_state_dict,
        load_torch_file,
        read_safetensors,
        sniff_torch_format,
    )

    fmt = sniff_torch_format(path)
    if fmt == "safetensors":
        state = read_safetensors(path, name)
    elif fmt != "torch_save":
        return load_torch_file(path, trust_pickle=trust_pickle)
    else:
        import torch

        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            return load_torch_file(path, trust_pickle=trust_pickle)  # a pickled module: refused unless trusted
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{name}: corrupt or truncated PyTorch file ({exc})") from None
        state = _extract_state_dict(obj, name)
    from model_zoo.architectures import TABULAR_ARCHITECTURES, build_tabular_architecture

    if arch is None:
        if "norm_mean" in state and any(k.startswith("net.") for k in state):
            arch = "tabular_mlp"
        else:
            raise ModelLoadError(
                f"{name} is a state_dict (weights only): name its architecture with --arch "
                f"({', '.join(TABULAR_ARCHITECTURES)}), or save the model as TorchScript or a .pt2 program"
            )
    module = build_tabular_architecture(arch, state)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        text = " ".join(str(exc).split())[:400]
        raise ModelLoadError(f"{name}: the weights do not fit architecture {arch!r} ({text})") from None
    return module, "module"
