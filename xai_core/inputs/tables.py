"""CSV tables -> the float32 feature matrix a tabular model reads.

A table has a header line. One column may be the label (kept aside, never fed to
the model). When the model knows its feature names (a JSON sidecar's
``feature_names``; every zoo model does), columns are matched to them by name, so
the file's column order does not matter, and a missing, extra or misnamed column is
an error naming it. Names match exactly, else ignoring case and treating ``-``,
spaces and ``_`` alike when that finds one column only (Keras renames an input
"Education-Num" to "Education_Num"); an ambiguous match is an error. A model
without names, or one whose inputs carry only a framework's generated names
(Keras's ``input_layer_1``, ONNX's ``input.1``) once the user asks for it
(``columns_in_order``, a sidecar ``columns`` list, or chosen feature columns),
reads the chosen feature columns in the order given (default: every column but
the label, in file order). Rows are
numbered from 0 = the first line after the header. Every problem is an
:class:`~xai_core.types.InputError` naming the column and row to fix.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xai_core.types import InputError

MAX_CSV_BYTES = 50 * 1024**2
MAX_ROWS = 200_000
# a column with one of these names is taken as the label when the model names none
LABEL_NAMES = ("target", "label", "labels", "class", "y", "outcome")
# names a framework gives inputs that have none of their own: Keras input_layer_3,
# keras_tensor_2, input_1; ONNX input.1, input, x, args_0; one column of a wide input, x[3]
_GENERATED = re.compile(r"^(input|inputs|input_layer|keras_tensor|args|x|serving_default_input)"
                        r"([_.:]?\d+)*(\[\d+\])?$", re.IGNORECASE)
IN_ORDER_HINT = ("to take the table's feature columns in the model's input order, pass --columns-in-order "
                 "(in the dashboard: tick 'Columns in the model's input order'), list them with --features, "
                 "or list them in the model sidecar's \"columns\"")


def column_key(name: str) -> str:
    """A column name as matched when not exactly: case-folded, with runs of ``-``,
    spaces and ``_`` as one ``_``."""
    return re.sub(r"[\s_\-]+", "_", str(name).strip()).casefold()


def generated_names(names: list[str] | None) -> bool:
    """True when every name is one a framework generates for an unnamed input."""
    return bool(names) and all(_GENERATED.match(str(n).strip()) for n in names)


def model_columns(model) -> list[str] | None:
    """The table columns a model reads, in its input order: its sidecar's ``columns``
    when given, else its feature names (None when it has neither)."""
    explicit = vars(model).get("table_columns") if hasattr(model, "__dict__") else None
    return list(explicit) if explicit else model.feature_names


@dataclass
class TabularData:
    """A parsed table: ``x`` (N x F float32) holds the feature columns in order."""

    x: np.ndarray
    feature_names: list[str]
    label_column: str | None = None
    labels: list | None = None  # the label column's values, as read
    columns: list[str] = field(default_factory=list)  # every column in the file
    source: str = "table"

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    def row(self, index: int) -> np.ndarray:
        """One row (F,) by its 0-based index."""
        check_row(self, index)
        return self.x[index]

    def feature_means(self) -> np.ndarray:
        return self.x.mean(axis=0, dtype=np.float64).astype(np.float32)


def check_row(data: TabularData, index: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise InputError(f"row {index!r} is not a row number")
    if not 0 <= int(index) < data.n_rows:
        raise InputError(f"row {index} is out of range: {data.source} has {data.n_rows} rows (0..{data.n_rows - 1})")
    return int(index)


def read_columns(source: bytes | str | Path, name: str | None = None) -> list[str]:
    """The header of a CSV (for choosing the label and feature columns)."""
    return list(_read_frame(source, name)[0].columns)


def load_table(
    source: bytes | str | Path,
    *,
    label_column: str | None = None,
    feature_columns: list[str] | None = None,
    n_features: int | None = None,
    model_features: list[str] | None = None,
    name: str | None = None,
    max_bytes: int = MAX_CSV_BYTES,
    max_rows: int = MAX_ROWS,
    columns_in_order: bool = False,
) -> TabularData:
    """Read a CSV (bytes or a path) with a header.

    ``label_column`` is set aside. With ``model_features`` (the model's feature
    names in its input order), ``x`` holds those columns in that order, found by
    name; every other column but the label is an error, and so is a missing one.
    Without, ``feature_columns`` (default: every other column, in file order)
    become ``x``. ``n_features`` (the model's input width) is checked against the
    number of feature columns. ``columns_in_order`` takes the feature columns (the
    chosen ones, else every other column in file order) as the model's inputs in
    their order instead of by name: the user's explicit choice for a model whose
    inputs carry no names of their own; so do chosen ``feature_columns`` for a
    model with generated names.
    """
    frame, label = _read_frame(source, name, max_bytes)
    columns = [str(c) for c in frame.columns]
    if len(frame) > max_rows:
        raise InputError(f"{label}: {len(frame)} rows; the limit is {max_rows}")
    if label_column is not None and label_column not in columns:
        raise InputError(f"{label}: no column named {label_column!r}; columns: {_names(columns)}")
    if feature_columns is not None:
        feature_columns = [str(c) for c in feature_columns]
        missing = [c for c in feature_columns if c not in columns]
        if missing:
            raise InputError(f"{label}: no column named {missing[0]!r}; columns: {_names(columns)}")
        if label_column is not None and label_column in feature_columns:
            raise InputError(f"{label}: the label column {label_column!r} cannot also be a feature")
        dupes = sorted({c for c in feature_columns if feature_columns.count(c) > 1})
        if dupes:
            raise InputError(f"{label}: feature column {dupes[0]!r} is chosen twice")
    if model_features is not None and not columns_in_order:
        by_position = feature_columns is not None and generated_names(model_features)
        feature_columns = match_model_features(columns, model_features, label_column, feature_columns, label,
                                               in_order=by_position)
    elif feature_columns is None:
        feature_columns = [c for c in columns if c != label_column]
    if not feature_columns:
        raise InputError(f"{label}: no feature columns left to feed the model")
    if n_features is not None and len(feature_columns) != n_features:
        raise InputError(
            f"{label}: {len(feature_columns)} feature columns chosen but the model takes {n_features} "
            f"features; choose the label column and feature columns so that {n_features} remain"
        )
    x = np.empty((len(frame), len(feature_columns)), np.float32)
    for j, col in enumerate(feature_columns):
        x[:, j] = _numeric_column(frame[col], col, label)
    labels = frame[label_column].tolist() if label_column is not None else None
    return TabularData(x, feature_columns, label_column, labels, columns, label)


def match_model_features(
    columns: list[str],
    model_features: list[str],
    label_column: str | None,
    chosen: list[str] | None = None,
    label: str = "the CSV",
    in_order: bool = False,
) -> list[str]:
    """The table's columns for the model's features, in the model's input order.

    Each feature is found among the table's ``columns`` (or the ``chosen`` ones) by
    its exact name, else by :func:`column_key` when exactly one column has that key
    and no other feature claims it. Missing names and columns that are neither a
    model feature nor the label are one error naming all of them; so is a name
    that fits several columns. ``in_order`` pairs the offered columns with the
    features by position (their counts must agree)."""
    model_features = [str(f) for f in model_features]
    if label_column is not None and label_column in model_features:
        raise InputError(f"{label}: {label_column!r} is one of the model's features; it cannot be the label column")
    offered = chosen if chosen is not None else [c for c in columns if c != label_column]
    if in_order:
        if len(offered) != len(model_features):
            raise InputError(f"{label}: the model takes {len(model_features)} inputs in order but {len(offered)} "
                             "feature columns were given")
        return list(offered)
    found: dict[str, str] = {}
    for feature in model_features:
        if feature in offered:
            found[feature] = feature
    loose: dict[str, list[str]] = {}
    for c in offered:
        if c not in found.values():
            loose.setdefault(column_key(c), []).append(c)
    wanted: dict[str, list[str]] = {}
    for feature in model_features:
        if feature not in found:
            wanted.setdefault(column_key(feature), []).append(feature)
    for key, features in wanted.items():
        fits = loose.get(key, [])
        if len(fits) > 1 or (fits and len(features) > 1):
            raise InputError(f"{label}: the model's {_quoted(features)} could be any of the columns {_quoted(fits)} "
                             "(names are matched ignoring case, '-', ' ' and '_'); rename the columns to the "
                             "model's feature names exactly")
        if fits:
            found[features[0]] = fits[0]
    missing = [f for f in model_features if f not in found]
    extra = [c for c in offered if c not in found.values()]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)} of the model's features: {_quoted(missing)}")
        if extra:
            problems.append(f"{len(extra)} column(s) the model does not take: {_quoted(extra)}")
        hint = "; rename the columns to the model's feature names"
        if extra and chosen is None:
            hint += " or leave the extra ones out (one of them may be the label column)"
        if generated_names(model_features):
            hint = (f"; the model's inputs carry no names of their own ({_quoted(model_features, 3)}): "
                    + IN_ORDER_HINT)
        raise InputError(f"{label}: columns are matched to the model's {len(model_features)} features by name; "
                         + "; ".join(problems) + hint)
    return [found[f] for f in model_features]


def default_label_column(
    columns: list[str], *, model_label: str | None = None, model_features: list[str] | None = None
) -> str | None:
    """The label column, found by name: the model's own label column when the table
    has it, else the one column called target, label, class, y or outcome (any case)
    that is not a model feature; None when there is no such single column."""
    if model_label is not None and model_label in columns:
        return model_label
    features = set(model_features or ())
    found = [c for c in columns if c.strip().lower() in LABEL_NAMES and c not in features]
    return found[0] if len(found) == 1 else None


def feature_names_from_sidecar(sidecar: dict, n_features: int | None, name: str,
                               key: str = "feature_names") -> list[str] | None:
    """A model sidecar's ``feature_names`` (or another list of column names, ``key``:
    ``columns``, the table's columns in the model's input order), checked against
    the model's width; None when absent."""
    names = sidecar.get(key)
    if names is None:
        return None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise InputError(f"{name}: the sidecar's {key} must be a list of column names")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"{name}: the sidecar's {key} repeat {_quoted(dupes)}")
    if n_features is not None and len(names) != n_features:
        what = "features" if key == "feature_names" else f"columns (its {key!r})"
        raise InputError(f"{name}: the sidecar names {len(names)} {what} but the model takes {n_features}")
    return names


def _read_frame(source: bytes | str | Path, name: str | None, max_bytes: int = MAX_CSV_BYTES):
    import pandas as pd

    if isinstance(source, (bytes, bytearray)):
        label = name or "the CSV"
        raw = bytes(source)
    else:
        path = Path(source)
        label = name or path.name
        if not path.is_file():
            raise InputError(f"{path}: no such CSV file")
        if path.stat().st_size > max_bytes:
            raise InputError(f"{label}: larger than {_size_text(max_bytes)}; use a sample of the rows")
        raw = path.read_bytes()
    if len(raw) > max_bytes:
        raise InputError(f"{label}: larger than {_size_text(max_bytes)}; use a sample of the rows")
    if not raw.strip():
        raise InputError(f"{label}: the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{label}: not a UTF-8 text file (is it a CSV?)") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), skipinitialspace=True, index_col=False)
    except pd.errors.ParserWarning:
        raise InputError(f"{label}: the first data row has more fields than the header has column names") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{label}: the file is empty") from None
    except (pd.errors.ParserError, csv_error()) as exc:
        raise InputError(f"{label}: not a readable CSV ({' '.join(str(exc).split())[:200]})") from None
    if len(frame.columns) == 0:
        raise InputError(f"{label}: no columns found")
    if len(frame) == 0:
        raise InputError(f"{label}: a header but no data rows")
    columns = [str(c) for c in frame.columns]
    if all(_is_number(c) for c in columns):
        raise InputError(f"{label}: the first line looks like data, not a header; add a header line of column names")
    unnamed = [i for i, c in enumerate(columns) if c.startswith("Unnamed: ")]
    if unnamed:
        raise InputError(f"{label}: column {unnamed[0] + 1} has no name in the header")
    return frame, label


def csv_error() -> type[Exception]:
    import csv

    return csv.Error


def _numeric_column(series, col: str, label: str) -> np.ndarray:
    import pandas as pd

    missing = np.flatnonzero(series.isna().to_numpy())
    if len(missing):
        rows = ", ".join(str(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(
            f"{label}: column {col!r} has {len(missing)} missing value(s) (row {rows}); "
            "fill or drop them before explaining"
        )
    if series.dtype == bool:
        return series.to_numpy(np.float32)
    values = pd.to_numeric(series, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        raise InputError(
            f"{label}: column {col!r} is not numeric (row {bad[0]} holds {str(series.iloc[bad[0]])!r}); "
            "encode it as numbers or leave it out of the feature columns"
        )
    out = values.to_numpy(np.float64)
    if not np.isfinite(out).all():
        row = int(np.flatnonzero(~np.isfinite(out))[0])
        raise InputError(f"{label}: column {col!r} has an infinite value at row {row}")
    return out.astype(np.float32)


def _size_text(n: int) -> str:
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n} bytes"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _quoted(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _names(columns: list[str], limit: int = 12) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")
