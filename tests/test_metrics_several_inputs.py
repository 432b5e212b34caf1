"""Metrics for models with several inputs: one curve/score per input, input i
perturbed in the order of its own attribution while the others stay as given.
Known answers (an input the model ignores has a flat deletion curve), agreement
with Quantus' PixelFlipping called on one input through a wrapper model that holds
the other fixed, a vector input's fill checked by hand, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from tests.test_several_inputs import DIGIT, EXTRA
from xai_core.adapters.torch import TorchAdapter
from xai_core.metrics.service import evaluate_inputs
from xai_core.service import explain, prepare_inputs

ROW = np.array([0.5, -1.0, 2.0], np.float32)


class IgnoresB(nn.Module):
    """A conv branch on the 8x8 digit; the 3 features b reach the output times 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, a, b):
        return self.head(torch.relu(self.conv(a)).mean(dim=(2, 3))) + 0.0 * b.sum(1, keepdim=True)


class UsesBoth(nn.Module):
    """A tanh conv branch on the 8x8 digit and a dense branch on 3 features -> 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.dense = nn.Linear(3, 4)
        self.head = nn.Linear(8, 3)

    def forward(self, a, b):
        return self.head(torch.cat([torch.tanh(self.conv(a)).mean(dim=(2, 3)), torch.tanh(self.dense(b))], 1))


@pytest.fixture(scope="module")
def picture():
    return (np.random.default_rng(0).random((20, 20, 3)) * 255).astype(np.uint8)


def test_an_ignored_input_has_a_flat_deletion_curve(picture):
    adapter = TorchAdapter(IgnoresB(), [DIGIT, EXTRA], name="ignores_b", device="cpu")
    exp = explain(adapter, [picture, ROW], "saliency", target=0)
    items = prepare_inputs(adapter, [picture, ROW])
    got = evaluate_inputs(adapter, items, exp, ["deletion", "road", "randomization"],
                          {"deletion": {"steps": 8}, "randomization": {"steps": 1}})
    assert list(got) == ["digit", "extra"]
    assert list(got["digit"]) == ["deletion", "road", "randomization"]
    assert list(got["extra"]) == ["deletion", "randomization"]  # ROAD is for images only
    digit, extra = got["digit"]["deletion"], got["extra"]["deletion"]
    assert np.ptp(extra.curve[1]) == 0 and np.ptp(extra.baseline_curve[1]) == 0  # b changes nothing
    assert np.ptp(digit.curve[1]) > 1e-3
    assert extra.record()["input"] == "extra" and digit.input == "digit"
    # the sanity check runs per input too, over every weight layer
    assert got["digit"]["randomization"].details["total_layers"] == 2


def test_deletion_of_one_input_equals_quantus_with_the_other_held(picture):
    """Quantus' PixelFlipping takes a one-input model: the wrapper feeds the fixed row."""
    import quantus

    module = UsesBoth().eval()
    adapter = TorchAdapter(module, [DIGIT, EXTRA], name="uses_both", device="cpu")
    exp = explain(adapter, [picture, ROW], "integrated_gradients", {"steps": 16}, target=1)
    items = prepare_inputs(adapter, [picture, ROW])
    ours = evaluate_inputs(adapter, items, exp, ["deletion"], {"deletion": {"steps": 16}})["digit"]["deletion"]

    class HoldB(nn.Module):
        def forward(self, a):
            return module(a, torch.from_numpy(ROW).expand(len(a), 3))

    x = np.transpose(items[0], (2, 0, 1))[None]
    metric = quantus.PixelFlipping(features_in_step=64 // 16, perturb_baseline=0.0, normalise=False,
                                   disable_warnings=True, return_auc_per_sample=False)
    theirs = metric(model=HoldB().eval(), x_batch=x, y_batch=np.array([1]),
                    a_batch=exp.attributions[0][None, None].astype(np.float32), device="cpu", softmax=True)[0]
    np.testing.assert_allclose(ours.curve[1][1:], theirs, atol=1e-5)


def test_vector_input_features_take_the_background_mean(picture):
    adapter = TorchAdapter(UsesBoth().eval(), [DIGIT, EXTRA], name="uses_both", device="cpu")
    exp = explain(adapter, [picture, ROW], "integrated_gradients", {"steps": 16}, target=2)
    items = prepare_inputs(adapter, [picture, ROW])
    background = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    got = evaluate_inputs(adapter, items, exp, ["deletion"], {"deletion": {"steps": 3}},
                          backgrounds=[None, background])["extra"]["deletion"]
    # by hand: the most attributed feature first, each replaced by the background's mean
    order = np.argsort(-exp.attributions[1], kind="stable")
    rows = [ROW.copy()]
    for j in order:
        rows.append(rows[-1].copy())
        rows[-1][j] = background[:, j].mean()
    images = np.repeat(items[0][None], 4, 0)
    want = adapter.predict([images, np.stack(rows)])[:, 2]
    np.testing.assert_allclose(got.curve[1], want, atol=1e-6)
    # without a background a removed feature is 0
    zero = evaluate_inputs(adapter, items, exp, ["deletion"], {"deletion": {"steps": 3}})["extra"]["deletion"]
    assert zero.curve[1][-1] == pytest.approx(float(adapter.predict([items[0][None], np.zeros((1, 3))])[0, 2]))


def test_cli_reports_metrics_per_input_for_a_worker_run_model(tmp_path, picture):
    """A TorchScript file runs in the confined worker: the metrics run there too,
    the randomisation check included (its randomised copy made inside the worker)."""
    from PIL import Image

    from tests.test_several_inputs import TwoViews
    from xai_core.cli.main import main

    path = tmp_path / "two_views.pt"
    torch.jit.save(torch.jit.trace(TwoViews().eval(), (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 12, 12))), path)
    path.with_suffix(".json").write_text(json.dumps({"inputs": [
        {"kind": "image", "name": "small", "size": [8, 8]}, {"kind": "image", "name": "large", "size": [12, 12]}]}))
    Image.fromarray(picture).save(tmp_path / "pic.png")
    out = tmp_path / "out"
    code = main(["explain", "--model", str(path), "--image", str(tmp_path / "pic.png"), "--method", "saliency",
                 "--metrics", "deletion,randomization", "--metric-param", "deletion.steps=4",
                 "--metric-param", "randomization.steps=1", "--out", str(out)])
    assert code == 0
    (record,) = json.loads((out / "results.json").read_text())
    assert list(record["metrics"]) == ["small", "large"]
    for name in ("small", "large"):
        deletion = record["metrics"][name]["deletion"]
        assert deletion["input"] == name and len(deletion["curve"]["y"]) == 5
        assert record["metrics"][name]["randomization"]["details"]["total_layers"] == 3


def test_cli_metric_background_for_a_vector_input(tmp_path, picture, capsys):
    """--metric-background NAME=FILE: a vector input's removed features take the
    rows' mean; naming an image input is one clear error."""
    import pandas as pd
    from PIL import Image

    from xai_core.cli.main import main

    module = UsesBoth().eval()
    path = tmp_path / "uses_both.pt"
    torch.jit.save(torch.jit.trace(module, (torch.zeros(1, 1, 8, 8), torch.zeros(1, 3))), path)
    path.with_suffix(".json").write_text(json.dumps({"inputs": [
        {"kind": "image", "name": "digit", "size": [8, 8], "grayscale": True, "mean": [0.0], "std": [1.0]},
        {"kind": "vector", "name": "extra", "size": 3}]}))
    Image.fromarray(picture).save(tmp_path / "pic.png")
    np.savetxt(tmp_path / "row.csv", ROW[None], delimiter=",")
    rows = np.random.default_rng(4).normal(size=(30, 3)).astype(np.float32)
    pd.DataFrame(rows, columns=["x", "y", "z"]).to_csv(tmp_path / "bg.csv", index=False)
    base = ["explain", "--model", str(path), "--image", str(tmp_path / "pic.png"), "--input",
            f"extra={tmp_path / 'row.csv'}", "--method", "saliency", "--target", "0", "--metrics", "deletion",
            "--metric-param", "deletion.steps=3"]
    assert main([*base, "--metric-background", f"extra={tmp_path / 'bg.csv'}", "--out", str(tmp_path / "out")]) == 0
    (record,) = json.loads((tmp_path / "out" / "results.json").read_text())
    curve = record["metrics"]["extra"]["deletion"]["curve"]["y"]
    digit = torch.from_numpy(prepare_inputs(TorchAdapter(module, [DIGIT, EXTRA], device="cpu"),
                                            [picture, ROW])[0]).permute(2, 0, 1)[None]
    every_feature_removed = torch.from_numpy(rows.mean(0, dtype=np.float64).astype(np.float32))[None]
    want = torch.softmax(module(digit, every_feature_removed), 1)[0, 0].item()
    assert curve[-1] == pytest.approx(want, abs=1e-5)
    capsys.readouterr()
    code = main([*base, "--metric-background", f"digit={tmp_path / 'bg.csv'}", "--out", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --metric-background 'digit': not a feature-vector input")
    assert err.count("\n") == 1
