"""Where work runs: in-process (the default), the confined model worker, Ray.

The service does not care which engine runs the work; each engine module here
takes the same requests and returns the same results. Labelled sets run through
:func:`open_engine`: ``local`` (this process) or ``ray`` (one model replica per
Ray worker; ``ray`` is imported only then).
"""

from __future__ import annotations

ENGINES = ("local", "ray")


def open_engine(name: str, model, dataset, *, workers: int = 2, address: str | None = None,
                gpus_per_worker: float = 0.0):
    """An engine for running ``model`` (a SetModel) over ``dataset``; use it as a context manager."""
    from xai_core.types import InputError

    if name == "local":
        from xai_core.sets.local import LocalEngine

        return LocalEngine(model, dataset)
    if name == "ray":
        from xai_core.sets.ray import RayEngine

        return RayEngine(model, dataset, workers=workers, address=address, gpus_per_worker=gpus_per_worker)
    raise InputError(f"unknown engine {name!r}; use {' or '.join(ENGINES)}")
