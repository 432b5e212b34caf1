"""Files the service writes for the user: written whole (temp file + rename, so a
killed run leaves no half file and a symlink in the way is replaced, never
followed), and CSVs with formula cells escaped (DESIGN.md section 4)."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_file(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole: into a fresh temp file beside it (created
    exclusively, never through a link), then renamed over ``path``. A symbolic link
    planted at ``path`` is replaced, never followed, so its target keeps its content.
    Failures are one :class:`InputError` naming the file."""
    from xai_core.types import InputError

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
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


def npy_bytes(array) -> bytes:
    """One array as ``.npy`` bytes (no pickles)."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
