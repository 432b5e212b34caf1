"""The confined model worker, seen from the caller's side.

:func:`open_remote` starts (or reuses) a worker process for one model file and
returns a :class:`RemoteModel`: it looks like a ModelAdapter (name, framework,
spec, labels, num_classes, capabilities, ``layers()``, ``predict()``,
``input_gradients()``, ``layer_activations_and_gradients()``...), each primitive a
generic call into the worker, so any code written against adapters runs through
it. Service functions marked :func:`runs_in_worker` (``service.explain``...) take
the fast path instead: the whole call runs in the worker with the caller's
arguments, and only the image in and the :class:`~xai_core.types.Explanation` out
cross the boundary (:mod:`.wire`: JSON + ``.npy``, never pickle). Progress
callbacks stream back while it runs.

Workers are cached by the file's identity and the load options (at most
``XAI_MAX_WORKERS``); one that dies, or that is killed for passing a deadline or
its memory limit (``XAI_WORKER_MEMORY_MB``, default half the machine's memory up
to 16 GB), is restarted on the next call, so other sessions keep working.

Deadlines follow the model's own cost (see docs/reliability.md):

* **load**: starting the worker, loading the file and the adapter's probe forward
  pass get :func:`load_deadline` seconds of the worker's CPU time (so a busy
  machine does not fail an honest load; at most ``LOAD_WALL_FACTOR`` times that
  in wall time): ``LOAD_FLOOR_S`` plus ``LOAD_S_PER_GB`` per GB of the file (a
  654-byte file gets 30 s, a 2 GB one 110 s), or ``XAI_LOAD_DEADLINE`` when set;
  never more than the per-call deadline.
* **each batch**: the worker times one forward pass of the probe batch after
  loading (seconds per item) and announces every batch it runs (``{"beat": n}``);
  a batch of ``n`` items must finish within ``floor + factor * n * per_item``
  (``XAI_BATCH_DEADLINE_FLOOR``, default 20 s; ``XAI_BATCH_DEADLINE_FACTOR``,
  default 20), so a model that turns 1000x slower than its calibration is
  stopped within seconds.
* **each call**, between batches (the method's own work): ``XAI_WORKER_DEADLINE``
  seconds without any message from the worker (default 600).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xai_core.adapters.base import ModelAdapter
from xai_core.inputs.uploads import background_dir
from xai_core.types import UnsupportedError, XaiError
from xai_core.worker import sandbox, wire
from xai_core.worker.ceiling import memory_ceiling

START_TIMEOUT_S = 60.0
MAX_WORKERS = int(os.environ.get("XAI_MAX_WORKERS", "4"))
SCRATCH_ROOT = Path(tempfile.gettempdir()) / "xai-workers"
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xai-worker-spawner")


class WorkerError(XaiError):
    """The model worker died, was stopped at a limit, or the model failed inside it."""


LOAD_FLOOR_S = 30.0  # CPU seconds for start + load + probe of a small model (TensorFlow imports in ~10)
LOAD_WALL_FACTOR = 2.0  # wall-clock cap of the load stage, in multiples of its CPU-second budget
LOAD_S_PER_GB = 40.0  # measured: a 554 MB VGG16 .pt2 loads and probes in 14.3 s (26 s/GB) on 2 busy cores


def default_deadline() -> float:
    return float(os.environ.get("XAI_WORKER_DEADLINE", "600"))


def load_deadline(size_bytes: int) -> float:
    """Seconds to start a worker, load a model file of ``size_bytes`` and run its
    probe forward pass: ``XAI_LOAD_DEADLINE`` when set, else 30 s + 40 s per GB;
    capped by the per-call deadline."""
    if os.environ.get("XAI_LOAD_DEADLINE"):
        seconds = float(os.environ["XAI_LOAD_DEADLINE"])
    else:
        seconds = LOAD_FLOOR_S + LOAD_S_PER_GB * size_bytes / 2**30
    return min(seconds, default_deadline())


def batch_deadline(items: int, per_item_s: float) -> float:
    """Seconds a batch of ``items`` may take for a model calibrated at ``per_item_s``:
    a floor plus a generous multiple (gradients, a busy machine, first-call warm-up)."""
    floor = float(os.environ.get("XAI_BATCH_DEADLINE_FLOOR", "20"))
    factor = float(os.environ.get("XAI_BATCH_DEADLINE_FACTOR", "20"))
    return floor + factor * items * per_item_s


def file_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def default_memory_bytes() -> int:
    if "XAI_WORKER_MEMORY_MB" in os.environ:
        return int(float(os.environ["XAI_WORKER_MEMORY_MB"]) * 2**20)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(min(total // 2, 16 * 2**30))


class Worker:
    """One worker process holding one model; calls are serialised by a lock."""

    def __init__(self, label: str, readable: list[Path], open_request: dict,
                 deadline_s: float | None = None, memory_bytes: int | None = None,
                 size_bytes: int = 0) -> None:
        self.label = label
        self.size_bytes = size_bytes  # the model file's, for the load deadline
        self.readable = readable
        self.open_request = open_request
        self._deadline_s = deadline_s
        self._memory_bytes = memory_bytes
        self.protection = sandbox.detect()
        self.facts: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._scratch: Path | None = None
        self.starts = 0
        self.timings: dict[str, float] = {}
        self.per_item_s: float | None = None  # one probe item's forward time, measured after loading
        self._batch: tuple[float, int] | None = None  # (end, items) of the batch the worker runs now

    @property
    def deadline_s(self) -> float:
        """Seconds per call: the worker's own setting, else XAI_WORKER_DEADLINE (600)."""
        return self._deadline_s or default_deadline()

    @property
    def load_deadline_s(self) -> float:
        """Seconds for start, load and probe: the worker's own setting caps it."""
        return min(load_deadline(self.size_bytes), self.deadline_s)

    @property
    def memory_bytes(self) -> int:
        return self._memory_bytes or default_memory_bytes()

    # -- life cycle ------------------------------------------------------------------
    def _spawn(self) -> None:
        SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix="w-", dir=SCRATCH_ROOT))
        parent, child = socket.socketpair()
        argv = [sys.executable, "-m", "xai_core.worker.main", "--fd", str(child.fileno()),
                "--scratch", str(self._scratch), "--confined", self.protection.mechanism]
        cmd = sandbox.wrap_command(argv, self._scratch, self.readable, self.protection)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2])]
                                              + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
                   HOME=str(self._scratch), TMPDIR=str(self._scratch),
                   # the worker's own limit, for what it plans and for the ceiling of its runs
                   XAI_MEMORY_MB=str(self.memory_bytes // 2**20), XAI_MEMORY_SETTING="XAI_WORKER_MEMORY_MB")
        log = open(self._scratch / "worker.log", "wb")  # noqa: SIM115 - kept by the child
        try:
            # started from one long-lived thread: bubblewrap's --die-with-parent is tied to
            # the thread that forks it, and a session's thread ends while others use the worker
            self._proc = _SPAWNER.submit(
                subprocess.Popen, cmd, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, env=env, preexec_fn=sandbox.limit_resources, start_new_session=True,
            ).result()
        finally:
            log.close()
            child.close()
        self._sock = parent
        self.starts += 1
        begun = time.perf_counter()
        # start, load and probe together: the worker's CPU seconds, so that a busy machine
        # does not fail an honest load, and at most LOAD_WALL_FACTOR times that in wall time
        budget = self.load_deadline_s
        wall_end = time.monotonic() + LOAD_WALL_FACTOR * budget
        try:
            self._await(min(START_TIMEOUT_S, wall_end - time.monotonic()), "load the model", budget, budget)
        except BaseException:
            self._kill()
            raise
        self.timings = {"start_s": time.perf_counter() - begun}
        try:
            opened = self._exchange(self.open_request, None, max(0.1, wall_end - time.monotonic()),
                                    "load the model", stage_s=budget, cpu_s=budget)
        except BaseException:
            self._kill()  # no half-ready worker stays behind
            raise
        self.facts = opened["facts"]
        self.per_item_s = opened.get("per_item_s")
        self.timings["load_s"] = time.perf_counter() - begun - self.timings["start_s"]

    def close(self) -> None:
        with self._lock:
            self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
        if self._sock is not None:
            self._sock.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._proc = self._sock = self._scratch = None
        self._batch = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- calls -----------------------------------------------------------------------
    def request(self, message: dict, callbacks: dict[str, Callable] | None = None,
                deadline_s: float | None = None) -> Any:
        with self._lock:
            if not self.alive:
                self._kill()
                self._spawn()
            return self._exchange(message, callbacks, deadline_s or self.deadline_s, "finish")

    def _exchange(self, message: dict, callbacks, deadline_s: float, what: str,
                  stage_s: float | None = None, cpu_s: float | None = None) -> Any:
        assert self._sock is not None
        try:
            wire.send(self._sock, message)
        except OSError:
            raise self._died(what) from None
        self._batch = None
        while True:
            reply = self._await(deadline_s, what, stage_s, cpu_s)
            if "beat" in reply:  # the worker starts a batch of n items (0: its batches are done)
                items = int(reply["beat"])
                self._batch = None
                if items > 0 and self.per_item_s:
                    self._batch = (time.monotonic() + batch_deadline(items, self.per_item_s), items)
                continue
            if "callback" in reply:
                fn = (callbacks or {}).get(reply["callback"])
                if fn is not None:
                    try:
                        fn(*reply.get("args", []))
                    except BaseException:
                        # the caller stops the run (the page's Stop button raises here):
                        # the busy worker cannot be interrupted, so it is ended; the
                        # next call starts a fresh one with the same model
                        self._kill()
                        raise
                continue
            if "ok" in reply:
                return reply["ok"]
            raise self._error(reply.get("error", {}))

    def _await(self, deadline_s: float, what: str, stage_s: float | None = None,
               cpu_s: float | None = None) -> dict:
        """The next message, watching the deadlines (this message's wall time, the
        worker's CPU seconds ``cpu_s`` when given, and the running batch's) and the
        memory limit meanwhile. ``stage_s`` is the deadline the message names (the
        whole load's, when ``deadline_s`` is what is left of it)."""
        assert self._sock is not None and self._proc is not None
        end = time.monotonic() + deadline_s
        while True:
            ready, _, _ = select.select([self._sock], [], [], 0.1)
            if ready:
                try:
                    return wire.receive(self._sock)
                except (EOFError, OSError, wire.WireError):
                    raise self._died(what) from None
            used = tree_rss(self._proc.pid)
            if used > self.memory_bytes:
                self._kill()
                raise WorkerError(
                    f"{self.label}: the model worker used more than {self.memory_bytes // 2**20} MB of "
                    "memory and was stopped; use a smaller batch size or budget "
                    "(XAI_WORKER_MEMORY_MB sets the limit)")
            now = time.monotonic()
            if self._batch is not None and now > self._batch[0]:
                items, per_item = self._batch[1], self.per_item_s or 0.0
                self._kill()
                raise WorkerError(
                    f"{self.label}: the model did not finish a batch of {items} within "
                    f"{batch_deadline(items, per_item):.0f} s, far beyond its measured {per_item * 1000:.3g} ms "
                    "per item, and its worker was stopped; lower the batch size or raise the limit "
                    "(XAI_BATCH_DEADLINE_FACTOR, XAI_BATCH_DEADLINE_FLOOR)")
            if now > end or (cpu_s is not None and tree_cpu_seconds(self._proc.pid) > cpu_s):
                self._kill()
                loading = what != "finish"
                hint = ("(--deadline-load, XAI_LOAD_DEADLINE)" if loading
                        else "lower the budget or raise the deadline (--deadline, XAI_WORKER_DEADLINE)")
                raise WorkerError(
                    f"{self.label}: the model worker did not {what} within its {stage_s or deadline_s:.3g} s "
                    + ("load deadline and was stopped; a model that loads slowly needs a longer one " + hint
                       if loading else f"deadline and was stopped; {hint}"))
            if self._proc.poll() is not None:
                raise self._died(what)

    def _died(self, what: str) -> WorkerError:
        code = self._proc.wait() if self._proc is not None else None
        tail = self._log_tail()
        self._kill()
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
        if code == 137 or code == -signal.SIGKILL:
            how = "was killed (SIGKILL: out of memory, or stopped from outside)"
        elif code == -signal.SIGXCPU or code == 152:
            how = "used up its CPU-time limit"
        return WorkerError(f"{self.label}: the model worker {how} before it could {what}"
                           + (f" ({tail})" if tail else "") + "; the next request starts a fresh one")

    def _log_tail(self) -> str:
        if self._scratch is None:
            return ""
        try:
            lines = (self._scratch / "worker.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""

    def _error(self, info: dict) -> XaiError:
        kind, text = info.get("type", "other"), info.get("message", "the model failed")
        if kind == "memory":
            return WorkerError(f"{self.label}: the model ran out of memory in its worker; use a smaller "
                               "batch size or budget")
        if kind != "other":
            try:
                cls = wire.resolve(kind)
                if isinstance(cls, type) and issubclass(cls, XaiError):
                    return cls(text)
            except (wire.WireError, ImportError, AttributeError):
                pass
        return WorkerError(f"{self.label}: the model failed in its worker: {text}")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, all threads) used by ``pid`` and its living descendants."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return total / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in bytes (0 when gone)."""
    total, todo, seen = 0, [pid], set()
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * page
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


# -- the pool ------------------------------------------------------------------------
_POOL: OrderedDict[str, Worker] = OrderedDict()
_POOL_LOCK = threading.Lock()


def file_identity(path: Path) -> str:
    """Cheap identity of a file or folder: paths, sizes and modification times."""
    digest = hashlib.sha256()
    items = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    sidecar = path.with_suffix(".json")
    items += [sidecar] if sidecar != path and sidecar.is_file() else []
    for item in items:
        st = item.stat()
        digest.update(f"{item.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def open_remote(opener: str, path: Path, label: str, *args: Any, **kwargs: Any) -> RemoteModel:
    """A :class:`RemoteModel` for the model that ``opener(path, *args, **kwargs)`` returns
    inside a (new or cached) worker. ``opener`` is ``"xai_core.module:function"``."""
    path = Path(path).resolve()
    options = wire.encode([opener, args, kwargs], [])
    backgrounds = background_dir()  # bound into the worker, so part of what it is
    identity = [file_identity(path), options, sandbox.detect().mechanism, str(backgrounds)]
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    request = {"op": "open", "opener": opener, "args": [str(path), *args], "kwargs": kwargs}
    # the file or folder and its model.json sidecar beside it; uploaded background sets
    backgrounds.mkdir(parents=True, exist_ok=True, mode=0o700)
    readable = [path.parent, backgrounds]
    with _POOL_LOCK:
        worker = _POOL.get(key)
        if worker is None:
            worker = Worker(label, readable, request, size_bytes=file_size(path))
            _POOL[key] = worker
        _POOL.move_to_end(key)
        evicted = [_POOL.popitem(last=False)[1] for _ in range(max(0, len(_POOL) - MAX_WORKERS))]
    for old in evicted:
        old.close()
    try:
        worker.request({"op": "get", "name": "name"})  # starts it (and loads the model) if needed
    except XaiError:
        with _POOL_LOCK:
            if _POOL.get(key) is worker:
                del _POOL[key]
        worker.close()
        raise
    return RemoteModel(worker)


def close_all() -> None:
    """Stop every cached worker (also at interpreter exit, so scratch folders go)."""
    with _POOL_LOCK:
        workers = list(_POOL.values())
        _POOL.clear()
    for worker in workers:
        worker.close()


atexit.register(close_all)


class RemoteModel(ModelAdapter):
    """A model living in a worker process, with the adapter interface.

    Facts (name, inputs, labels, capabilities, output kind...) are copied at load;
    the primitives below are calls into the worker; any other adapter method runs
    here on top of :meth:`_run`, which is itself a call into the worker, so methods
    added to the adapter base later keep working through the proxy."""

    engine = "worker"

    def __init__(self, worker: Worker, variant: int | None = None, facts: dict[str, Any] | None = None) -> None:
        self._worker = worker
        self._variant = variant  # a randomised copy held in the worker (None: the model itself)
        facts = worker.facts if facts is None else facts
        for name, value in facts.items():
            if not isinstance(getattr(type(self), name, None), property):
                self.__dict__[name] = value
        self._num_classes = facts.get("num_classes", 0)
        self._output_kind = facts.get("output_kind", "probability")
        self._raw_width = 1 if self._output_kind in ("sigmoid", "score") else self._num_classes

    @property
    def protection(self) -> sandbox.Protection:
        return self._worker.protection

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self._worker.facts.get("capabilities", ()))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        answer = self._worker.request({"op": "get", "name": name, "variant": self._variant})
        if answer.get("callable"):
            return functools.partial(self._call, name)
        return answer.get("value")

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        callbacks = {k: v for k, v in kwargs.items() if callable(v)}
        kwargs = {k: (wire.CallbackRef(k) if callable(v) else v) for k, v in kwargs.items()}
        return self._worker.request({"op": "call", "name": name, "args": list(args), "kwargs": kwargs,
                                     "variant": self._variant}, callbacks)

    def run_service(self, fn: str, args: tuple, kwargs: dict) -> Any:
        """Run the service function ``fn`` ("module:qualname") on this model in the worker."""
        callbacks = {k: v for k, v in kwargs.items() if callable(v)}
        kwargs = {k: (wire.CallbackRef(k) if callable(v) else v) for k, v in kwargs.items()}
        return self._worker.request({"op": "service", "fn": fn, "args": list(args), "kwargs": kwargs,
                                     "variant": self._variant}, callbacks)

    # the primitives: one call into the worker each, arguments passed as given
    def _run(self, parts):
        return self._call("outputs", self.join(list(parts)))

    def outputs(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("outputs", *args, **kwargs)

    logits_or_probs = outputs

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("predict", *args, **kwargs)

    def explained_scores(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("explained_scores", *args, **kwargs)

    def target_scores(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("target_scores", *args, **kwargs)

    def gradients(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("gradients", *args, **kwargs)

    def input_gradients(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("input_gradients", *args, **kwargs)

    def layer_activations_and_gradients(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("layer_activations_and_gradients", *args, **kwargs)

    def layers(self):
        if self.__dict__.get("_layers") is None:
            self._layers = self._call("layers")
        return self._layers

    def default_cam_layer(self):
        return self.default_cam_choice()[0]

    def default_cam_choice(self):
        """(layer, why): the worker's own rule, whose class-signal probe runs the model there."""
        if "_default_cam_choice" not in self.__dict__:
            self._default_cam_choice = tuple(self._call("default_cam_choice"))
        return self._default_cam_choice

    def resolve_layer(self, layer):
        """A layer by name or index, resolved by the model in the worker (the index
        rules are the framework's: model.layers, leaf modules)."""
        if layer is None or str(layer).strip() == "":
            return None
        return self._call("resolve_layer", layer)

    # the randomisation sanity check: the copy is made and held inside the worker
    def weight_layers(self) -> list[str]:
        if self.__dict__.get("_weight_layers") is None:  # asked on every page rerun: once per model
            self._weight_layers = self._call("weight_layers")
        return self._weight_layers

    def randomized_copy(self, layers_from_top: int, seed: int) -> RemoteModel:
        """A handle on the model's randomised copy, made inside the worker (its
        weights never cross the boundary); the worker holds the two newest copies."""
        answer = self._worker.request({"op": "randomize", "args": [int(layers_from_top), int(seed)]})
        return RemoteModel(self._worker, answer["variant"], answer["facts"])

    @contextmanager
    def explaining(self, what: str | None) -> Iterator[None]:
        """Only the model as it is; service.explain(..., output=...) runs the other
        choice inside the worker."""
        if what not in (None, "") and what != self.explains:
            raise UnsupportedError(f"{self.name} runs in the model worker: ask service.explain for output={what!r}")
        yield

    def close(self) -> None:
        if self._variant is None:  # a randomised copy's handle leaves the worker to its model
            self._worker.close()


def runs_in_worker(fn: Callable) -> Callable:
    """Mark a service function whose first argument is a model: when that model is a
    :class:`RemoteModel`, the whole call runs inside its worker; otherwise it runs
    here under the process's memory ceiling (:mod:`.ceiling`)."""

    @functools.wraps(fn)
    def wrapper(model: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(model, RemoteModel):
            return model.run_service(f"{fn.__module__}:{fn.__qualname__}", args, kwargs)
        with memory_ceiling(str(getattr(model, "name", "the model"))):
            return fn(model, *args, **kwargs)

    return wrapper


__all__ = ["RemoteModel", "Worker", "WorkerError", "close_all", "open_remote", "runs_in_worker"]
