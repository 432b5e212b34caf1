"""Warm the one-click start off the critical path.

The first time the server runs the app (the first browser opening it), a daemon
thread imports the framework, loads the landing page's zoo model into the shared
model cache (``ui.cache.load_model``, the same key the one-click start asks for)
and runs its Grad-CAM once on the sample photo, so a click on "Explain a sample
photo" finds the imports done, the model loaded and the kernels warm. A click that
comes first simply waits on the model cache's lock for the same load.
"""

from __future__ import annotations

import logging
import threading

_started = threading.Event()
_lock = threading.Lock()
log = logging.getLogger(__name__)


def start_once() -> None:
    with _lock:
        if _started.is_set():
            return
        _started.set()
    # the light modules are imported here, in the script's thread: two threads importing
    # the same package at once can deadlock on Python's module locks
    import model_zoo  # noqa: F401
    import xai_core.service  # noqa: F401

    from . import cache, quickstart, samples  # noqa: F401

    threading.Thread(target=_warm, name="xai-warmup", daemon=True).start()


def _warm() -> None:
    import model_zoo
    from xai_core.inputs.images import load_image
    from xai_core.service import explain

    from .cache import ModelRequest, load_model
    from .quickstart import QUICKSTART_METHOD
    from .samples import list_samples, quickstart_sample

    try:
        name = model_zoo.DEFAULT_MODEL
        entry = model_zoo.ZOO[name]
        adapter = load_model(ModelRequest(entry.framework, "zoo", name, name, entry.spec))
        sample = quickstart_sample(list_samples())
        if sample.path is not None:
            explain(adapter, load_image(sample.path), QUICKSTART_METHOD)
    except Exception as exc:  # noqa: BLE001 - a failed warm-up only costs the first click its time
        log.warning("warm-up of the one-click start failed: %s", exc)
