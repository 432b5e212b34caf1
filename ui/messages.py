"""Error text from xai_core, in the dashboard's own words.

The core writes its messages for the command line: they name flags (``--arch``,
``--trust-pickle``, ``--input-size``) and the files it was given, which in the
dashboard are copies of uploads in the server's temporary folder. :func:`page_text`
turns such a message into what a page user can act on: the widget to change, and
the name of the file they uploaded.
"""

from __future__ import annotations

import re
import tempfile

# (pattern, replacement): most specific first
_FLAG_WORDS: tuple[tuple[str, str], ...] = (
    (r",? ?or, only if you trust its author, pass --trust-(?:pickle|code) \(in the dashboard: tick 'I trust this file'\)",
     ", or, only if you trust its author, tick 'I trust this file'"),
    (r"\s*\(in the dashboard: tick 'I trust this file'\)", ""),
    (r"pass --trust-(?:pickle|code)", "tick 'I trust this file'"),
    (r"--trust-(?:pickle|code)", "'I trust this file'"),
    (r"\(--deadline, XAI_WORKER_DEADLINE\)", "(XAI_WORKER_DEADLINE on the server)"),
    (r"\(--deadline-load, XAI_LOAD_DEADLINE\)", "(XAI_LOAD_DEADLINE on the server)"),
    (r"name its architecture with --arch", "choose its Architecture"),
    (r"; check --arch", "; check the Architecture you chose"),
    (r";? ?`python -m xai_core models` lists them", ""),
    (r"--arch", "the Architecture setting"),
    (r"use --input-size (\d+),(\d+)", r"set Input height \1 and Input width \2 under Preprocessing"),
    (r"--input-size", "the input size under Preprocessing"),
    (r"--labels", "a labels file"),
    (r"; see python -m xai_core layers", "; the Layer list shows each layer's index"),
)


def _temp_path_pattern() -> re.Pattern[str]:
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp"}
    alternatives = "|".join(re.escape(r.rstrip("/")) for r in sorted(roots, key=len, reverse=True))
    return re.compile(rf"(?:{alternatives})/(?:[^\s'\":,;()]+/)*([^\s'\":,;()/]+)")


_TEMP_PATH = _temp_path_pattern()


def page_text(message: object) -> str:
    """``message`` (an exception or text) without command-line flags or server paths,
    on one line and without a trailing period, so that a next step can follow."""
    text = " ".join(str(message).split())
    text = _TEMP_PATH.sub(r"\1", text)
    for pattern, replacement in _FLAG_WORDS:
        text = re.sub(pattern, replacement, text)
    return text.strip().rstrip(".")


def show_error(exc: BaseException) -> None:
    """One line for a known failure; a short one for an unexpected one (the page's
    inputs are kept)."""
    import streamlit as st

    from xai_core.types import XaiError

    if isinstance(exc, XaiError):
        st.error(page_text(exc) + ".")
    else:
        st.error(f"Unexpected failure ({type(exc).__name__}: {page_text(exc)[:300]}). "
                 "Your inputs are kept; try other settings.")
