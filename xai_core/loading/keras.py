"""Safe loaders for Keras / TensorFlow model files that a user gives us (untrusted input).

Formats, detected from the file's content rather than its name:

* ``.keras`` archives (Keras 3 zip): loaded with ``safe_mode=True``, so a
  ``Lambda`` layer holding Python bytecode is refused unless the user says they
  trust the file.
* Legacy HDF5 ``.h5`` / ``.hdf5`` files: the same loader and the same safe mode.
* TensorFlow SavedModel directories (holding ``saved_model.pb``): a graph whose
  ops run with the process's rights (``tf.io.write_file``...); its
  ``serving_default`` signature is called and differentiated, but its layers are
  not visible (no Grad-CAM).

SavedModels and Lambda layers carry code: they load inside the confined model
worker, or, where no confinement is available, only when the user trusts the file.

TensorFlow is imported only when one of these functions runs.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from xai_core.adapters.runtime import SavedModelFunction, check_model_io, import_tensorflow
from xai_core.loading.archives import unpack_zip
from xai_core.loading.spec import (
    OpenOptions,
    first_image_default,
    read_sidecar,
    sidecar_inputs,
    sidecar_labels,
)
from xai_core.loading.torch import check_model_file, needs_trust
from xai_core.types import ModelLoadError
from xai_core.worker.sandbox import code_allowed

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def unpack_savedmodel_zip(zip_path: str | Path, dest: str | Path) -> Path:
    """A zipped SavedModel folder (as uploaded in the dashboard), unpacked safely once
    (:func:`xai_core.loading.archives.unpack_zip`) -> the folder holding saved_model.pb."""
    root = unpack_zip(zip_path, dest, "the SavedModel folder")
    found = sorted(p.parent for p in root.rglob("saved_model.pb"))
    if not found:
        raise ModelLoadError(f"{Path(zip_path).name}: no saved_model.pb inside; zip the whole SavedModel folder")
    return min(found, key=lambda p: len(p.parts))


def sniff_keras_format(path: Path) -> str:
    """'keras' (zip archive), 'h5', 'savedmodel' (directory) or 'unknown'."""
    if path.is_dir():
        return "savedmodel" if (path / "saved_model.pb").is_file() else "unknown"
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == HDF5_SIGNATURE:
        return "h5"
    if head[:2] == b"PK":
        return "keras"
    return "unknown"


def open_keras(path: Path, options: OpenOptions):
    """A Keras file, SavedModel folder or zipped SavedModel folder (and its
    ``model.json`` sidecar) -> a KerasAdapter. Trusting the file allows Keras Lambda
    layers (Python code), like a trusted pickle."""
    from xai_core.adapters.keras import KerasAdapter, model_input_shapes

    if options.rows:
        model, kind = load_keras_file(path, trust_code=options.trust_code)
        return KerasAdapter(model, options.inputs, options.labels, name=options.name or path.name, kind=kind,
                            device=options.device, batch_size=options.batch_size, output_kind=options.output_kind)
    sidecar, name = read_sidecar(path), path.name
    if path.suffix.lower() == ".zip":  # a zipped SavedModel folder, unpacked once under the temporary folder
        import hashlib
        import tempfile

        stat = path.stat()
        key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        path = unpack_savedmodel_zip(path, Path(tempfile.gettempdir()) / "xai-model-folders" / key)
    model, kind = load_keras_file(path, trust_code=options.trust_code)
    spec = sidecar_inputs(sidecar) or options.overrides.apply(first_image_default(sidecar, model_input_shapes(model)))
    return KerasAdapter(model, spec, sidecar_labels(sidecar, options.labels), name=name, kind=kind,
                        device=options.device, batch_size=options.batch_size, output_kind=sidecar.get("output"))


def load_keras_file(path: str | Path, trust_code: bool = False) -> tuple[Any, str]:
    """Load a Keras/TensorFlow model -> (model, kind), kind 'model' or 'savedmodel'.

    ``trust_code`` turns Keras' safe mode off (Lambda layers run Python from the
    file); only for files whose author the user trusts.
    """
    path = Path(path)
    label = check_model_file(path, directories=True)
    fmt = sniff_keras_format(path)
    if fmt == "unknown":
        if path.is_dir():
            raise ModelLoadError(
                f"{label}: this directory is not a TensorFlow SavedModel (no saved_model.pb in it)"
            )
        raise ModelLoadError(
            f"{label}: not a Keras model file (expected a .keras archive, a legacy .h5 file "
            "or a SavedModel directory). If it is a PyTorch or ONNX model, choose that framework."
        )
    if fmt == "savedmodel":
        if not code_allowed(trust_code):
            raise ModelLoadError(needs_trust(label, "a TensorFlow SavedModel (its graph ops run as code)"))
        return _load_saved_model(path), "savedmodel"
    if fmt == "keras":
        _check_zip(path)
    model = _load_keras_model(path, fmt, trust_code)
    check_model_io(model, label)
    return model, "model"


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        raise ModelLoadError(
            f"{path.name}: corrupt or truncated .keras archive (the zip directory is "
            "unreadable); save or download the model again"
        ) from None
    if "config.json" not in names:
        raise ModelLoadError(
            f"{path.name}: a zip file but not a Keras model archive (no config.json in it)"
        )


def _load_keras_model(path: Path, fmt: str, trust_code: bool):
    import_tensorflow()
    import keras

    label = path.name
    source = path
    if fmt == "h5" and path.suffix.lower() not in (".h5", ".hdf5"):
        source = _h5_alias(path)  # Keras picks the legacy loader by file name
    try:
        return keras.saving.load_model(str(source), compile=False, safe_mode=not code_allowed(trust_code))
    except Exception as exc:  # noqa: BLE001 - every failure here is the file's
        text = _short(exc, 400)
        if "Lambda" in text and "safe_mode" in text:
            raise ModelLoadError(
                f"{label} contains a Lambda layer holding Python code, which Keras' safe "
                "mode refuses to load (it could run anything). Re-save the model without "
                "Lambda layers (use built-in layers or a registered custom layer class), or, "
                "only if you trust its author, pass --trust-code (in the dashboard: tick "
                "'I trust this file')."
            ) from None
        if fmt == "h5" and ("truncated" in text.lower() or "unable to" in text.lower()):
            raise ModelLoadError(
                f"{label}: corrupt or truncated HDF5 file ({text}); save or download it again"
            ) from None
        if "Could not locate" in text or "Unknown layer" in text:
            raise ModelLoadError(
                f"{label} uses a custom class that is not available here ({text}). Save the "
                "model with built-in Keras layers only."
            ) from None
        if fmt == "h5" and "No model config found" in text:
            raise ModelLoadError(
                f"{label} holds weights only (no model config); save the whole model "
                "(model.save('model.keras'))"
            ) from None
        raise ModelLoadError(f"{label}: cannot load the Keras model ({text})") from None
    finally:
        if source != path:
            source.unlink(missing_ok=True)


def _h5_alias(path: Path) -> Path:
    import tempfile

    fd, name = tempfile.mkstemp(suffix=".h5")
    os.close(fd)
    alias = Path(name)
    alias.unlink()
    alias.symlink_to(path.resolve())
    return alias


def _load_saved_model(path: Path) -> SavedModelFunction:
    tf = import_tensorflow()
    label = path.name
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{label}: cannot load the SavedModel ({_short(exc)})") from None
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if not signatures:
        raise ModelLoadError(f"{label}: the SavedModel has no serving signature to call")
    key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    function = signatures[key]
    _, kwargs = function.structured_input_signature
    if len(kwargs) != 1:
        raise ModelLoadError(
            f"{label} has {len(kwargs)} inputs ({', '.join(kwargs)}); only single-input "
            "image classifiers are supported"
        )
    input_name, spec = next(iter(kwargs.items()))
    shape = tuple(spec.shape.as_list()) if spec.shape.rank is not None else ()
    if len(shape) not in (2, 4):
        raise ModelLoadError(f"{label} takes input of shape {shape}; inputs must be images (N x H x W x C) or rows (N x F)")
    outputs = function.structured_outputs
    if not isinstance(outputs, dict) or len(outputs) != 1:
        count = len(outputs) if isinstance(outputs, dict) else "?"
        raise ModelLoadError(
            f"{label}: the signature {key!r} has {count} outputs; only classifiers with one "
            "N x classes output are supported"
        )
    return SavedModelFunction(function, input_name, next(iter(outputs)), shape, loaded)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "") or type(exc).__name__


__all__ = ["load_keras_file", "sniff_keras_format", "check_model_io", "SavedModelFunction"]
