"""A long computation on a page: a progress bar that shows the time spent and an
estimate of the time left, and a Stop button that ends the run cleanly.

:func:`start_run` / :func:`follow_run` (the image page's Explain, the metrics panel,
the tabular page's Explain row and Explain rows) hand the work to the server's run
store (:mod:`xai_core.service.runs`): it goes on in a server thread whatever
becomes of the page, and the page follows it by an id kept in the URL
(``?run=...``), so a reloaded tab, a closed one reopened from its link, or a
dropped connection finds its progress or result again. Stop marks the run in the
store; its next progress report ends it (see :class:`~xai_core.service.runs.RunStopped`).
Results stored in ``st.session_state`` before the run and every widget's value
are untouched.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from xai_core.service.estimate import Estimate
from xai_core.service.runs import DONE, FAILED, INTERRUPTED, QUEUED, STOPPED, RunRecord, runs

MIN_ESTIMATE_FRACTION = 0.03  # estimate the time left only after this much progress ...
MIN_ESTIMATE_SECONDS = 1.0  # ... and this much time


from xai_core.service.estimate import format_seconds  # noqa: E402 - re-exported for the pages


def time_left(elapsed: float, fraction: float) -> float | None:
    """Seconds left at a constant rate, or None while too little is done to tell."""
    if fraction < MIN_ESTIMATE_FRACTION or elapsed < MIN_ESTIMATE_SECONDS or fraction >= 1.0:
        return None
    return elapsed * (1.0 - fraction) / fraction


def progress_text(what: str, text: str, elapsed: float, fraction: float) -> str:
    left = time_left(elapsed, fraction)
    timing = f"{format_seconds(elapsed)} so far" + (f", about {format_seconds(left)} left" if left is not None else "")
    return f"{what}: {text} ({timing})" if text else f"{what} ({timing})"


# -- runs that outlive the page ---------------------------------------------------------
POLL_S = 0.3  # how often a followed run's record is read


def _plain(value: Any) -> Any:
    """Dataclasses of the ``ui`` package -> tagged dicts the run store can keep
    (xai_core's own types, containers and arrays pass as they are)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and type(value).__module__.startswith("ui."):
        cls = type(value)
        return {"__ui__": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _rebuilt(value: Any) -> Any:
    """The inverse of :func:`_plain` (only ``ui`` dataclasses are rebuilt by name)."""
    if isinstance(value, dict) and "__ui__" in value:
        module, _, name = str(value["__ui__"]).partition(":")
        if not module.startswith("ui.") or name.startswith("_"):
            raise ValueError(f"{value['__ui__']}: not a dashboard type")
        cls = getattr(importlib.import_module(module), name)
        return cls(**{k: _rebuilt(v) for k, v in value["fields"].items()})
    if isinstance(value, tuple):
        return tuple(_rebuilt(v) for v in value)
    if isinstance(value, list):
        return [_rebuilt(v) for v in value]
    if isinstance(value, dict):
        return {k: _rebuilt(v) for k, v in value.items()}
    return value


def start_run(slot: str, what: str, work: Callable[[Callable[..., None]], Any], *, estimate: Estimate | None,
              queue: str | None = None) -> str:
    """Start ``work(progress)`` in the server's run store and follow it from this page:
    its id goes into the URL (``?<slot>=<id>``). ``work`` returns what the page will
    show (dashboard dataclasses, xai_core types, arrays); ``queue``: the model's key
    when runs of it must wait for each other (one model worker)."""
    def stored(progress: Callable[..., None]) -> Any:
        return _plain(work(progress))

    words = estimate.words if estimate is not None else ""
    run_id = runs().start(slot, stored, queue=queue, meta={"what": what},
                          estimate=(estimate.seconds if estimate is not None else None, words))
    st.query_params[slot] = run_id
    st.session_state[f"{slot}__id"] = run_id
    return run_id


def followed_id(slot: str) -> str | None:
    """The run this page follows under ``slot``: the URL's (a reloaded tab or a result
    link), else the one this session started."""
    return st.query_params.get(slot) or st.session_state.get(f"{slot}__id")


def _stop(run_id: str) -> None:
    runs().stop(run_id)


def status_text(record: RunRecord) -> str:
    """'waiting for another run on this model (1 ahead); estimated ~12 s (...)' while
    queued; 'Explaining: LIME, 300/1000 samples (4.0 s so far, about 9.2 s left)'
    while running."""
    what = record.meta.get("what", "Running")
    estimate = f"estimated {record.estimate}" if record.estimate else ""
    if record.state == QUEUED:
        return "; ".join(t for t in (f"{what}: waiting for another run on this model ({record.ahead} ahead)",
                                     estimate) if t)
    text = progress_text(what, record.text, record.elapsed_s, record.fraction)
    return f"{text}; {estimate}" if estimate else text


def follow_run(slot: str) -> RunRecord | None:
    """While the run followed under ``slot`` goes: a progress bar (time left, queue
    place, the estimate), a Stop button and the result link; returns its record
    once it has finished (None when there is no run, or its id is unknown here)."""
    run_id = followed_id(slot)
    if not run_id:
        return None
    store = runs()
    record = store.get(run_id)
    if record is None or record.kind != slot:
        st.warning("That run is not known on this server (its results expire after a while); start it again.")
        _forget(slot)
        return None
    if record.finished_state:
        return record
    box = st.empty()
    with box.container():
        bar_col, stop_col = st.columns([6, 1], vertical_alignment="center")
        bar = bar_col.progress(record.fraction, text=status_text(record))
        stop_col.button("Stop", key=f"{slot}__stop", on_click=_stop, args=(run_id,),
                        help="End this run now; your settings and earlier results are kept.")
        st.caption(f"This run goes on if you leave or reload the page: [result link](?{slot}={run_id}) "
                   "(this browser's address bar holds it too).")
        while not record.finished_state:
            time.sleep(POLL_S)
            record = store.get(run_id) or record
            bar.progress(min(1.0, record.fraction), text=status_text(record))
    box.empty()
    return record


def finished_result(slot: str, record: RunRecord | None) -> tuple[bool, Any]:
    """(new, result) of a finished run: ``new`` once per session and run (the page
    stores the result then); a stopped, failed or interrupted run says so once."""
    if record is None or not record.finished_state:
        return False, None
    seen = st.session_state.setdefault("_runs_seen", set())
    if record.id in seen:
        return False, None
    seen.add(record.id)
    what = record.meta.get("what", "The run")
    if record.state == DONE:
        try:
            return True, _rebuilt(runs().result(record.id))
        except Exception as exc:  # noqa: BLE001 - e.g. a result kept by an older version of the dashboard
            st.warning(f"{what}: its stored result cannot be read back ({type(exc).__name__}); start it again.")
            return False, None
    if record.state == STOPPED:
        st.info(f"Stopped after {format_seconds(record.elapsed_s)} ({what}). Your settings and any earlier results "
                "are kept; press the button again to start over.")
    elif record.state == INTERRUPTED:
        st.warning(f"{what} was {record.message}.")
    elif record.state == FAILED:
        st.error(f"{what} failed: {record.message.rstrip('.')}. Try smaller settings or another method.")
    return False, None


def _forget(slot: str) -> None:
    if slot in st.query_params:
        del st.query_params[slot]
    st.session_state.pop(f"{slot}__id", None)
