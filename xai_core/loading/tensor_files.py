"""Checks on a ``.safetensors`` file before anything is built from it.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of
JSON (``{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
"__metadata__": {...}}``) and the raw tensor bytes. A file that lies (a header
longer than the file, offsets outside the data or overlapping, a span that does
not match its shape and dtype) is refused with one line, and nothing past the
header is read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from xai_core.types import ModelLoadError

MAX_HEADER_BYTES = 100 * 2**20
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}


def safetensors_elements(path: Path, label: str | None = None) -> dict[str, tuple[int, ...]]:
    """The tensors' shapes, by name, after checking the header against the file:
    one clear :class:`ModelLoadError` for a header or offsets that lie."""
    label = label or path.name
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelLoadError(f"{label}: not a safetensors file (shorter than its 8-byte header length)")
        n = int.from_bytes(head, "little")
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise ModelLoadError(f"{label}: refused, the safetensors header claims {n} bytes but the file holds "
                                 f"{max(size - 8, 0)} after its length field; the file is corrupt or forged")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ModelLoadError(f"{label}: refused, the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{label}: refused, the safetensors header is not a JSON object")
    data = size - 8 - n
    shapes: dict[str, tuple[int, ...]] = {}
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise ModelLoadError(f"{label}: refused, tensor {name!r} has no description in the header")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise ModelLoadError(f"{label}: refused, tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise ModelLoadError(f"{label}: refused, tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ModelLoadError(f"{label}: refused, tensor {name!r} has invalid data offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= data:
            raise ModelLoadError(f"{label}: refused, tensor {name!r} claims bytes {begin}..{end} but the file "
                                 f"holds {data} bytes of tensor data; the file is truncated or forged")
        if end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise ModelLoadError(f"{label}: refused, tensor {name!r} of shape {shape} ({dtype}) needs "
                                 f"{math.prod(shape) * DTYPE_BYTES[dtype]} bytes but its offsets span {end - begin}")
        shapes[name] = tuple(shape)
        spans.append((begin, end, name))
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:], strict=False):
        if begin < end:
            raise ModelLoadError(f"{label}: refused, tensors {first!r} and {second!r} overlap in the file")
    if not shapes:
        raise ModelLoadError(f"{label}: the safetensors file holds no tensors")
    return shapes


def element_count(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in shapes.values())
