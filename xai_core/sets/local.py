"""The in-process engine: every chunk of a set runs here, one after another."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


class LocalEngine:
    """Runs a unit of work (``unit(model, dataset, indices, *args)``, e.g.
    :func:`~xai_core.sets.evaluate.predict_chunk` or
    :func:`~xai_core.sets.explain.explain_chunk`) on each chunk in this process, in order."""

    name = "local"
    workers = 1

    def __init__(self, model, dataset) -> None:
        self.model, self.dataset = model, dataset
        self.notes: list[str] = []

    def run(self, unit: Callable[..., Any], chunks: Iterable[list[int]], *args: Any) -> Iterator:
        """One memory-ceiling watch for the whole run (:mod:`xai_core.worker.ceiling`):
        the service calls inside the chunks keep it instead of starting and joining a
        watcher thread each (that cost as much as a small model's chunk)."""
        from xai_core.worker.ceiling import memory_ceiling

        with memory_ceiling(f"{self.model.name} over {self.dataset.source}"):
            for indices in chunks:
                yield unit(self.model, self.dataset, indices, *args)

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
