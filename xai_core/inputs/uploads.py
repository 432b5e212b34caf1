"""The upload store: uploaded model files kept on disk (loaders and the model worker
read paths), one folder per content hash, bounded by size and age.

``XAI_UPLOAD_DIR`` moves it (default: ``<tmp>/xai-dashboard-uploads``),
``XAI_UPLOAD_MAX_MB`` bounds its size (default 4096) and ``XAI_UPLOAD_MAX_AGE_H``
the age of a folder not used since (default 24). Each store prunes first: folders
past the age, then the least recently used ones until the new file fits. Uploaded
background sets have a store of their own beside it (:func:`background_dir`), which
every model worker sees read-only; a worker sees only its own model's folder of the
model store.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from xai_core.types import InputError

_LOCK = threading.Lock()


def upload_dir() -> Path:
    return Path(os.environ.get("XAI_UPLOAD_DIR") or Path(tempfile.gettempdir()) / "xai-dashboard-uploads")


def background_dir() -> Path:
    """Where uploaded background sets go: beside the model store, bounded the same
    way, and readable (read-only) by every model worker, which reads them itself."""
    models = upload_dir()
    return models.with_name(models.name + "-backgrounds")


def max_bytes() -> int:
    return int(float(os.environ.get("XAI_UPLOAD_MAX_MB", "4096")) * 2**20)


def max_age_s() -> float:
    return float(os.environ.get("XAI_UPLOAD_MAX_AGE_H", "24")) * 3600


def store_upload(data: bytes, filename: str, sidecar: bytes | None = None, root: Path | None = None) -> Path:
    """Write uploaded bytes to ``<store>/<hash>/<safe name>`` (the suffix tells the
    loaders the format); the same content is written once and its folder touched.
    ``sidecar`` (the model's JSON description: inputs, preprocessing, labels) is
    written beside it as ``<stem>.json``, where the loaders look for it; the folder
    is then keyed by both files, so one model with two descriptions is two entries.
    ``root``: another store (:func:`background_dir`); default the model store."""
    if len(data) + len(sidecar or b"") > max_bytes():
        raise InputError(f"{Path(filename).name}: {len(data) // 2**20} MB is more than the upload store "
                         f"holds ({max_bytes() // 2**20} MB, XAI_UPLOAD_MAX_MB)")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name).lstrip(".") or "model"
    if sidecar is not None and Path(safe).suffix.lower() == ".json":
        raise InputError(f"{Path(filename).name}: a model file cannot be a .json file")
    root = root or upload_dir()
    digest = hashlib.sha256(data)
    if sidecar is not None:
        digest.update(b"\0sidecar\0" + sidecar)
    folder = root / digest.hexdigest()[:32]
    path = folder / safe
    with _LOCK:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        prune(keep=folder, incoming=len(data) + len(sidecar or b""), root=root)
        existed = folder.is_dir()
        folder.mkdir(exist_ok=True, mode=0o700)
        try:
            _write_once(folder, path, data)
            if sidecar is not None:
                _write_once(folder, path.with_suffix(".json"), sidecar)
        except OSError as exc:  # the disk is full, or the store is not writable: nothing half-written stays
            if not existed:
                shutil.rmtree(folder, ignore_errors=True)
            raise InputError(f"{Path(filename).name}: the upload store could not keep the file "
                             f"({exc.strerror or exc}); earlier uploads are kept; free disk space or move "
                             "the store (XAI_UPLOAD_DIR)") from None
        os.utime(folder)
    return path


def _write_once(folder: Path, path: Path, data: bytes) -> None:
    if path.is_file() and not path.is_symlink() and path.stat().st_size == len(data):
        return
    tmp = folder / f".{path.name}.{os.getpid()}.part"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def prune(keep: Path | None = None, incoming: int = 0, root: Path | None = None) -> list[Path]:
    """Remove folders older than the age limit, then the least recently used until
    ``incoming`` more bytes fit; returns what was removed."""
    root = root or upload_dir()
    if not root.is_dir():
        return []
    now = time.time()
    folders = []
    for folder in root.iterdir():
        if folder.is_dir() and not folder.is_symlink() and folder != keep:
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
            folders.append((folder.stat().st_mtime, size, folder))
    folders.sort()
    total = sum(size for _, size, _ in folders)
    removed = []
    for mtime, size, folder in folders:
        if now - mtime > max_age_s() or total + incoming > max_bytes():
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
            removed.append(folder)
    return removed
