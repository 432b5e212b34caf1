"""One row of feature values for a vector input of a model: read from a ``.npy``, a
``.csv`` (one data row, with or without a header line naming the features), or
typed comma-separated text, and checked against the input's
:class:`~xai_core.types.VectorSpec`. The command line's ``--input NAME=FILE`` and
the dashboard's per-input form both read rows here.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from xai_core.types import InputError, VectorSpec

MAX_ROW_BYTES = 8 * 2**20


def _numbers(cells: list[str], where: str) -> list[float]:
    values = []
    for i, cell in enumerate(cells):
        try:
            values.append(float(cell))
        except ValueError:
            raise InputError(f"{where}: value {i + 1} ({cell.strip()!r}) is not a number") from None
    return values


def parse_typed_row(text: str, spec: VectorSpec) -> np.ndarray:
    """Comma- (or semicolon-) separated numbers typed by the user -> a checked row."""
    cells = [c for c in text.replace(";", ",").split(",") if c.strip()]
    return check_row(np.array(_numbers(cells, f"input {spec.name!r}"), np.float64), spec)


def read_feature_row(data: bytes, filename: str, spec: VectorSpec) -> np.ndarray:
    """A ``.npy`` (one row: shape (F,) or (1, F)) or a ``.csv`` (one data row; a first
    line of non-numbers is a header, whose names must then be the input's feature
    names, in any order) -> a checked float32 row."""
    where = f"input {spec.name!r} ({filename})"
    if len(data) > MAX_ROW_BYTES:
        raise InputError(f"{where}: {len(data) // 2**20} MB is too large for one row of features")
    if filename.lower().endswith(".npy"):
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{where}: not a readable .npy array ({exc})") from None
        if array.ndim == 2 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.number):
            raise InputError(f"{where}: holds an array of shape {array.shape} ({array.dtype}); give one row of "
                             "numbers, shape (F,) or (1, F)")
        return check_row(array.astype(np.float64), spec)
    try:
        rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig"))) if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{where}: not a readable CSV ({exc})") from None
    if not rows:
        raise InputError(f"{where}: the file is empty")
    header = None
    if not _is_numeric(rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if len(rows) != 1:
        raise InputError(f"{where}: holds {len(rows)} data rows; give exactly one row of feature values")
    values = np.array(_numbers(rows[0], where), np.float64)
    if header is not None and spec.feature_names is not None and header != list(spec.feature_names):
        if sorted(header) != sorted(spec.feature_names) or len(header) != len(values):
            raise InputError(f"{where}: the header names {', '.join(header)}; the input's features are "
                             f"{', '.join(spec.feature_names)}")
        values = values[[header.index(n) for n in spec.feature_names]]
    return check_row(values, spec)


def _is_numeric(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def check_row(values: np.ndarray, spec: VectorSpec) -> np.ndarray:
    """The row's length against the spec's feature count, every value finite."""
    values = np.asarray(values, np.float64).reshape(-1)
    names = spec.names()
    if spec.size is not None and len(values) != spec.size:
        listed = f" ({', '.join(names)})" if names and len(names) <= 20 else ""
        raise InputError(f"input {spec.name!r} takes {spec.size} feature values{listed}; {len(values)} were given")
    if not len(values):
        raise InputError(f"input {spec.name!r}: no feature values given")
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        which = names[bad[0]] if bad[0] < len(names) else f"value {bad[0] + 1}"
        raise InputError(f"input {spec.name!r}: {which} is not a finite number")
    return values.astype(np.float32)
