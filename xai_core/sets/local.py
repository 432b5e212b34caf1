"""The in-process engine: every chunk of a set runs here, one after another."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class LocalEngine:
    """Runs the set's unit functions (:func:`~xai_core.sets.evaluate.predict_chunk`,
    :func:`~xai_core.sets.explain.explain_chunk`) in this process, in order."""

    name = "local"
    workers = 1

    def __init__(self, model, dataset) -> None:
        self.model, self.dataset = model, dataset

    def predict(self, chunks: Iterable[list[int]]) -> Iterator:
        from xai_core.sets.evaluate import predict_chunk

        for indices in chunks:
            yield predict_chunk(self.model, self.dataset, indices)

    def explain(self, chunks: Iterable[list[int]], request) -> Iterator:
        from xai_core.sets.explain import explain_chunk

        for indices in chunks:
            yield explain_chunk(self.model, self.dataset, indices, request)

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
