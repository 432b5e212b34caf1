"""Labelled sets: a folder, zip, CSV or ``.npz`` of items with their true class.

Formats (chosen by the source, for image and tabular models alike):

* a folder with one sub-folder per class (torchvision's ``ImageFolder``), or a
  ``.zip`` of one (optionally inside a single top-level folder);
* a CSV of image paths and labels (columns ``path``/``file``/``image``/``filename``
  and ``label``/``class``/``target``/``y``; paths relative to the CSV's folder);
* a CSV table with a label column (tabular models; the other columns are features);
* a CSV of pixels for image models, as the MNIST tutorials keep their sets: a label
  column and H x W (or H x W x 3) numeric columns, one image a row (784 columns ->
  28 x 28); the shape is inferred when the count is a square (or 3 x a square),
  else asked for (``image_shape``);
* an ``.npz`` with ``x`` (N x H x W [x C] images, uint8 or floats in [0, 1], or
  N x F rows) and ``y`` (N labels), optionally ``class_names``.

Labels are class names or indices of the *model's* classes. Items are read lazily
(one batch at a time), so a set of any size is held as names and labels only.
An item that cannot be used (a missing file, an unknown label, a corrupt image)
gets one message naming it in :attr:`LabelledSet.errors`; the rest of the set runs.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from xai_core.inputs.images import MAX_FILE_BYTES, SUPPORTED_SUFFIXES, load_image
from xai_core.types import InputError

MAX_ITEMS = 200_000
MAX_SET_BYTES = 2 * 1024**3
PATH_COLUMNS = ("path", "file", "filename", "image", "img", "filepath")
LABEL_COLUMNS = ("label", "class", "target", "y", "labels")


@dataclass
class LabelledSet:
    """Items of one kind (``"image"`` or ``"rows"``) with their true class index.

    ``labels[i]`` is the model's class index of item ``i``, -1 where the label is
    unusable (then ``errors[i]`` says why). :meth:`read` returns the items' raw
    content: RGB uint8 images (H x W x 3) or float32 feature rows (F,).
    """

    kind: str
    names: list[str]
    labels: np.ndarray
    class_names: list[str]
    source: str
    errors: dict[int, str] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)
    _reader: Any = field(default=None, repr=False)
    # how to open the same set again from its path (open_set's arguments), None for uploaded bytes:
    # a Ray worker reads the items itself instead of receiving them from the driver
    recipe: dict[str, Any] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int) -> np.ndarray:
        """One item's content; an :class:`InputError` naming the item when unreadable."""
        return self._reader.read(index)

    def read_many(self, indices: Sequence[int]) -> np.ndarray | None:
        """The images of ``indices`` as one N x H x W x 3 uint8 array, each equal to
        :meth:`read` of it, when the set holds its images as one array of them (an
        .npz or a pixel CSV of uint8 images); None otherwise (read them one by one)."""
        many = getattr(self._reader, "read_many", None)
        return many(list(indices)) if many is not None else None

    def chunks(self, size: int, indices: Sequence[int] | None = None) -> Iterator[list[int]]:
        """The given indices (default: every item) in consecutive chunks of ``size``."""
        order = list(range(len(self))) if indices is None else list(indices)
        for start in range(0, len(order), max(1, size)):
            yield order[start:start + size]

    def fingerprint(self) -> str:
        """A short digest of the items' names and labels (to tell runs over other sets apart)."""
        import hashlib

        digest = hashlib.sha256(self.source.encode())
        digest.update("\n".join(self.names).encode())
        digest.update(self.labels.astype(np.int64).tobytes())
        return digest.hexdigest()[:16]


# ---------------------------------------------------------------- readers


class _FileReader:
    def __init__(self, paths: list[Path], names: list[str]) -> None:
        self.paths, self.names = paths, names

    def read(self, index: int) -> np.ndarray:
        return load_image(self.paths[index], name=self.names[index])


class _ZipReader:
    def __init__(self, archive: Path | bytes, members: list[str], names: list[str]) -> None:
        self.archive, self.members, self.names = archive, members, names
        self._zip: zipfile.ZipFile | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None}

    def read(self, index: int) -> np.ndarray:
        if self._zip is None:
            src = io.BytesIO(self.archive) if isinstance(self.archive, bytes) else self.archive
            self._zip = zipfile.ZipFile(src)
        info = self._zip.getinfo(self.members[index])
        if info.file_size > MAX_FILE_BYTES:
            raise InputError(f"{self.names[index]}: file is larger than {MAX_FILE_BYTES // 2**20} MB")
        try:
            data = self._zip.read(info)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"{self.names[index]}: cannot be read from the zip ({exc})") from None
        return load_image(data, name=self.names[index])


class _ArrayReader:
    def __init__(self, x: np.ndarray, names: list[str], kind: str) -> None:
        self.x, self.names, self.kind = x, names, kind

    def read_many(self, indices: list[int]) -> np.ndarray | None:
        """uint8 images at once, as :func:`array_to_rgb` makes each (other dtypes are
        checked one by one)."""
        if self.kind != "image" or self.x.dtype != np.uint8:
            return None
        a = self.x[indices]
        if a.ndim == 4 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim == 3:
            a = np.repeat(a[..., None], 3, axis=3)
        if a.ndim != 4 or a.shape[-1] not in (3, 4):
            return None
        return np.ascontiguousarray(a[..., :3])

    def read(self, index: int) -> np.ndarray:
        item = self.x[index]
        if self.kind == "rows":
            return np.asarray(item, np.float32)
        return array_to_rgb(item, self.names[index])


def array_to_rgb(item: np.ndarray, name: str) -> np.ndarray:
    """One image from an array (H x W, H x W x 1 or H x W x 3; uint8, or floats in
    [0, 1]) -> RGB uint8 H x W x 3."""
    a = np.asarray(item)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise InputError(f"{name}: an image must be H x W, H x W x 1 or H x W x 3; got shape {item.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise InputError(f"{name}: the image holds NaN or infinite values")
    if a.min() < 0 or a.max() > 255:
        raise InputError(f"{name}: pixel values must be uint8 or floats in [0, 1]")
    if a.max() <= 1.0:
        a = a * 255.0
    return np.ascontiguousarray(np.round(a).astype(np.uint8))


# ---------------------------------------------------------------- labels


def match_label(value: Any, class_names: list[str]) -> int | None:
    """The model class a label value means: its exact name (case-insensitive, after
    stripping), else its index when it is a whole number in range; None otherwise."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    lowered = [c.strip().lower() for c in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(class_names):
        return int(text)
    return None


def _map_labels(values: Sequence[Any], names: list[str], class_names: list[str],
                errors: dict[int, str]) -> np.ndarray:
    labels = np.full(len(values), -1, np.int64)
    shown = ", ".join(class_names[:12]) + ("..." if len(class_names) > 12 else "")
    for i, value in enumerate(values):
        index = match_label(value, class_names)
        if index is None:
            errors.setdefault(i, f"{names[i]}: label {str(value)!r} is not a class of the model ({shown})")
        else:
            labels[i] = index
    return labels


# ---------------------------------------------------------------- openers


def open_set(
    source: str | Path | bytes,
    class_names: list[str],
    *,
    kind: str = "image",
    name: str | None = None,
    label_column: str | None = None,
    feature_columns: list[str] | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> LabelledSet:
    """Open a labelled set for a model with ``class_names``.

    ``source`` is a path (folder, ``.zip``, ``.csv``, ``.npz``) or the bytes of an
    uploaded file whose ``name`` gives the format. ``kind`` is the model's input:
    ``"image"`` or ``"rows"``. ``image_shape`` (H, W) or (H, W, C) is the picture
    shape of a CSV of pixel columns (default: inferred from a square count). A set
    opened from a path keeps its :attr:`~LabelledSet.recipe`.
    """
    found = _open_source(source, class_names, kind=kind, name=name, label_column=label_column,
                         feature_columns=feature_columns, image_shape=image_shape)
    if not isinstance(source, (bytes, bytearray)):
        found.recipe = {"source": str(Path(source).resolve()), "class_names": list(class_names), "kind": kind,
                        "name": found.source, "label_column": label_column,
                        "feature_columns": list(feature_columns) if feature_columns else None,
                        "image_shape": list(image_shape) if image_shape else None}
    return found


def reopen_set(recipe: dict[str, Any], fingerprint: str) -> LabelledSet:
    """The set of a :attr:`~LabelledSet.recipe`, read again here (on a Ray worker's node);
    an InputError when the files there are not the driver's set."""
    recipe = dict(recipe)
    if recipe.get("image_shape"):
        recipe["image_shape"] = tuple(recipe["image_shape"])
    found = open_set(**recipe)
    if found.fingerprint() != fingerprint:
        import socket

        raise InputError(f"{recipe['source']} on {socket.gethostname()} is not the set the run was started "
                         "with (other files or labels); give every node the same copy at the same path")
    return found


def _open_source(
    source: str | Path | bytes,
    class_names: list[str],
    *,
    kind: str = "image",
    name: str | None = None,
    label_column: str | None = None,
    feature_columns: list[str] | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> LabelledSet:
    """Open a labelled set for a model with ``class_names`` (see :func:`open_set`)."""
    if kind not in ("image", "rows"):
        raise InputError(f"unknown set kind {kind!r}; use image or rows")
    if isinstance(source, (bytes, bytearray)):
        label = name or "uploaded set"
        suffix = Path(label).suffix.lower()
        data = bytes(source)
        if not data:
            raise InputError(f"{label}: the file is empty")
        if suffix == ".zip":
            return _open_zip(data, label, class_names, kind)
        if suffix == ".npz":
            return _open_npz(data, label, class_names, kind)
        if suffix in (".csv", ".txt"):
            return _open_csv(data, label, None, class_names, kind, label_column, feature_columns, image_shape)
        raise InputError(f"{label}: upload a .zip of class folders, a .csv or an .npz")
    path = Path(source)
    label = name or str(path)
    if not path.exists():
        raise InputError(f"{label}: no such file or folder")
    if path.is_dir():
        if kind == "rows":
            raise InputError(f"{label}: a tabular model reads a CSV table or an .npz, not a folder")
        return _open_folder(path, label, class_names)
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{label}: the file is empty")
    if size > MAX_SET_BYTES:
        raise InputError(f"{label}: larger than {MAX_SET_BYTES // 2**30} GB")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _open_zip(path, label, class_names, kind)
    if suffix == ".npz":
        return _open_npz(path.read_bytes(), label, class_names, kind)
    if suffix in (".csv", ".txt"):
        return _open_csv(path.read_bytes(), label, path.parent, class_names, kind, label_column, feature_columns,
                         image_shape)
    raise InputError(f"{label}: not a labelled set; give a folder of class folders, a .zip, a .csv or an .npz")


def _check_count(n: int, label: str) -> None:
    if n == 0:
        raise InputError(f"{label}: holds no items")
    if n > MAX_ITEMS:
        raise InputError(f"{label}: {n} items; the limit is {MAX_ITEMS}")


def _is_image_name(name: str) -> bool:
    base = PurePosixPath(name).name
    return not base.startswith(".") and PurePosixPath(name).suffix.lower() in SUPPORTED_SUFFIXES


def _open_folder(root: Path, label: str, class_names: list[str]) -> LabelledSet:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputError(f"{label}: no class folders inside; put each class's images in a folder named after it")
    paths: list[Path] = []
    names: list[str] = []
    values: list[str] = []
    for folder in classes:
        for file in sorted(folder.rglob("*")):
            if file.is_file() and not file.is_symlink() and _is_image_name(file.name):
                paths.append(file)
                names.append(str(file.relative_to(root)))
                values.append(folder.name)
    _check_count(len(paths), label)
    errors: dict[int, str] = {}
    labels = _map_labels(values, names, class_names, errors)
    return LabelledSet("image", names, labels, list(class_names), label, errors, _reader=_FileReader(paths, names))


def _open_zip(source: Path | bytes, label: str, class_names: list[str], kind: str) -> LabelledSet:
    if kind == "rows":
        raise InputError(f"{label}: a tabular model reads a CSV table or an .npz, not a zip")
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{label}: not a readable zip ({exc})") from None
    files = [i.filename for i in infos
             if _is_image_name(i.filename) and "__MACOSX" not in i.filename.split("/")]
    parts = [PurePosixPath(f).parts for f in files]
    # one top-level folder around the class folders is allowed (a zipped ImageFolder)
    if parts and all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
        parts = [p[1:] for p in parts]
    keep = [(f, p) for f, p in zip(files, parts, strict=True) if len(p) >= 2]
    if not keep:
        raise InputError(f"{label}: no images in class folders inside the zip (expected CLASS/IMAGE.png)")
    keep.sort(key=lambda fp: fp[1])
    _check_count(len(keep), label)
    members = [f for f, _ in keep]
    names = ["/".join(p) for _, p in keep]
    errors: dict[int, str] = {}
    labels = _map_labels([p[0] for _, p in keep], names, class_names, errors)
    return LabelledSet("image", names, labels, list(class_names), label, errors,
                       _reader=_ZipReader(source, members, names))


def _open_npz(data: bytes, label: str, class_names: list[str], kind: str) -> LabelledSet:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{label}: not a readable .npz without pickles ({str(exc).splitlines()[0][:120]})") from None
    if "x" not in arrays or "y" not in arrays:
        raise InputError(f"{label}: the .npz needs arrays 'x' (items) and 'y' (labels); it has {', '.join(arrays)}")
    x, y = arrays["x"], np.asarray(arrays["y"]).reshape(-1)
    if len(x) != len(y):
        raise InputError(f"{label}: 'x' has {len(x)} items but 'y' has {len(y)} labels")
    _check_count(len(x), label)
    if kind == "rows" and x.ndim != 2:
        raise InputError(f"{label}: a tabular model needs 'x' as N x features; got shape {x.shape}")
    if kind == "image" and x.ndim not in (3, 4):
        raise InputError(f"{label}: images need 'x' as N x H x W or N x H x W x C; got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise InputError(f"{label}: 'x' must be numeric; got {x.dtype}")
    names = [f"{i}" for i in range(len(x))]
    values: Sequence[Any] = y.tolist()
    if "class_names" in arrays and np.issubdtype(y.dtype, np.integer):
        own = [str(c) for c in arrays["class_names"].tolist()]
        values = [own[v] if 0 <= v < len(own) else v for v in y.tolist()]
    errors: dict[int, str] = {}
    labels = _map_labels(values, names, class_names, errors)
    features = [str(f) for f in arrays["feature_names"].tolist()] if "feature_names" in arrays else \
        ([f"x{j}" for j in range(x.shape[1])] if kind == "rows" else [])
    if kind == "rows":
        x = x.astype(np.float32)
        bad = ~np.isfinite(x).all(axis=1)
        for i in np.flatnonzero(bad):
            errors.setdefault(int(i), f"row {i}: holds NaN or infinite values")
    return LabelledSet(kind, names, labels, list(class_names), label, errors, features,
                       _reader=_ArrayReader(x, names, kind))


def _find_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str,
                 label: str) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise InputError(f"{label}: no column named {wanted!r}; columns: {', '.join(columns[:20])}")
        return wanted
    lowered = {c.strip().lower(): c for c in columns}
    for c in candidates:
        if c in lowered:
            return lowered[c]
    return None


def pixel_shape(count: int, asked: tuple[int, ...] | None, label: str) -> tuple[int, ...]:
    """The picture shape of ``count`` pixel columns: ``asked`` ((H, W) or (H, W, C),
    checked against the count), else a square (H, H) or a square of RGB (H, H, 3);
    one clear refusal otherwise (the shape is never guessed)."""
    if asked is not None:
        shape = tuple(int(v) for v in asked)
        if len(shape) not in (2, 3) or min(shape) < 1 or (len(shape) == 3 and shape[2] not in (1, 3)):
            raise InputError(f"{label}: an image shape is H x W or H x W x C with C 1 or 3; got {asked}")
        if int(np.prod(shape)) != count:
            raise InputError(f"{label}: {count} pixel columns do not make {' x '.join(map(str, shape))} "
                             f"({int(np.prod(shape))} values)")
        return shape
    if count < 4:
        raise InputError(f"{label}: {count} pixel column(s) are too few for an image (at least 2 x 2)")
    side = int(round(count ** 0.5))
    if side * side == count:
        return (side, side)
    side = int(round((count / 3) ** 0.5))
    if 3 * side * side == count:
        return (side, side, 3)
    raise InputError(f"{label}: {count} pixel columns are not a square image; give the shape "
                     "(--image-shape HxW, or the page's 'Image shape')")


def _pixel_csv(frame, label: str, target: str, class_names: list[str], image_shape: tuple[int, ...] | None,
               errors: dict[int, str]) -> LabelledSet:
    """A CSV of a label column and pixel columns (one image a row) as an image set."""
    import pandas as pd

    columns = [c for c in frame.columns if c != target]
    shape = pixel_shape(len(columns), image_shape, label)
    values = frame[columns].apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce"))
    x = values.to_numpy(np.float64)
    bad_rows = ~np.isfinite(x).all(axis=1)
    names = [f"row {i}" for i in range(len(frame))]
    for i in np.flatnonzero(bad_rows):
        errors.setdefault(int(i), f"row {i}: a pixel column holds something that is not a number")
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise InputError(f"{label}: pixel values must lie in 0..255 or 0..1; they span {low:g}..{high:g}")
    # one range for the whole set (a dark digit must not be read as 0..1 on its own)
    pixels = (x if high > 1.0 else x * 255.0).round().astype(np.uint8).reshape(len(frame), *shape)
    labels = _map_labels(frame[target].tolist(), names, class_names, errors)
    return LabelledSet("image", names, labels, list(class_names), label, errors,
                       _reader=_ArrayReader(pixels, names, "image"))


def _numeric_columns(frame, columns: list[str]) -> bool:
    """Whether every one of ``columns`` reads as numbers in the first rows."""
    import pandas as pd

    head = frame[columns].head(20)
    return bool(head.apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce").notna().all()).all())


def _open_csv(data: bytes, label: str, base: Path | None, class_names: list[str], kind: str,
              label_column: str | None, feature_columns: list[str] | None,
              image_shape: tuple[int, ...] | None = None) -> LabelledSet:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{label}: not a readable CSV ({str(exc).splitlines()[0][:160]})") from None
    columns = [str(c) for c in frame.columns]
    _check_count(len(frame), label)
    target = _find_column(columns, label_column, LABEL_COLUMNS, "label", label)
    if target is None:
        raise InputError(f"{label}: no label column; name it one of {', '.join(LABEL_COLUMNS)} "
                         f"or choose it (--label-column); columns: {', '.join(columns[:20])}")
    errors: dict[int, str] = {}
    if kind == "image":
        path_col = _find_column(columns, None, PATH_COLUMNS, "path", label)
        pixels = [c for c in columns if c != target]
        if path_col is None and pixels and _numeric_columns(frame, pixels):
            return _pixel_csv(frame, label, target, class_names, image_shape, errors)
        if path_col is None:
            raise InputError(f"{label}: a CSV of images needs a path column named one of {', '.join(PATH_COLUMNS)}, "
                             "or a label column and numeric pixel columns (one image a row)")
        if base is None:
            raise InputError(f"{label}: an uploaded CSV cannot point at image files; upload a zip of class folders")
        names = [str(v) for v in frame[path_col]]
        paths = []
        for i, rel in enumerate(names):
            p = Path(rel)
            p = p if p.is_absolute() else base / p
            paths.append(p)
            if not p.is_file():
                errors[i] = f"{rel}: no such image file (row {i + 2} of {Path(label).name})"
        labels = _map_labels(frame[target].tolist(), names, class_names, errors)
        return LabelledSet("image", names, labels, list(class_names), label, errors,
                           _reader=_FileReader(paths, names))
    features = [c for c in columns if c != target] if feature_columns is None else list(feature_columns)
    missing = [c for c in features if c not in columns]
    if missing:
        raise InputError(f"{label}: no column named {missing[0]!r}; columns: {', '.join(columns[:20])}")
    if not features:
        raise InputError(f"{label}: no feature columns besides the label {target!r}")
    x = np.zeros((len(frame), len(features)), np.float32)
    names = [f"row {i}" for i in range(len(frame))]
    for j, col in enumerate(features):
        values = pd.to_numeric(frame[col].str.strip(), errors="coerce").to_numpy(np.float64)
        for i in np.flatnonzero(~np.isfinite(values)):
            errors.setdefault(int(i), f"row {i}: column {col!r} holds {frame[col].iloc[i]!r}, not a number")
        x[:, j] = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    labels = _map_labels(frame[target].tolist(), names, class_names, errors)
    return LabelledSet("rows", names, labels, list(class_names), label, errors, features,
                       _reader=_ArrayReader(x, names, "rows"))
