"""Runs that outlive the page: long work done in a server thread, its progress and
result kept on disk in SQLite, found again by an unguessable id.

A page starts a run with :meth:`Runs.start` (a function of one ``progress``
argument), gets its id, and reads its :class:`RunRecord` as often as it likes; the
work goes on whatever becomes of the page (reloaded, closed, disconnected). Only
the id opens a run: it is 128 random bits (:func:`secrets.token_urlsafe`), so one
session cannot read or stop another's, and nothing lists runs.

* **Progress and Stop.** The work reports ``progress(fraction, text)``; the record
  keeps the latest fraction and text. :meth:`Runs.stop` marks the run, and its next
  progress report raises :class:`RunStopped` inside the work (a BaseException, so no
  ``except Exception`` in an explainer swallows it; the model worker ends a busy
  worker on it).
* **A queue per model.** Runs given the same ``queue`` key (one model worker) run
  one after another, in the order started; a waiting run's record says how many
  runs are ahead of it.
* **The store.** One SQLite file beside the upload store
  (``<uploads>-runs/runs.sqlite3``; ``XAI_RUNS_DIR`` moves it), bounded like the
  upload store: finished runs older than ``XAI_RUNS_MAX_AGE_H`` hours (default 24)
  go, then the oldest finished ones until the results fit in ``XAI_RUNS_MAX_MB``
  (default 512). A result is stored as JSON plus ``.npy`` arrays (the worker's wire
  format, :mod:`xai_core.worker.wire`), never a pickle. A run that was queued or
  running when its server stopped is marked "interrupted by a server restart" the
  next time a server opens the store; a finished run is never lost to a restart.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import sqlite3
import struct
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xai_core.inputs.uploads import upload_dir
from xai_core.types import XaiError
from xai_core.worker import wire

QUEUED, RUNNING, DONE, FAILED, STOPPED, INTERRUPTED = "queued", "running", "done", "failed", "stopped", "interrupted"
FINISHED = (DONE, FAILED, STOPPED, INTERRUPTED)
RESTART_MESSAGE = "interrupted by a server restart; start it again"
PROGRESS_EVERY_S = 0.25  # at most this often a progress report is written to disk


class RunStopped(BaseException):  # noqa: N818 - a signal, like KeyboardInterrupt
    """Raised inside a run's work at its next progress report after Stop."""


def runs_dir() -> Path:
    """The folder of the run store: ``XAI_RUNS_DIR``, else beside the upload store."""
    if os.environ.get("XAI_RUNS_DIR"):
        return Path(os.environ["XAI_RUNS_DIR"])
    uploads = upload_dir()
    return uploads.with_name(uploads.name + "-runs")


def max_bytes() -> int:
    return int(float(os.environ.get("XAI_RUNS_MAX_MB", "512")) * 2**20)


def max_age_s() -> float:
    return float(os.environ.get("XAI_RUNS_MAX_AGE_H", "24")) * 3600


@dataclass(frozen=True)
class RunRecord:
    """What the store knows of one run. ``ahead``: runs before it in its model's
    queue (while queued); ``estimate_s`` / ``estimate``: the cost stated before it
    started (seconds, and in words); ``started``/``finished``: wall-clock times."""

    id: str
    kind: str
    state: str
    created: float
    started: float | None
    finished: float | None
    fraction: float
    text: str
    message: str
    ahead: int
    estimate_s: float | None
    estimate: str
    meta: dict[str, Any]

    @property
    def finished_state(self) -> bool:
        return self.state in FINISHED

    @property
    def elapsed_s(self) -> float:
        """Seconds it has run (queueing not counted)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started


def pack(value: Any) -> bytes:
    """A value of xai_core types, plain containers and arrays -> bytes (JSON + .npy)."""
    arrays: list[bytes] = []
    body = json.dumps(wire.encode(value, arrays)).encode()
    parts = [struct.pack("<I", len(body)), body, struct.pack("<I", len(arrays))]
    for blob in arrays:
        parts += [struct.pack("<Q", len(blob)), blob]
    return b"".join(parts)


def unpack(data: bytes) -> Any:
    """The inverse of :func:`pack` (arrays read with ``allow_pickle=False``)."""
    view = memoryview(data)
    (length,) = struct.unpack_from("<I", view, 0)
    body = json.loads(bytes(view[4:4 + length]))
    pos = 4 + length
    (count,) = struct.unpack_from("<I", view, pos)
    pos += 4
    arrays = []
    for _ in range(count):
        (size,) = struct.unpack_from("<Q", view, pos)
        pos += 8
        arrays.append(bytes(view[pos:pos + size]))
        pos += size
    return wire.decode(body, arrays)


_COLUMNS = ("id, kind, state, created, started, finished, fraction, text, message, ahead, estimate_s, "
            "estimate, meta")


class Runs:
    """The run store and the threads that do the work (one per process and folder:
    :func:`runs`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.folder / "runs.sqlite3"
        self.server = uuid.uuid4().hex  # this process's mark on the runs it owns
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}
        self._queues: dict[str, list[str]] = defaultdict(list)
        self._turn = threading.Condition(self._lock)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"CREATE TABLE IF NOT EXISTS runs ({_COLUMNS.replace(', ', ' , ')}, server TEXT, "
                       "result BLOB, size INTEGER DEFAULT 0, PRIMARY KEY (id))")
        # held while this server lives: a run whose server's lock can be taken lost its server
        self._alive = open(self.folder / f"server-{self.server}.lock", "w")  # noqa: SIM115 - held for life
        fcntl.flock(self._alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.interrupt_orphans()
        self.prune()

    def interrupt_orphans(self) -> int:
        """Mark the queued and running runs of servers that are gone as interrupted
        (another live server's runs on the same folder are left alone)."""
        db = self._db()
        servers = [s for (s,) in db.execute("SELECT DISTINCT server FROM runs WHERE state IN (?, ?)",
                                            (QUEUED, RUNNING)) if s != self.server]
        count = 0
        for server in servers:
            if _alive(self.folder / f"server-{server}.lock"):
                continue
            count += db.execute("UPDATE runs SET state=?, message=?, finished=? WHERE state IN (?, ?) AND server=?",
                                (INTERRUPTED, RESTART_MESSAGE, time.time(), QUEUED, RUNNING, server)).rowcount
        return count

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.db = db
        return db

    # -- reading ------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord | None:
        """The run with this id, or None (never was, or pruned since)."""
        if not isinstance(run_id, str) or not run_id:
            return None
        row = self._db().execute(f"SELECT {_COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            return None
        *head, meta = row
        return RunRecord(*head, meta=json.loads(meta or "{}"))

    def result(self, run_id: str) -> Any:
        """The finished run's result (None when it has none)."""
        row = self._db().execute("SELECT result FROM runs WHERE id=?", (run_id,)).fetchone()
        return None if row is None or row[0] is None else unpack(row[0])

    # -- starting and stopping ------------------------------------------------------------
    def start(self, kind: str, work: Callable[[Callable[[float, str], None]], Any], *, queue: str | None = None,
              meta: dict[str, Any] | None = None, estimate: tuple[float | None, str] = (None, "")) -> str:
        """Run ``work(progress)`` in a thread of this server; return the run's id.
        ``progress(fraction, text)`` reports (and raises :class:`RunStopped` after
        Stop); ``progress.estimated(seconds, words)`` restates the estimate.

        ``queue``: runs with the same key run one at a time, in order (one model
        worker). ``meta``: small JSON facts the page shows with it. ``estimate``:
        (seconds or None, words) stated before it starts."""
        run_id = secrets.token_urlsafe(16)
        now = time.time()
        with self._lock:
            ahead = len(self._queues[queue]) if queue else 0
            if queue:
                self._queues[queue].append(run_id)
            self._stops[run_id] = threading.Event()
        self._db().execute(
            "INSERT INTO runs (id, kind, state, created, started, finished, fraction, text, message, ahead, "
            "estimate_s, estimate, meta, server) VALUES (?, ?, ?, ?, NULL, NULL, 0, '', '', ?, ?, ?, ?, ?)",
            (run_id, kind, QUEUED, now, ahead, estimate[0], estimate[1], json.dumps(meta or {}, default=str),
             self.server))
        thread = threading.Thread(target=self._run, args=(run_id, work, queue), name=f"xai-run-{kind}", daemon=True)
        thread.start()
        return run_id

    def stop(self, run_id: str) -> bool:
        """Ask the run to stop (at its next progress report; at once while it waits).
        True when it was still going."""
        with self._lock:
            event = self._stops.get(run_id)
            if event is None:
                return False
            event.set()
            self._turn.notify_all()
        return True

    def _run(self, run_id: str, work: Callable, queue: str | None) -> None:
        stop = self._stops[run_id]
        try:
            if queue and not self._wait_turn(run_id, queue, stop):
                self._finish(run_id, STOPPED, "stopped while waiting")
                return
            self._db().execute("UPDATE runs SET state=?, started=?, ahead=0 WHERE id=?",
                               (RUNNING, time.time(), run_id))
            last = [0.0]

            def progress(fraction: float, text: str = "") -> None:
                if stop.is_set():
                    raise RunStopped
                now = time.monotonic()
                if now - last[0] >= PROGRESS_EVERY_S or fraction >= 1.0:
                    last[0] = now
                    self._db().execute("UPDATE runs SET fraction=?, text=? WHERE id=?",
                                       (float(min(1.0, max(0.0, fraction))), str(text)[:300], run_id))

            def estimated(seconds: float | None, words: str) -> None:
                """The run's estimate, once measured inside the run (after its turn came)."""
                self._db().execute("UPDATE runs SET estimate_s=?, estimate=? WHERE id=?", (seconds, words, run_id))

            progress.estimated = estimated  # type: ignore[attr-defined]
            try:
                result = work(progress)
            except RunStopped:
                self._finish(run_id, STOPPED, "stopped")
                return
            except XaiError as exc:
                self._finish(run_id, FAILED, str(exc).strip())
                return
            except Exception as exc:  # noqa: BLE001 - the page shows one line, never a traceback
                self._finish(run_id, FAILED, f"{type(exc).__name__}: {exc}")
                return
            if stop.is_set():  # Stop pressed after the last progress report
                self._finish(run_id, STOPPED, "stopped")
                return
            try:
                blob = pack(result)
            except wire.WireError as exc:
                self._finish(run_id, FAILED, f"the result could not be stored ({exc})")
                return
            self.prune(incoming=len(blob))
            self._finish(run_id, DONE, "", blob)
        finally:
            with self._lock:
                self._stops.pop(run_id, None)
                if queue and run_id in self._queues[queue]:
                    self._queues[queue].remove(run_id)
                    if not self._queues[queue]:
                        del self._queues[queue]
                self._turn.notify_all()
            self._refresh_queue(queue)

    def _wait_turn(self, run_id: str, queue: str, stop: threading.Event) -> bool:
        """Block until ``run_id`` heads its queue (True) or is stopped (False)."""
        with self._turn:
            while self._queues[queue][0] != run_id:
                if stop.is_set():
                    return False
                self._turn.wait(0.5)
            return not stop.is_set()

    def _refresh_queue(self, queue: str | None) -> None:
        """Write each waiting run's place after the queue moved."""
        if not queue:
            return
        with self._lock:
            waiting = list(self._queues.get(queue, ()))
        for place, run_id in enumerate(waiting):
            self._db().execute("UPDATE runs SET ahead=? WHERE id=? AND state=?", (place, run_id, QUEUED))

    def _finish(self, run_id: str, state: str, message: str, blob: bytes | None = None) -> None:
        self._db().execute("UPDATE runs SET state=?, message=?, finished=?, result=?, size=? WHERE id=?",
                           (state, message[:2000], time.time(), blob, len(blob or b""), run_id))

    # -- bounds ------------------------------------------------------------------------
    def prune(self, incoming: int = 0) -> int:
        """Drop finished runs past the age limit, then the oldest finished ones until
        ``incoming`` more bytes fit; returns how many went."""
        db = self._db()
        now = time.time()
        placeholders = ", ".join("?" * len(FINISHED))
        gone = db.execute(f"DELETE FROM runs WHERE state IN ({placeholders}) AND COALESCE(finished, created) < ?",
                          (*FINISHED, now - max_age_s())).rowcount
        total = db.execute("SELECT COALESCE(SUM(size), 0) FROM runs").fetchone()[0]
        if total + incoming > max_bytes():
            rows = db.execute(f"SELECT id, size FROM runs WHERE state IN ({placeholders}) AND size > 0 "
                              "ORDER BY finished", FINISHED).fetchall()
            for run_id, size in rows:
                if total + incoming <= max_bytes():
                    break
                db.execute("DELETE FROM runs WHERE id=?", (run_id,))
                total -= size
                gone += 1
        return gone


def _alive(lock: Path) -> bool:
    """Whether the server that holds ``lock`` still runs (it holds the lock for life)."""
    try:
        fh = open(lock)  # noqa: SIM115 - closed below
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        fh.close()
    lock.unlink(missing_ok=True)
    return False


_STORES: dict[Path, Runs] = {}
_STORES_LOCK = threading.Lock()


def runs() -> Runs:
    """This process's run store for :func:`runs_dir` (opened once; opening it marks
    the runs a stopped server left unfinished as interrupted)."""
    folder = runs_dir().resolve()
    with _STORES_LOCK:
        store = _STORES.get(folder)
        if store is None:
            store = _STORES[folder] = Runs(folder)
        return store
