"""The model worker's own loop: runs inside the confinement, one model per process.

Started by :mod:`xai_core.worker.client` as
``python -m xai_core.worker.main --fd N --scratch DIR [--confined NAME] [--landlock]``.
It reads requests from the socket ``N`` and answers each with ``{"ok": value}`` or
``{"error": {...}}``, streaming ``{"callback": ...}`` messages (progress) before it.
Requests (all values cross through :mod:`.wire`, never pickle):

* ``{"op": "open", "opener": "xai_core.loading.models:open_model", "args": [...], "kwargs": {...}}``
  loads the model; answers ``{"facts": {...}, "per_item_s": s}``: its public facts
  (name, spec, labels, capabilities...) and the seconds per item of one timed
  forward pass of its probe batch (None where it has none), the calibration of
  the client's per-batch deadline.
* ``{"op": "call", "name": "predict", "args": [...], "kwargs": {...}}`` a public method.
* ``{"op": "get", "name": "kind"}`` a public attribute (``{"callable": true}`` for methods).
* ``{"op": "service", "fn": "xai_core.service:explain", "args", "kwargs"}`` runs a
  whole service function on the loaded model (the fast path: one round trip).
* ``{"op": "randomize", "args": [layers_from_top, seed]}`` makes the model's
  randomised copy (the sanity check of :mod:`xai_core.metrics.randomization`) and
  holds it here beside the model; answers ``{"variant": id, "facts": {...}}``.
  A request with ``"variant": id`` addresses that copy instead of the model. The
  :data:`HELD_COPIES` newest copies are held (memory stays bounded); an older id
  is refused with a clear error.

While a request runs, every batch the model (or its randomised copy) runs is
announced with ``{"beat": n}`` (n items start now) and the end of the batches with
``{"beat": 0}``, so the client can hold each batch to a deadline that follows
from the model's own measured cost.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

HELD_COPIES = 2  # randomised copies of the model held at once (the newest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--confined", default="none")
    parser.add_argument("--landlock", action="store_true")
    args = parser.parse_args(argv)
    os.environ["HOME"] = os.environ["TMPDIR"] = args.scratch
    os.chdir(args.scratch)
    from xai_core.worker import sandbox

    if args.landlock:
        sandbox.apply_landlock(Path(args.scratch))
    sandbox.CONFINED = args.confined != "none"
    sock = socket.socket(fileno=args.fd)
    Server(sock).serve()
    return 0


class Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.model: Any = None
        self.variants: dict[int, Any] = {}  # randomised copies, made and kept here (their weights never leave)
        self.variant_id = 0
        self._send_lock = threading.Lock()  # beats and callbacks may come from a method's threads

    def send(self, message: dict) -> None:
        from xai_core.worker import wire

        with self._send_lock:
            wire.send(self.sock, message)

    def serve(self) -> None:
        from xai_core.worker import wire

        self.send({"hello": os.getpid()})
        while True:
            try:
                request = wire.receive(self.sock)
            except EOFError:
                return
            try:
                reply = {"ok": self.handle(request)}
            except BaseException as exc:  # noqa: BLE001 - every failure goes back as one message
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                reply = {"error": describe_error(exc)}
            try:
                self.send(reply)
            except wire.WireError as exc:
                self.send({"error": describe_error(exc)})

    def handle(self, request: dict) -> Any:
        from xai_core.worker import wire

        op = request.get("op")
        args = [self._callbacks(a) for a in request.get("args", [])]
        kwargs = {k: self._callbacks(v) for k, v in request.get("kwargs", {}).items()}
        if op == "open":
            opener = wire.resolve(request["opener"])
            self.model = opener(*args, **kwargs)
            per_item = calibrate(self.model)
            self.announce_batches(self.model)
            return {"facts": public_facts(self.model), "per_item_s": per_item}
        if self.model is None:
            raise RuntimeError("no model is open in this worker")
        if op == "randomize":
            while len(self.variants) >= HELD_COPIES:  # the oldest goes before a new one is made
                del self.variants[min(self.variants)]
            copy = self.model.randomized_copy(*args, **kwargs)
            self.announce_batches(copy)
            self.variant_id += 1
            self.variants[self.variant_id] = copy
            return {"variant": self.variant_id, "facts": public_facts(copy)}
        model = self._target(request.get("variant"))
        name = request.get("name", "")
        if op in ("call", "get") and (not isinstance(name, str) or name.startswith("_")):
            raise AttributeError(f"{name!r} is not a public attribute of the model")
        if op == "call":
            return getattr(model, name)(*args, **kwargs)
        if op == "get":
            value = getattr(model, name)
            return {"callable": True} if callable(value) else {"value": value}
        if op == "service":
            fn = wire.resolve(request["fn"])
            fn = getattr(fn, "__wrapped__", fn)
            return fn(model, *args, **kwargs)
        raise ValueError(f"unknown request {op!r}")

    def announce_batches(self, model: Any) -> None:
        """Make ``model`` announce each batch it runs: every batch loop of an adapter
        (forward, gradients, layer values, the fast engine) goes through its
        ``iter_batches``. Announced from this thread as the loop goes, never from a
        generator's clean-up (which could run in the middle of another message)."""
        inner = getattr(model, "iter_batches", None)
        if inner is None or getattr(inner, "announces", False):
            return

        def iter_batches(n: int, batch_size: int | None):
            for sl in inner(n, batch_size):
                self.send({"beat": max(1, sl.stop - sl.start)})
                yield sl
            self.send({"beat": 0})

        iter_batches.announces = True
        model.iter_batches = iter_batches

    def _target(self, variant: Any) -> Any:
        """The model a request addresses: the loaded one, or its randomised copy."""
        if variant is None:
            return self.model
        if variant not in self.variants:
            from xai_core.types import UnsupportedError

            raise UnsupportedError(f"this randomised copy of the model is gone (the worker holds the {HELD_COPIES} "
                                   "newest); make it again")
        return self.variants[variant]

    def _callbacks(self, value: Any) -> Any:
        from xai_core.worker import wire

        if isinstance(value, wire.CallbackRef):
            def relay(*cb_args: Any, _name: str = value.name) -> None:
                self.send({"callback": _name, "args": list(cb_args)})

            return relay
        return value


def calibrate(model: Any) -> float | None:
    """Seconds per item of one forward pass of the model's probe batch (after the
    adapter's own probe, so warmed up); None for a model without one."""
    probe = getattr(model, "probe_batch", None)
    run = getattr(model, "_run", None)
    if probe is None or run is None:
        return None
    try:
        parts = probe()
        if getattr(model, "max_batch", None) == 1:  # a program or signature traced for one item
            parts = [p[1:2] for p in parts]
        begun = time.perf_counter()
        run(parts)
        return (time.perf_counter() - begun) / max(1, len(parts[0]))
    except Exception:  # noqa: BLE001 - no calibration: only the per-call deadline holds
        return None


def public_facts(model: Any) -> dict[str, Any]:
    """Public attributes and properties of ``model`` that can cross the boundary."""
    from xai_core.worker import wire

    facts: dict[str, Any] = {}
    for name in dir(model):  # instance and class attributes, properties
        if name.startswith("_"):
            continue
        try:
            value = getattr(model, name)
            if callable(value):
                continue
            wire.encode(value, [])
        except Exception:  # noqa: BLE001 - what cannot cross stays behind (e.g. the module)
            continue
        facts[name] = value
    return facts


def describe_error(exc: BaseException) -> dict[str, str]:
    from xai_core.types import XaiError

    cls = type(exc)
    if isinstance(exc, XaiError):
        return {"type": f"{cls.__module__}:{cls.__qualname__}", "message": str(exc)}
    if isinstance(exc, MemoryError):
        return {"type": "memory", "message": "ran out of memory"}
    text = " ".join(str(exc).split())[:300] or cls.__name__
    print("".join(traceback.format_exception(exc))[-4000:], file=sys.stderr, flush=True)
    return {"type": "other", "message": f"{cls.__name__}: {text}"}


if __name__ == "__main__":
    sys.exit(main())
