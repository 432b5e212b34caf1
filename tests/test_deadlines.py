"""Deadlines that follow the model's own cost (issue 20): a short load deadline,
then a per-batch deadline from the model's measured time per item."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import attack_files as attack
import numpy as np
import pytest

from xai_core.loading.models import open_model
from xai_core.worker.client import LOAD_WALL_FACTOR, WorkerError, batch_deadline, load_deadline

ROOT = Path(__file__).resolve().parents[1]


def test_load_deadline_scales_with_the_file(monkeypatch):
    monkeypatch.delenv("XAI_LOAD_DEADLINE", raising=False)
    monkeypatch.delenv("XAI_WORKER_DEADLINE", raising=False)
    tiny, vgg16, two_gb = load_deadline(654), load_deadline(554_726_953), load_deadline(2 * 2**30)
    # the endless-loop file is stopped within a minute (worker start included), however busy the machine...
    assert LOAD_WALL_FACTOR * tiny < 60.01
    # ...while honest big files get 1.5x their measured time (VGG16 .pt2: 14.3 s on 2 busy cores, scaled)
    assert vgg16 >= 1.5 * 14.3 and two_gb >= 1.5 * 14.3 * 2 * 2**30 / 554_726_953
    monkeypatch.setenv("XAI_LOAD_DEADLINE", "7")
    assert load_deadline(2 * 2**30) == 7
    monkeypatch.setenv("XAI_WORKER_DEADLINE", "3")  # the per-call deadline caps it
    assert load_deadline(654) == 3


def test_endless_loop_stopped_at_load_from_the_command_line(tmp_path):
    pytest.importorskip("onnx")
    path = attack.onnx_endless_loop(tmp_path / "loop.onnx")
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(attack.random_image()).save(image)
    begun = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "xai_core", "explain", "--model", str(path), "--image", str(image),
                          "--method", "occlusion", "--out", str(tmp_path / "out"), "--deadline-load", "3"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 2 and time.monotonic() - begun < 60
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: loop.onnx:"), run.stderr
    assert "did not load the model within its 3 s load deadline" in lines[0]


def test_model_slower_than_its_calibration_is_stopped_in_seconds(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.setenv("XAI_BATCH_DEADLINE_FLOOR", "2")
    model = open_model(attack.onnx_slow_beyond_probe(tmp_path / "slow.onnx"))
    per_item = model._worker.per_item_s
    assert per_item is not None and 0 < per_item < 1
    assert batch_deadline(3, per_item) < 3
    assert model.predict(np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 3)  # the probe's size: honest
    begun = time.monotonic()
    with pytest.raises(WorkerError) as info:
        model.predict(np.zeros((3, 8, 8, 3), np.float32))  # one item more: 10^12 loop trips
    assert time.monotonic() - begun < 15
    text = str(info.value)
    assert text.startswith("slow.onnx: the model did not finish a batch of 3 within 2 s") and "\n" not in text
    # the next call starts a fresh worker with the same model
    assert model.predict(np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 3)


def test_long_honest_runs_keep_going_past_the_batch_floor(tmp_path, monkeypatch):
    """Many batches, each within its own deadline, make a call longer than the floor."""
    pytest.importorskip("onnx")
    monkeypatch.setenv("XAI_BATCH_DEADLINE_FLOOR", "0.5")
    monkeypatch.setenv("XAI_BATCH_DEADLINE_FACTOR", "200")
    model = open_model(attack.honest_onnx(tmp_path / "fine.onnx"))
    x = np.random.default_rng(0).random((4000, 8, 8, 3)).astype(np.float32)
    out = model.predict(x, batch_size=2)  # 2000 announced batches
    assert out.shape == (4000, 3) and np.allclose(out.sum(1), 1, atol=1e-5)
