"""Plain-language notes on explanations whose own diagnostics say they are unreliable.

Which checks apply is declared by each method (``Explainer.notes``, see
:mod:`xai_core.explainers.notes`); this module runs them. The dashboard shows the
notes next to the result, and the command lines print them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xai_core.explainers import REGISTRY
from xai_core.explainers.notes import IG_MAX_RELATIVE_DELTA, IG_MIN_ABS_DELTA, LIME_MIN_R2


def quality_notes(method: str, extras: Mapping[str, Any], base_value: float | None = None,
                  input_kind: str | None = None) -> list[str]:
    """Notes for one explanation (empty when its diagnostics look fine).

    ``method`` is the user-facing name, ``input_kind`` the kind it explained
    ('image', 'vector'; None: the notes of every method of that name), ``extras``
    the method's extras, ``base_value`` the baseline's output where the extras do
    not hold it (tabular IG).
    """
    checks = dict.fromkeys(
        note for e in REGISTRY.values()
        if e.name == method and input_kind in (None, e.input_kind) for note in e.notes
    )
    return [text for note in checks if (text := note(dict(extras), base_value))]


__all__ = ["IG_MAX_RELATIVE_DELTA", "IG_MIN_ABS_DELTA", "LIME_MIN_R2", "quality_notes"]
