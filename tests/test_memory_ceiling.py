"""A memory ceiling on runs in the caller's own process (issue 20): the run that
passes it ends with one line, its memory is freed, the next run works."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xai_core.worker.ceiling import MemoryCeilingError, memory_ceiling, resident_bytes
from xai_core.worker.client import runs_in_worker

ROOT = Path(__file__).resolve().parents[1]


class _Model:
    name = "greedy-model"


@runs_in_worker
def _grow(model, megabytes: int) -> int:
    """A service function whose run keeps allocating (a leaking engine, say)."""
    held = []
    for _ in range(megabytes // 20):
        held.append(np.ones(20 * 2**20 // 8))  # touched: resident
        time.sleep(0.02)
    return len(held)


def test_in_process_run_past_the_ceiling_is_stopped(monkeypatch):
    start = resident_bytes()
    monkeypatch.setenv("XAI_MEMORY_MB", str((start + 300 * 2**20) // 2**20))
    with pytest.raises(MemoryCeilingError) as info:
        _grow(_Model(), 3000)
    text = str(info.value)
    assert text.startswith("greedy-model: used ") and "more than its ceiling" in text and "\n" not in text
    assert resident_bytes() < start + 400 * 2**20  # the run's arrays went with it
    assert _grow(_Model(), 100) == 5  # the next run, under the ceiling, works


def test_ceiling_outlives_nothing():
    """No stray stop after the watched run is over."""
    with memory_ceiling("tiny", limit=resident_bytes() + 2**30):
        pass
    time.sleep(0.5)
    assert sum(range(10)) == 45


def test_command_line_run_past_the_ceiling_ends_with_one_line(tmp_path):
    image = ROOT / "sample_images"
    first = sorted(p for p in image.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[0]
    run = subprocess.run([sys.executable, "-m", "xai_core", "explain", "--model", "digits_cnn", "--image",
                          str(first), "--method", "saliency", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**__import__("os").environ, "XAI_MEMORY_MB": "60"})
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ") and "more than its ceiling of 60 MB" in lines[0]


def test_threads_that_join_a_watch_start_no_watcher_and_are_stopped_by_its_breach(monkeypatch):
    """A set's chunk explains each item in its own thread under the chunk's one
    watch (``joining``): no watcher thread per item, and a breach stops the items'
    threads as well as the watching one."""
    import threading

    from xai_core.worker.ceiling import current_watch, joining

    def watchers() -> int:
        return sum(t.name == "xai-memory-ceiling" for t in threading.enumerate())

    assert current_watch() is None
    seen, stopped = [], []

    def item(watch, grow: bool) -> None:
        try:
            with joining(watch), memory_ceiling("an item"):  # the item's own service call
                seen.append(watchers())
                held = []
                for _ in range(150 if grow else 1):
                    held.append(np.ones(20 * 2**20 // 8))
                    time.sleep(0.02)
        except MemoryCeilingError:
            stopped.append(threading.get_ident())

    with memory_ceiling("a chunk", limit=resident_bytes() + 2**30):
        watch = current_watch()
        threads = [threading.Thread(target=item, args=(watch, False)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert seen == [1, 1, 1, 1] and not stopped  # the chunk's watcher only
    assert current_watch() is None

    start = resident_bytes()
    with pytest.raises(MemoryCeilingError):
        with memory_ceiling("a chunk", limit=start + 300 * 2**20):
            t = threading.Thread(target=item, args=(current_watch(), True))
            t.start()
            while t.is_alive():
                time.sleep(0.01)
    t.join()
    assert len(stopped) == 1  # the item's thread was stopped too, not left to grow
    assert resident_bytes() < start + 400 * 2**20
