"""Models over table rows, by their old names: a table model is opened by
:func:`xai_core.loading.models.open_model` with ``rows=True`` (a tabular zoo name
needs no flag), through the same framework registry and loaders as images; the
tabular specifics (feature-vector inputs, feature names, the label column) are
what the file's JSON sidecar describes (:func:`xai_core.loading.spec.rows_options`).

Formats (untrusted files load without running their code): PyTorch (TorchScript,
``.pt2`` programs, a ``state_dict`` of a zoo tabular architecture, pickled modules
only when trusted), Keras (``.keras`` with ``safe_mode=True``, legacy ``.h5``),
ONNX (e.g. scikit-learn models converted with skl2onnx).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from xai_core.adapters.base import ModelAdapter
from xai_core.loading.models import choose_engine, open_model
from xai_core.types import ModelLoadError


def open_tabular_model(ref: str | Path, *, framework: str | None = None, arch: str | None = None,
                       labels: list[str] | None = None, output_kind: str | None = None, trust_pickle: bool = False,
                       display_name: str | None = None, engine: str | None = None) -> ModelAdapter:
    """A tabular zoo name or a model file -> a ready adapter over one feature vector:
    ``open_model(ref, rows=True, ...)``."""
    return open_model(ref, framework=framework, arch=arch, labels=labels, output_kind=output_kind,
                      trust_pickle=trust_pickle, display_name=display_name, engine=engine, rows=True)


def open_uploaded_model(
    filename: str,
    data: bytes,
    *,
    framework: str | None = None,
    arch: str | None = None,
    labels: list[str] | None = None,
    trust_pickle: bool = False,
) -> ModelAdapter:
    """Bytes of an uploaded model file of table rows (the dashboard) -> a ready model.
    The file goes to the upload store (read by the worker there) or, in-process, to
    a private temporary folder because Keras and torch read from paths."""
    if not data:
        raise ModelLoadError(f"{filename}: the file is empty")
    safe_name = Path(filename).name or "model"
    if choose_engine(None) == "worker":
        from xai_core.inputs.uploads import store_upload

        return open_tabular_model(store_upload(data, safe_name), framework=framework, arch=arch,
                                  labels=labels, trust_pickle=trust_pickle, display_name=safe_name)
    with tempfile.TemporaryDirectory(prefix="xai_tabular_") as tmp:
        path = Path(tmp) / safe_name
        path.write_bytes(data)
        return open_tabular_model(path, framework=framework, arch=arch, labels=labels,
                                  trust_pickle=trust_pickle, display_name=safe_name)
