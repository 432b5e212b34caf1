"""Where a labelled set's work runs: in this process (the default) or on Ray.

An engine takes the unit of work as an argument: ``engine.run(unit, chunks,
*args)`` calls ``unit(model, dataset, indices, *args)`` once per chunk of item
indices and yields the results (:func:`~xai_core.sets.evaluate.predict_chunk`,
:func:`~xai_core.sets.explain.explain_chunk`), so engines know nothing of
evaluation or explanation. :func:`open_engine` gives ``local`` (this process) or
``ray`` (one model replica per Ray worker; ``ray`` is imported only then).
"""

from __future__ import annotations

ENGINES = ("local", "ray")


def open_engine(name: str, model, dataset, *, workers: int = 2, address: str | None = None,
                gpus_per_worker: float = 0.0, say=None):
    """An engine for running ``model`` (a SetModel) over ``dataset``; use it as a context manager.
    ``say(text)`` gets the engine's notes as they happen (Ray: workers started, replaced)."""
    from xai_core.types import InputError

    if name == "local":
        from xai_core.sets.local import LocalEngine

        return LocalEngine(model, dataset)
    if name == "ray":
        from xai_core.sets.ray import RayEngine

        return RayEngine(model, dataset, workers=workers, address=address, gpus_per_worker=gpus_per_worker,
                         say=say)
    raise InputError(f"unknown engine {name!r}; use {' or '.join(ENGINES)}")
