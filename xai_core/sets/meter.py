"""Progress and cost of a run over a set: items done, items per second, time left,
and what each worker has done (Ray), as one line for the page and the command line."""

from __future__ import annotations

import time
from collections.abc import Callable

ProgressCallback = Callable[[float, str], None]


class Meter:
    """Counts items of a run of ``total`` items as chunks finish.

    ``engine`` (optional) may offer ``per_worker() -> {worker: items}`` (the Ray
    engine does); the items each worker did in this run are shown after the totals.
    """

    def __init__(self, total: int, what: str, engine=None) -> None:
        self.total, self.what, self.engine = max(0, int(total)), what, engine
        self.done = 0
        self.start = time.perf_counter()
        self._before = self._workers()  # the engine's counts before this run (it may have run others)

    def _workers(self) -> dict[str, int]:
        return dict(self.engine.per_worker()) if hasattr(self.engine, "per_worker") else {}

    def add(self, items: int) -> None:
        self.done += int(items)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0

    @property
    def rate(self) -> float:
        """Items per second so far."""
        spent = time.perf_counter() - self.start
        return self.done / spent if spent > 0 else 0.0

    def seconds_left(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None

    def text(self) -> str:
        left = self.seconds_left()
        parts = [f"{self.what} {self.done} of {self.total} item(s)", f"{self.rate:.1f} items/s"]
        if left is not None and self.done < self.total:
            parts.append(f"{_duration(left)} left")
        workers = {w: n - self._before.get(w, 0) for w, n in self._workers().items()}
        if len(workers) > 1:
            parts.append("per worker: " + ", ".join(f"{w} {n}" for w, n in workers.items()))
        return ", ".join(parts)

    def report(self, progress: ProgressCallback | None) -> None:
        if progress is not None:
            progress(self.fraction, self.text())


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
