"""The run store: work in a server thread, progress and results in SQLite, Stop, a
queue per model, bounds, and what a killed server leaves behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from xai_core.service import runs as runs_module
from xai_core.service.runs import (
    DONE,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RESTART_MESSAGE,
    RUNNING,
    STOPPED,
    Runs,
    pack,
    unpack,
)
from xai_core.types import Explanation, InputError

ROOT = Path(__file__).resolve().parent.parent


def wait_until(store: Runs, run_id: str, states, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        record = store.get(run_id)
        if record is not None and record.state in states:
            return record
        time.sleep(0.02)
    raise AssertionError(f"{run_id} never reached {states}: {store.get(run_id)}")


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(runs_module, "PROGRESS_EVERY_S", 0.0)
    return Runs(tmp_path / "runs")


def test_a_result_crosses_the_store_as_json_and_arrays_never_a_pickle():
    e = Explanation(method="saliency", target=3, target_label="cat", attribution=np.eye(4, dtype=np.float32),
                    predictions=[], params={"absolute": True}, seed=0, model_evals=1, elapsed_s=0.1)
    back = unpack(pack({"results": (e,), "errors": ["one"]}))
    assert back["errors"] == ["one"] and back["results"][0].target_label == "cat"
    np.testing.assert_array_equal(back["results"][0].attribution, np.eye(4))
    assert b"pickle" not in pack(e) and b"\x80\x04" not in pack(e)[:40]


def test_progress_then_the_result_is_kept_and_read_by_its_id_only(store):
    seen = threading.Event()

    def work(progress):
        progress(0.5, "half way")
        seen.wait(5)
        progress(1.0, "done")
        return {"answer": np.arange(3)}

    run_id = store.start("explain", work, meta={"what": "Explaining"}, estimate=(2.0, "~2.0 s (10 model evaluations)"))
    record = wait_until(store, run_id, (RUNNING,))
    end = time.monotonic() + 5
    while store.get(run_id).text != "half way" and time.monotonic() < end:
        time.sleep(0.02)
    record = store.get(run_id)
    assert (record.fraction, record.text, record.estimate) == (0.5, "half way", "~2.0 s (10 model evaluations)")
    seen.set()
    record = wait_until(store, run_id, (DONE,))
    np.testing.assert_array_equal(store.result(run_id)["answer"], np.arange(3))
    assert record.meta == {"what": "Explaining"} and record.finished >= record.started
    assert len(run_id) >= 22 and store.get(run_id[:-1] + ("A" if run_id[-1] != "A" else "B")) is None


def test_stop_ends_the_work_at_its_next_progress_report(store):
    steps = []

    def work(progress):
        for i in range(1000):
            steps.append(i)
            progress(i / 1000, f"{i}/1000")
            time.sleep(0.01)
        return "finished"

    run_id = store.start("explain", work)
    wait_until(store, run_id, (RUNNING,))
    time.sleep(0.1)
    assert store.stop(run_id)
    record = wait_until(store, run_id, (STOPPED,))
    assert len(steps) < 1000 and store.result(run_id) is None and record.message == "stopped"
    assert not store.stop(run_id)  # nothing left to stop


def test_errors_become_one_line_and_the_store_keeps_working(store):
    def bad(progress):
        raise InputError("the model wants 3 channels")

    run_id = store.start("explain", bad)
    record = wait_until(store, run_id, (FAILED,))
    assert record.message == "the model wants 3 channels"
    ok = store.start("explain", lambda progress: 7)
    wait_until(store, ok, (DONE,))
    assert store.result(ok) == 7


def test_runs_on_one_model_queue_and_say_their_place(store):
    release = threading.Event()
    first = store.start("explain", lambda progress: release.wait(10) and "first", queue="model-a")
    wait_until(store, first, (RUNNING,))
    second = store.start("explain", lambda progress: "second", queue="model-a")
    third = store.start("explain", lambda progress: "third", queue="model-a")
    other = store.start("explain", lambda progress: "other model", queue="model-b")
    assert wait_until(store, other, (DONE,)).state == DONE  # another model does not wait
    time.sleep(0.2)
    assert (store.get(second).state, store.get(second).ahead) == (QUEUED, 1)
    assert (store.get(third).state, store.get(third).ahead) == (QUEUED, 2)
    store.stop(third)  # Stop works while waiting
    assert wait_until(store, third, (STOPPED,)).message == "stopped while waiting"
    release.set()
    wait_until(store, second, (DONE,))
    assert [store.result(r) for r in (first, second)] == ["first", "second"]


def test_size_and_age_bound_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_RUNS_MAX_MB", str(3 * 1024 / 2**20))  # room for about three 1 kB results
    store = Runs(tmp_path / "runs")
    ids = []
    for _ in range(6):
        ids.append(store.start("explain", lambda progress: np.zeros(128, np.float64)))  # ~1.2 kB each
        wait_until(store, ids[-1], (DONE,))
    kept = [r for r in ids if store.get(r) is not None]
    assert kept == ids[-len(kept):] and 1 <= len(kept) < 6  # the oldest went first
    monkeypatch.setenv("XAI_RUNS_MAX_AGE_H", "0")
    assert store.prune() == len(kept) and all(store.get(r) is None for r in ids)


def test_a_killed_server_loses_only_its_runs_in_flight(tmp_path):
    """A server process is SIGKILLed with one run finished and one running; the next
    server marks the running one interrupted and keeps the finished one whole. A
    live server's runs on the same folder are left alone."""
    folder = tmp_path / "runs"
    script = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        from xai_core.service.runs import Runs, DONE
        store = Runs({str(folder)!r})
        done = store.start("explain", lambda progress: {{"map": np.full((4, 4), 2.5, np.float32)}})
        while store.get(done).state != DONE:
            time.sleep(0.02)
        going = store.start("explain", lambda progress: time.sleep(600))
        while store.get(going).state != "running":
            time.sleep(0.02)
        print(done, going, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    try:
        done, going = proc.stdout.readline().split()
        live = Runs(folder)  # another server while the first lives: its run is not touched
        assert live.get(going).state == RUNNING
    finally:
        proc.kill()
        proc.wait()
    restarted = Runs(folder)
    record = restarted.get(going)
    assert (record.state, record.message) == (INTERRUPTED, RESTART_MESSAGE)
    assert restarted.get(done).state == DONE
    np.testing.assert_array_equal(restarted.result(done)["map"], np.full((4, 4), 2.5, np.float32))
