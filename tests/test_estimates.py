"""Estimates before a run: every method and metric counts its model evaluations
ahead, and the count is what the run then spends (in-process and through the model
worker); the command line states the estimate before any work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xai_core.explainers import REGISTRY
from xai_core.metrics.estimate import estimate_metrics
from xai_core.service.estimate import Estimate, Timing, estimate_explain, explain_evals

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"lime": {"samples": 40, "segments": 12}, "smoothgrad": {"samples": 5}, "integrated_gradients": {"steps": 9},
         "shap_gradient": {"samples": 6, "background_size": 2}, "shap_partition": {"max_evals": 60},
         "occlusion": {"window": 8, "stride": 6}, "layer_conductance": {"steps": 5},
         "neuron_conductance": {"steps": 5}, "shap_deep": {"background_size": 3}, "rise": {"masks": 40},
         "score_cam": {"channels": 3}, "ablation_cam": {"channels": 3}}
# the gradient-free CAMs scoring every channel learn the layer's width only when they read it
UNKNOWN_AHEAD = {("score_cam", ()), ("ablation_cam", ())}
IMAGE_METHODS = sorted(k for k, e in REGISTRY.items() if e.input_kind == "image")


@pytest.fixture(scope="module")
def digits():
    from xai_core.loading.models import open_model

    return open_model("digits_cnn")


@pytest.fixture(scope="module")
def picture():
    import skimage.data

    return skimage.data.chelsea()[::4, ::4]


@pytest.fixture(scope="module")
def vit():
    from xai_core.loading.models import open_model

    return open_model("digits_vit")


@pytest.mark.parametrize("method", IMAGE_METHODS)
def test_every_image_method_spends_what_it_planned(digits, vit, picture, method):
    """On the digits CNN, or the shipped ViT for the methods made for transformers."""
    from xai_core import service
    from xai_core.explainers import available_for

    if method not in {e.name for e in available_for(digits)}:
        digits = vit
    params = SMALL.get(method, {})
    planned, _ = explain_evals(digits, method, params)
    assert planned is not None, f"{method} declares no planned_evals"
    if (method, ()) in UNKNOWN_AHEAD:
        assert explain_evals(digits, method, {})[0] is None  # says so rather than guess
    assert service.explain(digits, picture, method, params).model_evals == planned
    # a given target costs the same: single-pass methods take the probabilities from their own pass
    assert service.explain(digits, picture, method, params, target=2).model_evals == planned


def test_several_classes_and_the_worker_path(picture, digits, tmp_path):
    """Through the model worker (a TorchScript file) the plan holds too, and the
    estimate is priced at a time measured through the worker."""
    import torch

    from model_zoo.pretrained import own_model
    from xai_core import service
    from xai_core.loading.models import SpecOverrides, open_model

    path = tmp_path / "digits.pt"
    torch.jit.save(torch.jit.trace(own_model("digits_cnn").eval(), torch.zeros(1, 1, 32, 32)), str(path))
    remote = open_model(str(path), overrides=SpecOverrides(size=(32, 32), mean=(0.5,), std=(0.5,), grayscale=True))
    assert remote.engine == "worker"
    items = service.prepare_inputs(remote, picture)
    estimate = estimate_explain(remote, items, "occlusion", SMALL["occlusion"])
    e = service.explain(remote, picture, "occlusion", SMALL["occlusion"])
    assert estimate.evals == e.model_evals and estimate.seconds is not None and estimate.seconds > 0
    several = estimate_explain(digits, None, "occlusion", SMALL["occlusion"], classes=3, measure_now=False)
    spent = sum(x.model_evals for x in service.explain_classes(digits, picture, "occlusion", SMALL["occlusion"],
                                                               classes="top3"))
    # the classes share their perturbed images, so the run spends no more than planned
    assert spent <= several.evals and several.seconds is None or several.seconds >= 0


@pytest.mark.parametrize("method", ["occlusion", "saliency"])
def test_every_image_metric_spends_what_it_planned(digits, picture, method):
    from xai_core import service
    from xai_core.metrics import Modality, metrics_for
    from xai_core.metrics.service import evaluate_inputs

    e = service.explain(digits, picture, method, SMALL.get(method, {}))
    items = service.prepare_inputs(digits, picture)
    names = [m.name for m in metrics_for(Modality.IMAGE)]
    params = {"deletion": {"steps": 4, "random_orders": 2}, "randomization": {"steps": 2}, "sensitivity": {"samples": 2}}
    planned = estimate_metrics(digits, items, [(e.method, e.params)], names, params)
    spent = next(iter(evaluate_inputs(digits, items, e, names, params).values()))
    assert {n: planned[n].evals for n in names} == {n: spent[n].model_evals for n in names}
    assert all(planned[n].seconds is not None for n in names)


def test_the_price_of_evaluations_and_the_words():
    timing = Timing(fixed=0.5, per_item=0.1)
    assert timing.seconds(20, 8) == pytest.approx(3 * 0.5 + 20 * 0.1)
    assert timing.seconds(0, 8) == 0.0
    assert Estimate(1001, 12.4).line == "estimated ~12 s (1,001 model evaluations)"
    assert Estimate(500, None, at_most=True).words == "at most 500 model evaluations"
    assert Estimate(1, 0.004).words == "~0.004 s (1 model evaluation)"
    assert (Estimate(10, 1.0) + Estimate(None, None)).evals is None


def test_the_command_line_states_the_estimate_before_it_runs(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "xai_core", "explain", "--model", "digits_cnn", "--image",
         str(ROOT / "sample_images" / "astronaut.jpg"), "--method", "occlusion", "saliency",
         "--param", "window=8", "stride=8", "--metrics", "deletion", "sensitivity", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("estimated ")]
    assert len(lines) == 1, done.stdout
    assert not done.stderr.strip().startswith("estimated")
    evals = int(lines[0].split("(")[1].split(" model evaluations")[0].replace(",", ""))
    records = json.loads((out / "results.json").read_text())
    spent = sum(r["model_evals"] + sum(m["model_evals"] for m in r["metrics"].values()) for r in records)
    assert evals == spent
    assert np.isfinite(float(lines[0].split("~")[1].split(" ")[0]))
