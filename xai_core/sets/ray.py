"""The Ray engine: the set's chunks run on Ray actors, one model replica per actor.

Each actor opens the model once from its :class:`~xai_core.sets.model.ModelRef`
and receives the labelled set once (through Ray's object store); work items are
then only lists of item indices. Ray's :class:`ray.util.ActorPool` hands chunks to
free actors and returns results in submission order; this module only keeps a
bounded window of chunks in flight, so memory stays flat in the size of the set.
The actors run the same unit functions as the local engine
(:func:`~xai_core.sets.evaluate.predict_chunk`, :func:`~xai_core.sets.explain.explain_chunk`)
with the same seed per item, so results equal the local engine's.

Without ``address`` a local Ray instance with ``workers`` CPUs is started (and shut
down on close); with ``address`` (``HOST:PORT`` of ``ray start --head``, or
``auto``) the actors run on that cluster, whose nodes need this project importable
at the same path (the actors get this checkout on their ``PYTHONPATH``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from xai_core.types import InputError, XaiError

ROOT = Path(__file__).resolve().parents[2]
WINDOW_PER_WORKER = 2


class _Replica:
    """One model replica on a Ray worker."""

    def __init__(self, ref, dataset) -> None:
        self.model = ref.open()
        self.dataset = dataset

    def predict(self, indices: list[int]):
        from xai_core.sets.evaluate import predict_chunk

        return predict_chunk(self.model, self.dataset, indices)

    def explain(self, indices: list[int], request):
        from xai_core.sets.explain import explain_chunk

        return explain_chunk(self.model, self.dataset, indices, request)


class RayEngine:
    name = "ray"

    def __init__(self, model, dataset, *, workers: int = 2, address: str | None = None,
                 gpus_per_worker: float = 0.0) -> None:
        try:
            import ray
            from ray.util import ActorPool
        except ImportError:
            raise InputError("the ray engine needs Ray: pip install 'ray==2.60.0' (or use --engine local)") from None
        if model.ref is None:
            raise InputError("the ray engine needs a model opened from a zoo name or file (a ModelRef)")
        if workers < 1:
            raise InputError("the ray engine needs at least 1 worker")
        self._ray = ray
        self.workers = int(workers)
        self._started = False
        env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.workers, num_gpus=None, include_dashboard=False, log_to_driver=False,
                             object_store_memory=200 * 1024**2, runtime_env={"env_vars": env})
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InputError(f"cannot start or reach Ray{f' at {address}' if address else ''}: "
                                 f"{str(exc).splitlines()[0][:200]}") from None
            self._started = True
        options = {"num_cpus": 1}
        if gpus_per_worker:
            options["num_gpus"] = float(gpus_per_worker)
        replica = ray.remote(**options)(_Replica)
        shared = ray.put(dataset)
        self._actors = [replica.remote(model.ref, shared) for _ in range(self.workers)]
        self._pool = ActorPool(self._actors)

    def _ordered(self, call, args: Iterable) -> Iterator:
        """Submit ``call(actor, arg)`` for each arg, at most a window ahead; yield in order."""
        it = iter(args)
        pending = 0
        for arg in itertools.islice(it, WINDOW_PER_WORKER * self.workers):
            self._pool.submit(call, arg)
            pending += 1
        while pending:
            try:
                result = self._pool.get_next()
            except self._ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, XaiError):
                    raise cause from None
                raise
            pending -= 1
            for arg in itertools.islice(it, 1):
                self._pool.submit(call, arg)
                pending += 1
            yield result

    def predict(self, chunks: Iterable[list[int]]) -> Iterator:
        return self._ordered(lambda actor, idx: actor.predict.remote(idx), chunks)

    def explain(self, chunks: Iterable[list[int]], request) -> Iterator:
        request_ref = self._ray.put(request)
        return self._ordered(lambda actor, idx: actor.explain.remote(idx, request_ref), chunks)

    def close(self) -> None:
        for actor in getattr(self, "_actors", []):
            self._ray.kill(actor)
        self._actors = []
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
