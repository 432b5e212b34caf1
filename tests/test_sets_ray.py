"""The Ray engine on a real two-node cluster (ray.cluster_utils.Cluster on this
machine): workers capped to the cluster's room, the set read by the workers,
a worker killed mid-run replaced with no item lost or duplicated and the same
numbers as the local run; a bad address fails in seconds with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from xai_core.sets.data import open_set
from xai_core.sets.evaluate import evaluate
from xai_core.sets.explain import ExplainRequest, explain_selection
from xai_core.sets.model import ModelRef
from xai_core.types import InputError

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "sample_data" / "digits_test.npz"


def test_bad_address_fails_in_seconds():
    from xai_core.sets.ray import check_address

    start = time.monotonic()
    with pytest.raises(InputError, match="no Ray cluster answers at 127.0.0.1:9") as err:
        check_address("127.0.0.1:9")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="HOST:PORT"):
        check_address("headnode")
    assert time.monotonic() - start < 10
    run = subprocess.run([sys.executable, "-m", "xai_core", "explain-set", "--model", "digits_cnn", "--data",
                          str(DIGITS), "--method", "saliency", "--engine", "ray", "--address", "127.0.0.1:9",
                          "--out", "unused"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "127.0.0.1:9" in run.stderr


def test_two_node_cluster_survives_a_killed_worker():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from xai_core.sets.runners import open_engine

    model = ModelRef("digits_cnn", device="cpu", batch_size=32).open()
    dataset = open_set(DIGITS, model.class_names)
    local_eval = evaluate(model, dataset)
    chosen = list(range(40))
    request = ExplainRequest("grad_cam", {}, 0, "predicted")
    local = {r.index: r for r in explain_selection(model, dataset, chosen, request, chunk_size=4)}

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "object_store_memory": 100 * 1024**2})
    cluster.add_node(num_cpus=1, object_store_memory=100 * 1024**2)
    notes: list[str] = []
    try:
        cluster.wait_for_nodes()
        with open_engine("ray", model, dataset, workers=3, address=cluster.address, say=notes.append) as engine:
            assert engine.workers == 2 and "room for 2" in notes[0]
            ev = evaluate(model, dataset, engine=engine, batch_size=64)
            np.testing.assert_array_equal(ev.probabilities, local_eval.probabilities)
            seen = []
            for n, item in enumerate(explain_selection(model, dataset, chosen, request, engine=engine,
                                                       chunk_size=4)):
                seen.append(item)
                if n == 0:  # kill one replica's process while the other chunks are in flight
                    os.kill(next(iter(engine.pids().values())), signal.SIGKILL)
            workers = engine.per_worker()
        assert [r.index for r in seen] == chosen  # none lost, none twice, in order
        for r in seen:
            np.testing.assert_allclose(r.attributions, local[r.index].attributions, rtol=0, atol=1e-6)
        assert any("was lost" in note for note in notes), notes
        assert len(workers) >= 3 and sum(workers.values()) == len(dataset) + len(chosen)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
