"""Trust checks and layer methods on models exported the way users export them
(issue 20): torch.export with a dynamic batch, torch.jit.script and trace, ONNX
with a dynamic batch, Keras functional; through the model worker, equal to the
same model run in-process."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from xai_core.inputs.images import preprocess
from xai_core.loading.models import open_model
from xai_core.metrics.service import evaluate_image
from xai_core.service import explain

SIDE = 16
SIDECAR = {"size": [SIDE, SIDE], "mean": [0.5] * 3, "std": [0.5] * 3, "labels": ["a", "b", "c"]}


def _net():
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.relu = nn.ReLU()
            self.hidden = nn.Linear(4 * SIDE * SIDE, 8)
            self.act = nn.Sigmoid()
            self.out = nn.Linear(8, 3)

        def forward(self, x):
            return self.out(self.act(self.hidden(torch.flatten(self.relu(self.conv(x)), 1))))

    torch.manual_seed(0)
    return Net().eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{form: path} for one small CNN saved as users save it, and the module itself."""
    import torch

    out = tmp_path_factory.mktemp("exported")
    net = _net()
    x = torch.rand(2, 3, SIDE, SIDE)
    files = {"export_dynamic": out / "dyn.pt2", "script": out / "scripted.pt", "trace": out / "traced.pt",
             "onnx_dynamic": out / "dyn.onnx"}
    program = torch.export.export(net, (x,), dynamic_shapes={"x": {0: torch.export.Dim.AUTO}})
    torch.export.save(program, files["export_dynamic"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(net), files["script"])
        torch.jit.save(torch.jit.trace(net, x), files["trace"])
        torch.onnx.export(net, (x,), files["onnx_dynamic"], dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    for path in files.values():
        path.with_suffix(".json").write_text(json.dumps(SIDECAR))
    return files, net


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(3).random((SIDE, SIDE, 3)) * 255).astype(np.uint8)


def in_process(net, remote):
    from xai_core.adapters.torch import TorchAdapter

    return TorchAdapter(net, remote.spec, list(remote.labels), name="in-process")


@pytest.mark.parametrize("form", ["export_dynamic", "script", "trace", "onnx_dynamic"])
def test_randomisation_check_on_every_export_form(exported, image, form):
    files, net = exported
    model = open_model(files[form])
    assert model.engine == "worker"
    method, params = ("occlusion", {"window": 4, "stride": 4}) if form.startswith("onnx") else ("saliency", {})
    x = preprocess(image, model.spec)
    exp = explain(model, image, method, params, seed=0)
    result = evaluate_image(model, x, exp, ["randomization"])["randomization"]
    # the same weights randomised with the same seed, on the module in-process
    local = in_process(net, model)
    reference = evaluate_image(local, x, explain(local, image, method, params, seed=0), ["randomization"])
    assert result.details["total_layers"] == 3
    assert result.value == pytest.approx(reference["randomization"].value, abs=1e-6)
    assert result.value < 0.9  # the map changed once the weights were random


def test_randomised_copy_of_a_dynamic_program_leaves_the_model_alone(exported, image):
    files, _ = exported
    model = open_model(files["export_dynamic"])
    x = preprocess(image, model.spec)[None]
    before = model.predict(x)
    copy = model.randomized_copy(3, seed=1)
    assert not np.allclose(copy.predict(x), before)
    assert np.array_equal(model.predict(x), before)


@pytest.mark.parametrize("method", ["layer_conductance", "grad_cam"])
def test_layer_methods_through_the_worker_equal_in_process(exported, image, method):
    files, net = exported
    model = open_model(files["export_dynamic"])
    layer = "hidden" if method == "layer_conductance" else "conv"
    assert layer in [info.name for info in model.layers()]  # the layer picker's list, from the worker
    params = {"steps": 16} if method == "layer_conductance" else {}
    remote = explain(model, image, method, params, seed=0, layer=layer)
    local = explain(in_process(net, model), image, method, params, seed=0, layer=layer)
    np.testing.assert_allclose(remote.attribution, local.attribution, rtol=1e-4, atol=1e-6)
    if method == "layer_conductance":
        np.testing.assert_allclose(remote.layer_attribution, local.layer_attribution, rtol=1e-4, atol=1e-6)
