"""Background sets the user gives: reference items for shap_gradient, shap_deep and
kernel_shap, read from a folder or zip of images, an ``.npy`` array, or a CSV.

At most :data:`MAX_BACKGROUND` items are used; a larger set is sampled without
replacement with the run's seed (the same seed picks the same items). Items come
back in the canonical form of the input they stand in for: images float32
N x H x W x C in [0, 1] (resized like the explained image), rows float32 N x F.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from xai_core.inputs.images import MAX_FILE_BYTES, load_image, preprocess
from xai_core.types import InputError, InputSpec, VectorSpec

MAX_BACKGROUND = 1000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
MAX_ZIP_BYTES = 2 * 1024**3
# what the dashboard's upload box takes (a folder path works from the command line)
MAX_UPLOAD_BYTES = 1024**3
IMAGE_BACKGROUND_FILES = (".zip", ".npy")
ROW_BACKGROUND_FILES = (".csv", ".npy")


def load_background(path: str | Path, spec: InputSpec, size: int, seed: int) -> np.ndarray:
    """``size`` reference items (fewer when the set is smaller) for an input of ``spec``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"background {path}: no such file or folder")
    size = max(1, min(int(size), MAX_BACKGROUND))
    if isinstance(spec, VectorSpec):
        rows = _rows(path)
        if spec.size is not None and rows.shape[1] != spec.size:
            raise InputError(f"background {path.name}: rows of {rows.shape[1]} values; the model takes {spec.size}")
        return rows[_sample(len(rows), size, seed)]
    if path.suffix.lower() == ".npy":
        arr = _npy(path)
        if arr.ndim != 4 or arr.shape[1:] != spec.shape:
            raise InputError(f"background {path.name}: shape {arr.shape}; images N x {spec.size[0]} x "
                             f"{spec.size[1]} x {spec.channels} in [0, 1] (or uint8) are needed")
        picked = arr[_sample(len(arr), size, seed)]
        return (picked / 255.0 if picked.dtype == np.uint8 else picked).astype(np.float32)
    sources = _image_sources(path)
    chosen = _sample(len(sources), size, seed)
    return np.stack([preprocess(_open(sources[i]), spec) for i in chosen]).astype(np.float32)


def load_background_rows(path: str | Path, feature_names: list[str], seed: int) -> np.ndarray:
    """Background rows for a table's features: a CSV whose header holds the feature
    names (matched by name, other columns ignored) or exactly as many numeric columns,
    or an .npy N x F array; at most :data:`MAX_BACKGROUND` rows, sampled with the seed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"background {path}: no such file")
    if path.suffix.lower() == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError) as exc:
            raise InputError(f"background {path.name}: not a readable CSV ({exc})") from None
        if all(f in frame.columns for f in feature_names):
            frame = frame[list(feature_names)]
        try:
            rows = frame.to_numpy(dtype=np.float32)
        except ValueError:
            raise InputError(f"background {path.name}: its columns must be the model's features "
                             f"({', '.join(feature_names[:6])}...) with numbers") from None
    else:
        rows = _rows(path)
    if rows.ndim != 2 or rows.shape[1] != len(feature_names):
        raise InputError(f"background {path.name}: rows of {rows.shape[-1]} values; the table has "
                         f"{len(feature_names)} features")
    if not np.isfinite(rows).all():
        raise InputError(f"background {path.name}: has missing or infinite values")
    return rows[_sample(len(rows), MAX_BACKGROUND, seed)]


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    if n == 0:
        raise InputError("the background set is empty")
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"background {path.name}: not a readable .npy array ({exc})") from None


def _rows(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        rows = _npy(path)
    elif path.suffix.lower() == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError) as exc:
            raise InputError(f"background {path.name}: not a readable CSV ({exc})") from None
        numeric = frame.select_dtypes("number")
        if numeric.shape[1] != frame.shape[1]:
            bad = [c for c in frame.columns if c not in numeric.columns]
            raise InputError(f"background {path.name}: non-numeric columns {', '.join(map(str, bad[:5]))}")
        rows = numeric.to_numpy()
    else:
        raise InputError(f"background {path.name}: give rows as a .csv or .npy file")
    rows = np.asarray(rows, np.float32)
    if rows.ndim != 2 or not np.isfinite(rows).all():
        raise InputError(f"background {path.name}: needs a 2-D table of finite numbers, got shape {rows.shape}")
    return rows


def _image_sources(path: Path) -> list:
    """Image files of a folder (sorted), or (archive, member) pairs of a zip."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise InputError(f"background {path.name}: no images in the folder ({', '.join(IMAGE_SUFFIXES)})")
        return found
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.infolist()
                           if not m.is_dir() and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES]
        except zipfile.BadZipFile:
            raise InputError(f"background {path.name}: not a zip archive") from None
        if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise InputError(f"background {path.name}: unpacks to more than {MAX_ZIP_BYTES // 2**30} GB")
        if not members:
            raise InputError(f"background {path.name}: no images in the archive")
        return [(path, m.filename) for m in sorted(members, key=lambda m: m.filename)]
    raise InputError(f"background {path.name}: give a folder or .zip of images, or an .npy array")


def _open(source) -> np.ndarray:
    if isinstance(source, Path):
        return load_image(source)
    archive, member = source
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
        if info.file_size > MAX_FILE_BYTES:
            raise InputError(f"background {archive.name}: {member} is larger than {MAX_FILE_BYTES // 2**20} MB")
        return load_image(zf.read(member), name=f"{archive.name}:{member}")


__all__ = ["MAX_BACKGROUND", "load_background", "load_background_rows"]
