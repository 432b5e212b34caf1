"""Files the service writes for the user: written whole (temp file + rename, so a
killed run leaves no half file and a symlink in the way is replaced, never
followed), and CSVs with formula cells escaped (DESIGN.md section 4)."""

from __future__ import annotations

import io
import os
from pathlib import Path

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_file(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; a symlink at ``path`` is replaced."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return path


def escape_cell(value):
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_csv(frame) -> bytes:
    """A pandas DataFrame as CSV bytes with every text cell (and header) escaped."""
    from pandas.api.types import is_numeric_dtype

    frame = frame.copy()
    frame.columns = [escape_cell(str(c)) for c in frame.columns]
    for col in frame.columns:
        if not is_numeric_dtype(frame[col]):
            frame[col] = frame[col].map(escape_cell)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def npz_bytes(**arrays) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
