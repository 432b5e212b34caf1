"""The progress text of a long run: time spent, and an estimate of the time left."""

from __future__ import annotations

import pytest

from ui.long_run import format_seconds, progress_text, time_left


@pytest.mark.parametrize(("seconds", "text"), [(0.42, "0.4 s"), (8.04, "8.0 s"), (12.4, "12 s"), (65, "1 min 05 s"),
                                               (7384, "2 h 03 min")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_time_left_is_the_constant_rate_estimate_once_there_is_enough_to_go_on():
    assert time_left(10.0, 0.25) == pytest.approx(30.0)
    assert time_left(0.5, 0.5) is None  # too soon
    assert time_left(10.0, 0.01) is None  # too little done
    assert time_left(10.0, 1.0) is None  # finished
    assert progress_text("Explaining", "LIME, 100/400 samples", 10.0, 0.25) == (
        "Explaining: LIME, 100/400 samples (10 s so far, about 30 s left)")
    assert progress_text("Explaining", "", 0.2, 0.0) == "Explaining (0.2 s so far)"


def test_a_waiting_run_says_its_place_and_its_estimate_and_a_running_one_its_time_left():
    import time

    from ui.long_run import status_text
    from xai_core.service.runs import QUEUED, RUNNING, RunRecord

    now = time.time()
    waiting = RunRecord("id", "run", QUEUED, now, None, None, 0.0, "", "", 1, 40.0,
                        "~40 s (1,001 model evaluations)", {"what": "Explaining"})
    assert status_text(waiting) == ("Explaining: waiting for another run on this model (1 ahead); "
                                    "estimated ~40 s (1,001 model evaluations)")
    running = RunRecord("id", "run", RUNNING, now - 20, now - 10, None, 0.25, "LIME, 250/1000", "", 0, 40.0,
                        "~40 s (1,001 model evaluations)", {"what": "Explaining"})
    text = status_text(running)
    assert text.startswith("Explaining: LIME, 250/1000 (10 s so far, about 30 s left)"), text
    assert text.endswith("; estimated ~40 s (1,001 model evaluations)")


def test_only_a_model_in_a_worker_queues():
    from types import SimpleNamespace

    from ui.runner import queue_key

    request = SimpleNamespace(key="model-key")
    assert queue_key(request, SimpleNamespace(engine="worker")) == "model-key"
    assert queue_key(request, SimpleNamespace(engine="torch")) is None
