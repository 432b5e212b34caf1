"""Tables we offer for download, safe to open in a spreadsheet."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe
    (OWASP's CSV-injection advice); numbers and other text stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_csv(frame) -> bytes:
    """A pandas DataFrame -> CSV bytes with every text cell and header escaped."""
    out = frame.copy()
    out.columns = [escape_cell(str(c)) for c in out.columns]
    for column in out.columns:
        if out[column].dtype.kind not in "biufc":  # text (object or string dtype)
            out[column] = out[column].map(escape_cell)
    return out.to_csv(index=False).encode()
