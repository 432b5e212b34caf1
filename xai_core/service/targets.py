"""Which class or output a user means by a target: an index, a name, or nothing
(the predicted one). Shared by images and rows."""

from __future__ import annotations

import numpy as np

from xai_core.types import InputError


def resolve_class(
    target: int | str | None, names: list[str], default: int, what: tuple[str, str] = ("class", "classes")
) -> int:
    """The index a user's target means: None/"" -> ``default``; an int (or its digits)
    -> that index; text -> the name matching exactly (case-insensitive), else the
    one name containing it. ``what`` is the (singular, plural) noun for errors."""
    one, many = what
    if target is None or (isinstance(target, str) and not target.strip()):
        return default
    n = len(names)
    if isinstance(target, (int, np.integer)) or str(target).strip().lstrip("-").isdigit():
        index = int(target)
        if not 0 <= index < n:
            raise InputError(f"target {index} is out of range; the model has {n} {many} (0..{n - 1})")
        return index
    text = str(target).strip().lower()
    lowered = [name.lower() for name in names]
    if text in lowered:
        return lowered.index(text)
    matches = [i for i, name in enumerate(lowered) if text in name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        listed = f"; {many}: {', '.join(names)}" if n <= 20 else ""
        raise InputError(f"no {one} named {target!r}{listed}")
    shown = ", ".join(names[i] for i in matches[:6])
    raise InputError(f"{target!r} matches several {many} ({shown}...); give the index or the exact name")
