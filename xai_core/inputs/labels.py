"""Class-name lists: user label files and the ImageNet names shipped with torchvision."""

from __future__ import annotations

import json
from pathlib import Path

from xai_core.types import InputError

MAX_LABELS_BYTES = 4 * 1024**2  # ImageNet-21k's names are under 0.5 MB


def read_labels(source: str | Path | bytes, name: str | None = None) -> list[str]:
    """A labels file -> list of names.

    Accepts one label per line, a JSON list, or a JSON object mapping index -> name
    (``{"0": "cat", ...}``, as Keras/TF label maps are written).
    """
    if isinstance(source, (bytes, bytearray)):
        text_bytes, label = bytes(source), name or "labels file"
    else:
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise InputError(f"{label}: no such labels file")
        if path.stat().st_size > MAX_LABELS_BYTES:
            raise InputError(f"{label}: larger than {MAX_LABELS_BYTES // 2**20} MB; is it a labels file?")
        text_bytes = path.read_bytes()
    if len(text_bytes) > MAX_LABELS_BYTES:
        raise InputError(f"{label}: larger than {MAX_LABELS_BYTES // 2**20} MB; is it a labels file?")
    try:
        text = text_bytes.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{label}: labels must be UTF-8 text") from None
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{label}: the labels file is empty")
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InputError(f"{label}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
        if isinstance(data, list):
            return [str(v) for v in data]
        if isinstance(data, dict):
            try:
                items = sorted((int(k), v) for k, v in data.items())
            except ValueError:
                raise InputError(f"{label}: JSON object keys must be class indices") from None
            if [k for k, _ in items] != list(range(len(items))):
                raise InputError(f"{label}: class indices must run 0..{len(items) - 1} without gaps")
            return [v[-1] if isinstance(v, list) else str(v) for _, v in items]
        raise InputError(f"{label}: expected a JSON list or object of labels")
    return [line.strip() for line in stripped.splitlines()]


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names, from torchvision's weight metadata (offline)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
