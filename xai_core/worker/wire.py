"""What crosses the worker boundary: JSON plus raw ``.npy`` arrays, never a pickle.

:func:`encode` walks a value generically: dataclasses field by field and
enumeration members by value (only classes defined in ``xai_core``, rebuilt by
name on the other side), dicts, lists,
tuples, sets, NumPy scalars and arrays at any depth. Arrays travel as ``.npy``
bytes read back with ``allow_pickle=False``, so an object array cannot cross. A new
field on :class:`~xai_core.types.Explanation` therefore crosses without changes here.

A message on the socket is ``[u32 json length][json][u32 array count]`` followed by
``[u64 length][.npy bytes]`` per array.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import io
import json
import socket
import struct
from typing import Any

import numpy as np

MAX_JSON_BYTES = 64 * 1024**2
MAX_ARRAY_BYTES = 8 * 1024**3


@dataclasses.dataclass(frozen=True)
class CallbackRef:
    """Stands for a callable argument (a progress callback): the worker sends
    ``{"callback": name, "args": [...]}`` messages that the caller relays to it."""

    name: str


class WireError(Exception):
    """A value that cannot cross the boundary, or a malformed message."""


def encode(value: Any, arrays: list[bytes]) -> Any:
    """``value`` -> a JSON-ready structure; arrays are appended to ``arrays``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise WireError(f"an array of Python objects ({value.dtype}) cannot cross the worker boundary")
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(value), allow_pickle=False)
        arrays.append(buf.getvalue())
        return {"__nd__": len(arrays) - 1}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [encode(v, arrays) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, arrays) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"__set__": [encode(v, arrays) for v in value], "frozen": isinstance(value, frozenset)}
    if isinstance(value, dict):
        return {"__map__": [[encode(k, arrays), encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, enum.Enum):
        cls = type(value)
        _check_module(cls.__module__)
        return {"__enum__": f"{cls.__module__}:{cls.__qualname__}", "value": encode(value.value, arrays)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        _check_module(cls.__module__)
        fields = {f.name: encode(getattr(value, f.name), arrays) for f in dataclasses.fields(value)}
        return {"__dc__": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise WireError(f"a {type(value).__name__} cannot cross the worker boundary")


def decode(value: Any, arrays: list[bytes]) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(value, list):
        return [decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__nd__" in value:
        return np.lib.format.read_array(io.BytesIO(arrays[int(value["__nd__"])]), allow_pickle=False)
    if "__tuple__" in value:
        return tuple(decode(v, arrays) for v in value["__tuple__"])
    if "__set__" in value:
        items = [decode(v, arrays) for v in value["__set__"]]
        return frozenset(items) if value.get("frozen") else set(items)
    if "__map__" in value:
        return {_hashable(decode(k, arrays)): decode(v, arrays) for k, v in value["__map__"]}
    if "__enum__" in value:
        cls = resolve(value["__enum__"])
        if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
            raise WireError(f"{value['__enum__']} is not an enumeration")
        return cls(decode(value["value"], arrays))
    if "__dc__" in value:
        cls = resolve(value["__dc__"])
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise WireError(f"{value['__dc__']} is not a dataclass")
        data = {k: decode(v, arrays) for k, v in value["fields"].items()}
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        obj = cls(**{k: v for k, v in data.items() if k in init})
        for key, item in data.items():
            if key not in init:
                object.__setattr__(obj, key, item)
        return obj
    raise WireError(f"unknown tagged value {sorted(value)[:3]}")


def resolve(name: str) -> Any:
    """``"xai_core.mod:Qual.name"`` -> the object; only names inside ``xai_core``."""
    module_name, _, qualname = name.partition(":")
    _check_module(module_name)
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        if part.startswith("_") and part != "__wrapped__":
            raise WireError(f"{name}: private names cannot be called across the boundary")
        obj = getattr(obj, part)
    return obj


def _check_module(module_name: str) -> None:
    if module_name != "xai_core" and not module_name.startswith("xai_core."):
        raise WireError(f"{module_name}: only xai_core types and functions cross the worker boundary")


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def send(sock: socket.socket, message: Any) -> None:
    """Encode ``message`` and write it as one frame."""
    arrays: list[bytes] = []
    body = json.dumps(encode(message, arrays)).encode()
    parts = [struct.pack("<I", len(body)), body, struct.pack("<I", len(arrays))]
    for blob in arrays:
        parts.append(struct.pack("<Q", len(blob)))
        parts.append(blob)
    small = sum(map(len, arrays)) < 2**24
    if small:
        sock.sendall(b"".join(parts))
    else:  # large arrays: no extra copy of the whole frame
        for part in parts:
            sock.sendall(part)


def receive(sock: socket.socket) -> Any:
    """Read one frame and decode it; EOFError when the other side is gone."""
    (length,) = struct.unpack("<I", _read(sock, 4))
    if length > MAX_JSON_BYTES:
        raise WireError("message too large")
    body = json.loads(_read(sock, length))
    (count,) = struct.unpack("<I", _read(sock, 4))
    arrays = []
    for _ in range(count):
        (size,) = struct.unpack("<Q", _read(sock, 8))
        if size > MAX_ARRAY_BYTES:
            raise WireError("array too large")
        arrays.append(_read(sock, size))
    return decode(body, arrays)


def _read(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("the other side closed the connection")
        got += k
    return bytes(buf)
