"""A memory ceiling for runs in the caller's own process (zoo models, trusted files).

The confined worker is watched from outside (:mod:`.client`); a run in the
server's or the command line's own process has no outside. ``RLIMIT_AS`` does not
fit: TensorFlow and oneDNN reserve far more address space than they touch, so an
honest Keras run would fail at once. Instead a watchdog thread samples the
process's resident memory (``/proc/self/statm``) every ``POLL_S`` seconds while a
run is inside :func:`memory_ceiling`; past the ceiling it raises
:class:`MemoryCeilingError` in the run's thread (``PyThreadState_SetAsyncExc``: at
the run's next Python step, so after the framework call in progress returns). The
run ends with one line and its arrays are freed; the process and other sessions
go on.

The ceiling is ``XAI_MEMORY_MB`` (default: the worker's, half the machine's memory
up to 16 GB). Resident memory is the whole process's, so in a server with several
sessions the run that crosses the line is the one stopped.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from xai_core.adapters.runtime import memory_limit_bytes as ceiling_bytes
from xai_core.adapters.runtime import memory_limit_setting, resident_bytes
from xai_core.types import XaiError

POLL_S = 0.2
_active = threading.local()  # .watch: the memory_ceiling this thread runs under


class MemoryCeilingError(XaiError):
    """The run used more memory than the process's ceiling and was stopped."""

    text = "the run used more memory than its ceiling and was stopped"

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or (type(self).text,)))


class memory_ceiling:  # noqa: N801 - used as a function: with memory_ceiling(label): ...
    """Stop the calling thread's run with :class:`MemoryCeilingError` when the
    process's resident memory passes ``limit`` bytes (default :func:`ceiling_bytes`).
    Nested uses inside one thread keep the outermost watch. The error that leaves
    is a fresh one with no link to the run's frames, so their arrays are freed."""

    def __init__(self, label: str = "the run", limit: int | None = None) -> None:
        self.label = label
        self.limit = limit
        self.outer = False

    def __enter__(self) -> memory_ceiling:
        if current_watch() is not None:
            return self
        self.outer = True
        limit = ceiling_bytes() if self.limit is None else int(self.limit)
        self.targets = targets = {threading.get_ident()}  # the threads a breach stops (see joining)
        self.done = done = threading.Event()
        self.lock = lock = threading.Lock()
        label = self.label
        _active.watch = self

        def watch() -> None:
            while not done.is_set():  # checked at once (a process already past it starts no run), then polled
                used = resident_bytes()
                if used <= limit:
                    done.wait(POLL_S)
                    continue
                with lock:
                    if done.is_set():
                        return
                    text = (f"{label}: used {used // 2**20} MB of memory, more than its ceiling of "
                            f"{limit // 2**20} MB, and was stopped; use a smaller batch size or budget "
                            f"({memory_limit_setting()} sets the ceiling)")
                    error = type("MemoryCeilingError", (MemoryCeilingError,), {"text": text})
                    for target in targets:
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(error))
                    return

        self.watcher = threading.Thread(target=watch, name="xai-memory-ceiling", daemon=True)
        self.watcher.start()
        return self

    def __exit__(self, kind, value, trace) -> bool:
        if not self.outer:
            return False
        _active.watch = None
        with self.lock:
            self.done.set()
        self.watcher.join()
        if not isinstance(value, MemoryCeilingError):
            return False
        text = str(value)
        value.__traceback__ = None  # its frames hold the run's arrays: let them go now
        del value, trace
        raise MemoryCeilingError(text) from None


def current_watch() -> memory_ceiling | None:
    """The calling thread's active watch (None outside :class:`memory_ceiling`)."""
    return getattr(_active, "watch", None)


@contextmanager
def joining(watch: memory_ceiling | None) -> Iterator[None]:
    """Run this thread under another thread's ``watch`` (:func:`current_watch`):
    its own ``memory_ceiling`` uses start no watcher, and a breach stops it with
    the watching thread. A set's chunk explains its items in one thread each, and
    one watcher thread per item (started, polled, joined) cost more than the
    chunk's arrays. ``None``: nothing to join (the thread watches for itself)."""
    if watch is None or current_watch() is not None:
        yield
        return
    me = threading.get_ident()
    with watch.lock:
        if watch.done.is_set():
            raise MemoryCeilingError(f"{watch.label}: ended before this part of it started")
        watch.targets.add(me)
    _active.watch = watch
    try:
        yield
    finally:
        _active.watch = None
        with watch.lock:
            watch.targets.discard(me)


__all__ = ["MemoryCeilingError", "ceiling_bytes", "current_watch", "joining", "memory_ceiling", "resident_bytes"]
