"""The Ray engine: a set's chunks run on Ray actors, one model replica per actor,
on one machine or a multi-node cluster, surviving lost workers.

* **Data**: each actor opens the model once from its
  :class:`~xai_core.sets.model.ModelRef` and reads the items itself: a set opened
  from a path travels as its :attr:`~xai_core.sets.data.LabelledSet.recipe` (the
  path and options) and every worker opens it on its own node, checking it is the
  same set (its fingerprint); every node needs the set and this project at the
  same path. Only an uploaded set (bytes, no path) is sent once through Ray's
  object store. Work items are lists of item indices.
* **Replicas**: ``workers`` actors of one CPU each, spread over the nodes
  (``SPREAD``); on a cluster with GPUs each actor takes ``gpus_per_worker`` GPUs
  (default one), so there is one replica per GPU. Asking for more workers than
  the cluster has free CPUs (or GPUs) starts as many as fit and says so.
* **Address**: ``HOST:PORT`` (or ``ray://HOST:PORT``) is checked with a plain TCP
  connection first, so a wrong or unreachable address fails in seconds with one
  line instead of Ray's minutes of silent retries; ``auto`` finds a cluster
  started on this machine. Without an address a local Ray instance with
  ``workers`` CPUs (at most this machine's) is started and shut down on close.
* **Faults**: each chunk is a pure function of the model, the set and the seed.
  When an actor dies (its process killed, its node lost) its chunks are run again
  on the others and a replacement is started where the cluster has room; a
  result is taken once per chunk, so no item is lost or duplicated and the
  results equal an uninterrupted run. Only when every worker is gone does the run
  stop (the command's written items are kept and a rerun resumes from them).
* **Trust**: a model file opens in the confined worker on each node, as it does
  locally (:func:`~xai_core.loading.models.open_model`); the Ray workers
  themselves run this project's code with the rights of whoever started the
  cluster, so only join clusters you control.

Results come back in chunk order. A call to a worker carries up to
``CHUNKS_PER_CALL`` chunks (fewer when the set is small, so every worker gets
work); at most ``WINDOW_PER_WORKER`` calls per worker are in flight or waiting to
be yielded, so memory stays flat in the set's size.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from xai_core.types import InputError, XaiError

ROOT = Path(__file__).resolve().parents[2]
WINDOW_PER_WORKER = 2
# chunks sent to a worker in one call, at most: each call costs the driver ~5 ms
# (submit, wait, fetch), which on cheap models was a third of a chunk's work and
# kept two nodes from running faster than one
CHUNKS_PER_CALL = 8
CONNECT_TIMEOUT_S = 3.0
REPLACE_WAIT_S = 10.0


class _Replica:
    """One model replica on a Ray worker, reading the set on its own node."""

    def __init__(self, ref, data, fingerprint: str) -> None:
        from xai_core.sets.data import reopen_set

        self.model = ref.open()
        self.dataset = reopen_set(data, fingerprint) if isinstance(data, dict) else data

    def where(self) -> tuple[str, int]:
        import ray

        return ray.util.get_node_ip_address(), os.getpid()

    def run(self, unit: Callable[..., Any], group: list[list[int]], *args: Any) -> list:
        return [unit(self.model, self.dataset, indices, *args) for indices in group]


def check_address(address: str) -> None:
    """Fail fast (one line) unless ``HOST:PORT`` accepts a TCP connection."""
    if address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"--address {address!r}: give HOST:PORT of the cluster's head (ray start --head prints it; "
                         "the default port is 6379), or auto for a cluster started on this machine")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"no Ray cluster answers at {address} ({reason}); start one with ray start --head, or "
                         "check the address and the firewall") from None


def _init_error(address: str | None, exc: BaseException) -> InputError:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    hint = ""
    if "auth" in str(exc).lower() or "token" in str(exc).lower():
        hint = ("; the cluster uses token authentication: set RAY_AUTH_MODE=token and the cluster's token "
                "(~/.ray/auth_token or RAY_AUTH_TOKEN) here too")
    return InputError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {text}{hint}")


class RayEngine:
    name = "ray"

    def __init__(self, model, dataset, *, workers: int = 2, address: str | None = None,
                 gpus_per_worker: float | None = None, say: Callable[[str], None] | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise InputError("the ray engine needs Ray: pip install 'ray==2.60.0' (or use --engine local)") from None
        if model.ref is None:
            raise InputError("the ray engine needs a model opened from a zoo name or file (a ModelRef)")
        if workers < 1:
            raise InputError("the ray engine needs at least 1 worker")
        self._ray = ray
        self._say = say or (lambda text: None)
        self.notes: list[str] = []
        self._started = False
        env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        if not ray.is_initialized():
            if address:
                check_address(address)
            try:
                if address:
                    ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
                else:  # a local instance: at most one worker per CPU of this machine
                    ray.init(num_cpus=min(int(workers), os.cpu_count() or 1), num_gpus=None, include_dashboard=False, log_to_driver=False,
                             object_store_memory=200 * 1024**2, runtime_env={"env_vars": env})
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; all mean "no cluster"
                raise _init_error(address, exc) from None
            self._started = True
        free = ray.available_resources()
        cpus, gpus = int(free.get("CPU", 0) + 1e-9), free.get("GPU", 0.0)
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if gpus >= 1 else 0.0
        self._options: dict[str, Any] = {"num_cpus": 1, "scheduling_strategy": "SPREAD"}
        fit = cpus
        if gpus_per_worker:
            self._options["num_gpus"] = float(gpus_per_worker)
            fit = min(fit, int(gpus / gpus_per_worker + 1e-9))
        if fit < 1:
            self.close()
            raise InputError(f"the Ray cluster has no room for a worker ({cpus} free CPU(s), {gpus:g} free GPU(s)); "
                             "wait for other jobs or add nodes")
        if fit < workers:
            self._note(f"{workers} workers asked for, the cluster has room for {fit} "
                       f"({cpus} free CPU(s){f', {gpus:g} GPU(s)' if gpus_per_worker else ''}): starting {fit}")
        self.workers = min(int(workers), fit)
        self._ref, self._fingerprint = model.ref, dataset.fingerprint()
        self._data = dataset.recipe if dataset.recipe is not None else ray.put(dataset)
        self._replica = ray.remote(_Replica)
        self._actors: dict[int, Any] = {}
        self._labels: dict[int, str] = {}
        self._pids: dict[int, int] = {}
        self._done: dict[int, int] = {}
        self._next_id = 0
        for _ in range(self.workers):
            self._spawn()
        self._check_started()

    # -- workers ---------------------------------------------------------------------
    def _note(self, text: str) -> None:
        self.notes.append(text)
        self._say(text)

    def _spawn(self) -> int:
        self._next_id += 1
        wid = self._next_id
        self._actors[wid] = self._replica.options(**self._options).remote(self._ref, self._data, self._fingerprint)
        self._labels[wid] = f"w{wid}"
        self._done.setdefault(wid, 0)
        return wid

    def _check_started(self) -> None:
        """Wait for the replicas to open the model and the set: a failure there (the
        set missing on a node, a model that does not open) is one clear error."""
        ray = self._ray
        calls = {wid: a.where.remote() for wid, a in self._actors.items()}
        for wid, call in calls.items():
            try:
                ip, pid = ray.get(call)
            except ray.exceptions.RayActorError as exc:
                cause = getattr(exc, "cause", None) or exc
                inner = getattr(cause, "cause", None)
                self.close()
                if isinstance(inner, XaiError):
                    raise type(inner)(f"a Ray worker could not start: {inner}") from None
                raise InputError(f"a Ray worker could not start: {str(cause).strip().splitlines()[-1][:300]}") from None
            self._labels[wid] = f"w{wid}@{ip}"
            self._pids[wid] = pid

    def pids(self) -> dict[str, int]:
        """Each live worker's process id (for tests and operators)."""
        return {self._labels[w]: self._pids[w] for w in self._actors if w in self._pids}

    def per_worker(self) -> dict[str, int]:
        """Items each worker (``wN@node``) has finished in this engine's runs."""
        return {self._labels[w]: n for w, n in self._done.items()}

    def _replace(self, wid: int) -> None:
        """Drop a dead worker; start another where the cluster has room within
        REPLACE_WAIT_S (a lost node's CPUs are gone: then the run goes on with fewer)."""
        ray = self._ray
        self._actors.pop(wid, None)
        lost = self._labels.get(wid, f"w{wid}")
        deadline = time.monotonic() + REPLACE_WAIT_S
        while time.monotonic() < deadline:
            if ray.available_resources().get("CPU", 0) >= 1:
                new = self._spawn()
                ready, _ = ray.wait([self._actors[new].where.remote()], timeout=max(1.0, deadline - time.monotonic()))
                if ready:
                    try:
                        ip, pid = ray.get(ready[0])
                    except ray.exceptions.RayError:
                        self._actors.pop(new, None)
                        break
                    self._labels[new] = f"w{new}@{ip}"
                    self._pids[new] = pid
                    self._note(f"worker {lost} was lost; its chunks run again, {self._labels[new]} replaces it")
                    return
                ray.kill(self._actors.pop(new))
                break
            time.sleep(0.5)
        if not self._actors:
            raise InputError("every Ray worker was lost; the items written so far are kept and a rerun resumes "
                             "from them")
        self._note(f"worker {lost} was lost and the cluster has no room for another; its chunks run again on the "
                   f"{len(self._actors)} left")

    # -- work ------------------------------------------------------------------------
    def run(self, unit: Callable[..., Any], chunks: Iterable[list[int]], *args: Any) -> Iterator:
        """``unit(model, dataset, indices, *args)`` on every chunk, on the workers; the
        results in chunk order. A chunk whose worker dies runs again on another."""
        ray = self._ray
        lost_errors = (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError,
                       getattr(ray.exceptions, "ActorUnavailableError", ray.exceptions.RayActorError))
        shared = [ray.put(a) for a in args]
        chunks = list(chunks)
        # calls of several chunks, while every worker still gets at least two calls
        per_call = max(1, min(CHUNKS_PER_CALL, len(chunks) // (2 * max(1, len(self._actors)))))
        source = enumerate(chunks[i:i + per_call] for i in range(0, len(chunks), per_call))
        retry: deque[tuple[int, list[list[int]]]] = deque()
        pending: dict[Any, tuple[int, list[list[int]], int]] = {}
        load = {w: 0 for w in self._actors}
        finished: dict[int, Any] = {}
        next_out = 0
        exhausted = False
        while True:
            window = WINDOW_PER_WORKER * max(1, len(self._actors))
            for w in list(self._actors):
                load.setdefault(w, 0)
            while True:
                free = [w for w in self._actors if load[w] < WINDOW_PER_WORKER]
                if not free:
                    break
                if retry:
                    seq, indices = retry.popleft()
                elif not exhausted and len(pending) + len(finished) < window:
                    try:
                        seq, indices = next(source)
                    except StopIteration:
                        exhausted = True
                        continue
                else:
                    break
                w = min(free, key=lambda k: load[k])
                pending[self._actors[w].run.remote(unit, indices, *shared)] = (seq, indices, w)
                load[w] += 1
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            for call in ready:
                seq, indices, w = pending.pop(call)
                load[w] = max(0, load.get(w, 1) - 1)
                try:
                    result = ray.get(call)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, XaiError):
                        raise cause from None
                    if isinstance(exc, lost_errors):
                        result = None
                    else:
                        raise
                except lost_errors:
                    result = None
                if result is None:
                    retry.append((seq, indices))
                    if w in self._actors and not self._alive(w):
                        load.pop(w, None)
                        self._replace(w)
                    continue
                self._done[w] = self._done.get(w, 0) + sum(len(i) for i in indices)
                finished[seq] = result
            while next_out in finished:
                yield from finished.pop(next_out)
                next_out += 1

    def _alive(self, wid: int) -> bool:
        ray = self._ray
        try:
            ray.get(self._actors[wid].where.remote(), timeout=REPLACE_WAIT_S)
            return True
        except (ray.exceptions.RayError, TimeoutError):
            return False

    def close(self) -> None:
        for actor in getattr(self, "_actors", {}).values():
            try:
                self._ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors = {}
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
