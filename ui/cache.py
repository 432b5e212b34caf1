"""Cached wrappers around xai_core for the dashboard.

* Models live in ``st.cache_resource``: one adapter per model source (zoo name or
  uploaded file's content hash) and loading options, shared by all sessions. The
  torch adapter serialises calls with its own lock, so concurrent sessions may
  share it.
* Explanations live in ``st.cache_data``, keyed by the model key, the image's
  content hash, the method, its parameters, target, layer and seed, so a rerun
  or a widget change that does not change any of these reuses the result.
* Decoded uploads live in ``st.cache_data`` keyed by their bytes.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from xai_core.inputs.images import load_image
from xai_core.inputs.uploads import store_upload
from xai_core.sets.model import ModelRef
from xai_core.types import Explanation, ImageSpec


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_upload(upload, sidecar=None, root: Path | None = None) -> Path:
    """:func:`store_upload` for a Streamlit upload (and its optional description
    upload), once per uploaded file: the page's reruns re-use the stored path instead
    of hashing the bytes and walking the store again on every widget change. A path
    pruned from the store meanwhile is stored again."""
    key = (upload.file_id, getattr(sidecar, "file_id", None), str(root))
    memo = st.session_state.setdefault("_stored_uploads", {})
    path = memo.get(key)
    if path is None or not path.is_file():
        path = store_upload(upload.getvalue(), upload.name, sidecar.getvalue() if sidecar is not None else None,
                            root=root)
        memo[key] = path
    return path


def array_hash(image: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes())
    digest.update(repr((image.shape, str(image.dtype))).encode())
    return digest.hexdigest()


@st.cache_data(show_spinner="Reading the model's input shape…", max_entries=16)
def declared_preprocessing(path: str, framework: str, trust_code: bool, arch: str | None = None) -> ImageSpec:
    """The preprocessing the uploaded model declares (input shape, channels, a
    processor or timm data config), to prefill the form; raises the loader's
    XaiError for a bad file."""
    from xai_core.loading.models import declared_spec

    return declared_spec(path, framework, trust_code=trust_code, arch=arch)


def unpack_savedmodel(zip_path: str) -> Path:
    """An uploaded SavedModel zip, unpacked once next to the stored upload."""
    from xai_core.loading.keras import unpack_savedmodel_zip

    return unpack_savedmodel_zip(zip_path, Path(zip_path).parent / "savedmodel")


@dataclass(frozen=True)
class ModelRequest:
    """Everything that decides which adapter open_model returns."""

    framework: str
    source: str  # "zoo" or "file"
    ref: str  # zoo name, or path of the stored upload
    display_name: str  # zoo name or the uploaded file's name
    spec: ImageSpec
    content_hash: str | None = None
    arch: str | None = None
    trust_pickle: bool = False
    labels: tuple[str, ...] | None = None
    labels_name: str | None = None
    sidecar_hash: str | None = None  # the uploaded description (<stem>.json) stored beside the file
    sidecar_name: str | None = None

    @property
    def key(self) -> str:
        identity = {
            "framework": self.framework,
            "source": self.source,
            "model": self.display_name if self.source == "zoo" else self.content_hash,
            "spec": self.spec.to_dict(),
            "arch": self.arch,
            "trust_pickle": self.trust_pickle,
            "labels": content_hash("\n".join(self.labels).encode()) if self.labels else None,
        }
        if self.sidecar_hash:
            identity["sidecar"] = self.sidecar_hash
        return content_hash(json.dumps(identity, sort_keys=True).encode())


@st.cache_resource(show_spinner=False, max_entries=6)
def _load_model(key: str, _request: ModelRequest):
    from xai_core.loading.models import SpecOverrides, open_model

    spec = _request.spec
    return open_model(
        _request.ref,
        framework=_request.framework,
        arch=_request.arch,
        overrides=SpecOverrides(size=spec.size, mean=spec.mean, std=spec.std, grayscale=spec.grayscale,
                                resize=0 if spec.resize is None else spec.resize, interpolation=spec.interpolation),
        labels=list(_request.labels) if _request.labels else None,
        trust_pickle=_request.trust_pickle,
    )


def load_model(request: ModelRequest):
    """The adapter for ``request``, loaded once per process and shared."""
    return _load_model(request.key, request)


@st.cache_data(show_spinner=False, max_entries=32)
def decode_image(data: bytes, name: str) -> np.ndarray:
    """Uploaded image bytes -> RGB uint8 (raises InputError for bad files)."""
    return load_image(data, name)


@st.cache_data(show_spinner=False, max_entries=64)
def _explain(
    model_key: str,
    image_key: str,
    method: str,
    params: tuple[tuple[str, Any], ...],
    target: int | None,
    layer: str | None,
    seed: int,
    _adapter: Any,
    _image: np.ndarray,
    _progress: Callable[[float, str], None] | None,
    output: str | None = None,
) -> Explanation:
    from xai_core import service

    return service.explain(
        _adapter, _image, method, dict(params), target=target, layer=layer, seed=seed, progress=_progress,
        output=output,
    )


def result_key(model_key: str, image_key: str, method: str, params: dict[str, Any],
               target: int | None, layer: str | None, seed: int, output: str | None = None) -> str:
    payload = [model_key, image_key, method, sorted(params.items()), target, layer, seed]
    if output:
        payload.append(output)
    return content_hash(json.dumps(payload, default=str).encode())


def explain_cached(
    model_key: str,
    adapter: Any,
    image_key: str,
    image: np.ndarray,
    method: str,
    params: dict[str, Any],
    *,
    target: int | None,
    layer: str | None,
    seed: int,
    progress: Callable[[float, str], None] | None = None,
    output: str | None = None,
) -> Explanation:
    """xai_core.service.explain through st.cache_data.

    The progress callback updates a bar created outside the cached function. It
    runs in the caller's context (captured here), so Streamlit does not record the
    bar updates as part of the cached result and replay them on a cache hit.
    """
    return _explain(
        model_key, image_key, method, tuple(sorted(params.items())), target, layer, seed,
        adapter, image, outside_cache(progress), output,
    )


def outside_cache(progress: Callable[[float, str], None] | None) -> Callable[[float, str], None] | None:
    """``progress`` run in the caller's context (captured now), so that a cached
    function calling it does not record the bar updates and replay them on a hit."""
    if progress is None:
        return None
    outer = contextvars.copy_context()

    def report(fraction: float, text: str) -> None:
        outer.run(progress, fraction, text)

    return report


@st.cache_resource(show_spinner="Loading the model…", max_entries=6)
def open_model_ref(ref: ModelRef):
    """The adapter of a :class:`~xai_core.sets.model.ModelRef` (what
    :func:`ui.model_form.model_picker` returns), loaded once per process and shared."""
    return ref.adapter()


@st.cache_resource(show_spinner="Loading the model…", max_entries=6)
def open_set_model(ref: ModelRef):
    """The model of the labelled-set page (a SetModel: the adapter and the set's class names)."""
    return ref.open()
