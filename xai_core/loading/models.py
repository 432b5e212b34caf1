"""Open a model by zoo name, hub name or file path and wrap it in its framework's adapter.

Which framework opens a file, and how, is :mod:`xai_core.loading.registry`'s:
each framework's loader has one ``open_*(path, options)`` function.
Preprocessing precedence: explicit arguments, then the zoo entry, then what the
file declares (a sidecar JSON next to the model file, ``model.pt`` ->
``model.json``; a Hugging Face processor config; timm's data config; the model's
own input shape), then ImageNet defaults.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from xai_core.adapters.base import ModelAdapter
from xai_core.loading import hub
from xai_core.loading.registry import get_framework, infer_framework
from xai_core.loading.spec import (  # noqa: F401 - re-exported: callers import these from here
    MISTAKEN_KEYS,
    OpenOptions,
    SpecOverrides,
    describe_rows,
    model_default_spec,
    read_json_sidecar,
    read_sidecar,
    rows_options,
    sidecar_inputs,
)
from xai_core.loading.torch import check_model_file
from xai_core.types import ImageSpec, InputError, ModelLoadError

_FIRST_USE_LOCK = threading.RLock()


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
    rows: bool = False,
    output_kind: str | None = None,
    display_name: str | None = None,
) -> ModelAdapter:
    """A zoo name or a model file -> a ready adapter.

    ``engine``: where a model *file* is loaded and run: "worker" (the confined model
    worker, :mod:`xai_core.worker.client`; the default, or ``XAI_ENGINE``) or
    "inprocess" (this process; files that carry code then need ``trust_pickle``).
    Zoo models always run in-process.

    ``rows``: the model explains rows of a table (a tabular zoo name opens one
    without it): its inputs are feature vectors, described by the file's sidecar
    (:func:`~xai_core.loading.spec.rows_options`), and image preprocessing does not
    apply. ``output_kind`` overrides the sidecar's ``output``; ``display_name`` the
    name shown for the model."""
    import model_zoo
    from model_zoo.tabular import TABULAR_ZOO, get_tabular_entry

    overrides = overrides or SpecOverrides()
    ref_str = str(ref)
    if ref_str in TABULAR_ZOO and not Path(ref_str).exists():
        entry = get_tabular_entry(ref_str)
        if not entry.path.exists():
            raise ModelLoadError(f"zoo model {entry.name}: {entry.path.name} is missing; run {entry.source}")
        return open_model(entry.path, framework=entry.framework, labels=labels, output_kind=output_kind,
                          display_name=entry.name, engine="inprocess", rows=True)
    if rows:
        return _open_rows(Path(ref_str), framework, arch, labels, output_kind, trust_pickle, display_name, engine)
    if ref_str in model_zoo.ZOO and not Path(ref_str).exists():
        entry = model_zoo.get_entry(ref_str)
        if entry.folder is not None:  # a model saved the way its world saves it (a Hugging Face or timm folder)
            options = OpenOptions(overrides=overrides, labels=labels, device=device, batch_size=batch_size)
            with _FIRST_USE_LOCK:
                return get_framework(entry.framework).open(entry.folder(), options)
        spec = overrides.apply(entry.spec)
        with _FIRST_USE_LOCK:  # two sessions' first use: framework imports and builds one at a time
            module = entry.build()
            return _wrap(entry.framework, module, spec, labels or entry.labels(), entry.name, "module", device,
                         batch_size, getattr(entry, "output_kind", None))

    if hub.is_hub_name(ref_str):
        path = hub.snapshot(ref_str)  # here, not in the worker: the worker has no network
    else:
        path = Path(ref_str)
    if not path.exists():
        raise InputError(
            f"{ref_str}: neither a model file nor a zoo model; zoo models: {', '.join(model_zoo.ZOO)}"
        )
    if framework is None:
        framework = infer_framework(path, arch or (read_sidecar(path).get("arch") if path.is_file() else None))
    get_framework(framework)  # an unknown name is refused here, before a worker starts
    if choose_engine(engine) == "worker":
        from xai_core.worker.client import open_remote

        return open_remote(
            "xai_core.loading.models:open_model", path, path.name, framework=framework, arch=arch,
            overrides=overrides, labels=labels, trust_pickle=trust_pickle, device=device,
            batch_size=batch_size, engine="inprocess",
        )
    options = OpenOptions(arch=arch, overrides=overrides, labels=labels, trust_code=trust_pickle, device=device,
                          batch_size=batch_size)
    return get_framework(framework).open(path, options)


def _open_rows(path: Path, framework: str | None, arch: str | None, labels: list[str] | None,
               output_kind: str | None, trust_pickle: bool, display_name: str | None,
               engine: str | None) -> ModelAdapter:
    """A model file over table rows -> an adapter over feature vectors, in the worker
    unless ``engine`` says otherwise; the framework's own opener loads it."""
    from model_zoo.tabular import TABULAR_ZOO

    if not path.exists():
        raise InputError(
            f"{path}: neither a model file nor a tabular zoo model; zoo models: {', '.join(TABULAR_ZOO)}"
        )
    name = display_name or path.name
    if choose_engine(engine) == "worker":
        from xai_core.worker.client import open_remote

        return open_remote("xai_core.loading.models:open_model", path, name, framework=framework, arch=arch,
                           labels=labels, output_kind=output_kind, trust_pickle=trust_pickle,
                           display_name=name, engine="inprocess", rows=True)
    check_model_file(path, directories=True)
    sidecar = read_json_sidecar(path) if path.is_file() else {}
    options = rows_options(sidecar, arch, labels, output_kind, trust_pickle, name)
    opener = get_framework(framework or infer_framework(path), rows=True)  # names the frameworks serving rows
    return describe_rows(opener.open(path, options), sidecar, name)


def choose_engine(engine: str | None) -> str:
    """'worker' or 'inprocess': the argument, else ``XAI_ENGINE``, else 'worker'."""
    choice = (engine or os.environ.get("XAI_ENGINE") or "worker").strip().lower()
    if choice not in ("worker", "inprocess"):
        raise InputError(f"unknown engine {choice!r}; use worker or inprocess")
    return choice


def declared_spec(path: str | Path, framework: str | None = None, trust_code: bool = False,
                  engine: str | None = None, arch: str | None = None) -> ImageSpec:
    """The preprocessing a model file declares, before any user override: the
    sidecar for PyTorch (else ImageNet defaults); for the others the model's own
    (input shape and sidecar, processor config, timm data config), read by loading
    the model in the worker like any file. Used to prefill forms."""
    path = Path(path)
    framework = framework or infer_framework(path, arch)
    entry = get_framework(framework)
    if entry.declared is not None:
        return entry.declared(path, arch)
    return open_model(path, framework=framework, arch=arch, trust_pickle=trust_code, engine=engine).spec


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
