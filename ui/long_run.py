"""A long computation on a page: a progress bar that shows the time spent and an
estimate of the time left, and a Stop button that ends the run cleanly.

How Stop works: pressing any button makes Streamlit rerun the page, and the running
script is interrupted at its next Streamlit call, here the next progress update
(Streamlit raises its rerun exception there; it is a BaseException, so no
``except Exception`` in the explainers swallows it, cached functions keep no
partial result, and locks are released by their ``with`` blocks). The button's
callback marks the run as stopped, so the next run of the page says so instead of
starting anything. Results stored in ``st.session_state`` before the run and every
widget's value are untouched.
"""

from __future__ import annotations

import time

import streamlit as st

MIN_ESTIMATE_FRACTION = 0.03  # estimate the time left only after this much progress ...
MIN_ESTIMATE_SECONDS = 1.0  # ... and this much time


def format_seconds(seconds: float) -> str:
    """'8 s', '1 min 05 s', '2 h 03 min'."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 9.5 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def time_left(elapsed: float, fraction: float) -> float | None:
    """Seconds left at a constant rate, or None while too little is done to tell."""
    if fraction < MIN_ESTIMATE_FRACTION or elapsed < MIN_ESTIMATE_SECONDS or fraction >= 1.0:
        return None
    return elapsed * (1.0 - fraction) / fraction


def progress_text(what: str, text: str, elapsed: float, fraction: float) -> str:
    left = time_left(elapsed, fraction)
    timing = f"{format_seconds(elapsed)} so far" + (f", about {format_seconds(left)} left" if left is not None else "")
    return f"{what}: {text} ({timing})" if text else f"{what} ({timing})"


def _stopped_key(key: str) -> str:
    return f"{key}__stopped"


def _mark_stopped(key: str, what: str) -> None:
    started = st.session_state.get(f"{key}__started")
    elapsed = time.time() - started if started else None
    st.session_state[_stopped_key(key)] = (what, elapsed)


class LongRun:
    """``with LongRun("img_run", "Explaining") as run: work(progress=run.update)``.

    Draws a progress bar and a Stop button in a container that disappears when
    the run ends, however it ends.
    """

    def __init__(self, key: str, what: str) -> None:
        self.key = key
        self.what = what
        self._box = st.empty()
        self._started = time.perf_counter()
        st.session_state[f"{key}__started"] = time.time()
        with self._box.container():
            bar_col, stop_col = st.columns([6, 1], vertical_alignment="center")
            self._bar = bar_col.progress(0.0, text=progress_text(what, "starting", 0.0, 0.0))
            stop_col.button("Stop", key=f"{key}__stop", on_click=_mark_stopped, args=(key, what),
                            help="End this run now; your settings and earlier results are kept.")

    def update(self, fraction: float, text: str = "") -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        self._bar.progress(fraction, text=progress_text(self.what, text, time.perf_counter() - self._started, fraction))

    def __enter__(self) -> LongRun:
        return self

    def __exit__(self, *exc) -> None:
        self._box.empty()
        st.session_state.pop(f"{self.key}__started", None)


def show_stopped(key: str) -> bool:
    """Say that the run under ``key`` was stopped (once, on the run after Stop); True if it was."""
    stopped = st.session_state.pop(_stopped_key(key), None)
    if stopped is None:
        return False
    what, elapsed = stopped
    after = f" after {format_seconds(elapsed)}" if elapsed is not None else ""
    st.info(f"Stopped{after} ({what}). Your settings and any earlier results are kept; press the button again "
            "to start over.")
    return True
