"""Layer and neuron methods on TorchScript files (issue 20 item 3): a program
saved with ``torch.jit.script`` or ``torch.jit.trace`` is hooked through the
wrappers of :mod:`xai_core.adapters.script_layers`. Through the confined worker,
as an upload is, every layer method equals the in-process result on the
original nn.Module, and captum / pytorch-grad-cam on that module."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from tests.test_cli import run_cli
from tests.test_every_format import _net as one_size_net
from xai_core.adapters.script_layers import hookable
from xai_core.adapters.torch import TorchAdapter
from xai_core.inputs.images import preprocess
from xai_core.loading.models import open_model
from xai_core.service import explain

SIDE = 16
SIDECAR = {"size": [SIDE, SIDE], "mean": [0.5] * 3, "std": [0.5] * 3, "labels": ["a", "b", "c"]}


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        # a skip connection crosses the cut; relu runs twice (traced: forward and forward1)
        return self.relu(self.conv(self.relu(x)) + x)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.block = Block()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden = nn.Linear(4, 6)
        self.act = nn.Sigmoid()
        self.out = nn.Linear(6, 3)

    def features(self, x):  # a method other than forward: inlined to reach its calls
        return self.block(self.stem(x))

    def forward(self, x):
        return self.out(self.act(self.hidden(torch.flatten(self.pool(self.features(x)), 1))))


def _net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def _save(module, example, path, form: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.jit.script(module) if form == "script" else torch.jit.trace(module, example)
        torch.jit.save(program, str(path))
    return torch.jit.load(str(path))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("ts_layers")
    net = _net()
    paths = {}
    for form in ("script", "trace"):
        paths[form] = out / f"{form}.pt"
        _save(net, torch.rand(2, 3, SIDE, SIDE), paths[form], form)
        paths[form].with_suffix(".json").write_text(json.dumps(SIDECAR))
    return paths, net


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(3).random((SIDE, SIDE, 3)) * 255).astype(np.uint8)


def _tensor(image, model) -> torch.Tensor:
    x = torch.from_numpy(preprocess(image, model.spec)).permute(2, 0, 1)[None]
    return (x - 0.5) / 0.5


@pytest.mark.parametrize("form", ["script", "trace"])
@pytest.mark.parametrize("layer", ["stem.0", "block", "block.conv", "block.relu", "pool", "hidden"])
def test_wrapped_layers_see_what_the_module_hooks_see(tmp_path, form, layer):
    net = _net()
    x = torch.rand(2, 3, SIDE, SIDE, requires_grad=True)
    wrapped = hookable(_save(net, x.detach(), tmp_path / "m.pt", form))
    assert [n for n, _ in wrapped.named_modules()] == [n for n, _ in net.named_modules()]
    got, ref = [], []
    a = wrapped.get_submodule(layer).register_forward_hook(lambda _m, _i, out: got.append(out))
    b = net.get_submodule(layer).register_forward_hook(lambda _m, _i, out: ref.append(out))
    out, want = wrapped(x), net(x)
    a.remove()
    b.remove()
    assert len(got) == len(ref) == (2 if layer == "block.relu" else 1)
    torch.testing.assert_close(out, want)
    for value, expected in zip(got, ref, strict=True):
        torch.testing.assert_close(value, expected)
    (g,) = torch.autograd.grad(out[:, 1].sum(), got[-1])
    (g_ref,) = torch.autograd.grad(want[:, 1].sum(), ref[-1])
    torch.testing.assert_close(g, g_ref)
    # a hook that replaces the layer's output changes what follows as in the module
    a = wrapped.get_submodule(layer).register_forward_hook(lambda _m, _i, out: out * 0.5)
    b = net.get_submodule(layer).register_forward_hook(lambda _m, _i, out: out * 0.5)
    torch.testing.assert_close(wrapped(x), net(x))
    a.remove()
    b.remove()


@pytest.mark.parametrize("form", ["script", "trace"])
def test_layer_picker_through_the_worker_lists_the_module_layers(files, form):
    paths, net = files
    model = open_model(paths[form])
    assert model.engine == "worker"
    local = TorchAdapter(net, model.spec, list(model.labels), name="in-process")
    remote = [(i.name, i.kind, i.layout.describe()) for i in model.layers()]
    assert remote == [(i.name, i.kind, i.layout.describe()) for i in local.layers()]
    assert ("block", "Block", "channels-first map 4x16x16") in remote
    assert "block.relu" not in [name for name, _, _ in remote]  # runs twice: no single output, as in the module
    assert model.default_cam_choice()[0] == local.default_cam_choice()[0]


METHODS = [
    ("grad_cam", "block", {}),
    ("grad_cam_plus_plus", "stem", {}),
    ("layer_conductance", "hidden", {"steps": 16}),
    ("layer_conductance", "block.conv", {"steps": 8}),
    ("neuron_conductance", "act", {"steps": 8, "neuron": 2}),
    ("integrated_gradients", "hidden", {"steps": 8}),
    ("integrated_gradients", "act", {"steps": 8, "at": "input"}),
]


@pytest.mark.parametrize("form", ["script", "trace"])
@pytest.mark.parametrize(("method", "layer", "params"), METHODS)
def test_layer_methods_through_the_worker_equal_in_process(files, image, form, method, layer, params):
    paths, net = files
    model = open_model(paths[form])
    remote = explain(model, image, method, params, seed=0, layer=layer)
    local = explain(TorchAdapter(net, model.spec, list(model.labels), name="in-process"), image, method, params,
                    seed=0, layer=layer)
    assert remote.layer == local.layer == layer
    np.testing.assert_allclose(remote.attribution, local.attribution, rtol=1e-4, atol=1e-6)
    if local.layer_attribution is not None:
        np.testing.assert_allclose(remote.layer_attribution, local.layer_attribution, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("form", ["script", "trace"])
def test_layers_command_lists_a_torchscript_file(files, form):
    listing = run_cli("layers", "--model", str(files[0][form]))
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[1]: line for line in listing.stdout.splitlines()[1:] if len(line.split()) > 2}
    assert "channels-first map 4x16x16" in rows["block"] and "<- default for grad_cam" in rows["block"]
    assert "vector of 6 units" in rows["hidden"]


def test_equal_to_captum_and_pytorch_grad_cam(files, image):
    from captum.attr import LayerConductance, LayerGradCam
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    paths, net = files
    model = open_model(paths["script"])
    x = _tensor(image, model)
    ours = explain(model, image, "layer_conductance", {"steps": 16, "baseline": "black"}, layer="hidden", target=1)
    ref = LayerConductance(net, net.hidden).attribute(x, baselines=torch.full_like(x, -1.0), target=1, n_steps=16,
                                                       method="gausslegendre")
    np.testing.assert_allclose(ours.layer_attribution, ref[0].detach().numpy(), rtol=1e-4, atol=1e-6)

    cam = explain(model, image, "grad_cam", layer="block", target=1)
    ref = LayerGradCam(net, net.block).attribute(x, target=1, relu_attributions=True)
    np.testing.assert_allclose(cam.extras["cam"], ref[0, 0].detach().numpy(), rtol=1e-4, atol=1e-6)
    with GradCAM(model=net, target_layers=[net.block]) as grad_cam:
        pgc = grad_cam(input_tensor=x, targets=[ClassifierOutputTarget(1)])[0]
    mine = scale_cam_image(scale_cam_image(cam.extras["cam"][None], (SIDE, SIDE)))[0]
    np.testing.assert_allclose(mine, pgc, atol=1e-4)


@pytest.mark.parametrize("form", ["script", "trace"])
def test_a_program_of_one_image_size_is_traced_through_its_converted_graph(tmp_path, image, form):
    net = one_size_net()  # a Linear after the flattened map: one image size only
    path = tmp_path / "fixed.pt"
    _save(net, torch.rand(1, 3, SIDE, SIDE), path, form)
    path.with_suffix(".json").write_text(json.dumps(SIDECAR))
    model = open_model(path)
    local = TorchAdapter(net, model.spec, list(model.labels), name="in-process")
    assert [(i.name, i.layout.describe()) for i in model.layers()] == [
        (i.name, i.layout.describe()) for i in local.layers()]
    assert {i.name: i.layout.describe() for i in model.layers()}["relu"] == "channels-first map 4x16x16"
    remote = explain(model, image, "grad_cam", layer="relu", target=1)
    np.testing.assert_allclose(remote.attribution, explain(local, image, "grad_cam", layer="relu",
                                                           target=1).attribution, rtol=1e-4, atol=1e-6)


def test_without_its_converted_graph_a_one_size_program_keeps_its_vectors_only(tmp_path, image, monkeypatch):
    from xai_core.types import ImageSpec, UnsupportedError

    def unconvertible(self, shapes):
        raise RuntimeError("the converter cannot follow this program")

    monkeypatch.setattr(TorchAdapter, "_converted_layouts", unconvertible)
    program = _save(one_size_net(), torch.rand(1, 3, SIDE, SIDE), tmp_path / "fixed.pt", "trace")
    model = TorchAdapter(program, ImageSpec((SIDE, SIDE)), name="fixed", kind="torchscript", device="cpu")
    layouts = {i.name: i.layout.describe() for i in model.layers()}
    assert layouts["hidden"] == "vector of 8 units" and layouts["relu"].startswith("not a map")
    assert explain(model, image, "layer_conductance", {"steps": 4}, layer="hidden").layer == "hidden"
    with pytest.raises(UnsupportedError, match="Grad-CAM needs a spatial map"):
        explain(model, image, "grad_cam", layer="relu")


def test_scripted_titanic_mlp_conductance_from_explain_tabular(tmp_path):
    from captum.attr import LayerConductance

    from tests.test_conductance_rows import CSV
    from xai_core.tabular import explain_row, load_table, open_tabular_model

    zoo = open_tabular_model("titanic_mlp")
    path = tmp_path / "titanic_ts.pt"
    _save(zoo.model, None, path, "script")
    (tmp_path / "titanic_ts.json").write_text(json.dumps({"feature_names": list(zoo.feature_names),
                                                          "labels": list(zoo.labels)}))
    model = open_tabular_model(path)
    data = load_table(CSV, label_column="survived", n_features=model.n_features, model_features=model.feature_names)
    layer = explain_row(model, data, 0, "layer_conductance", {"layer": "sigmoid1", "baseline": "zeros", "steps": 50},
                        target=1)
    x = torch.from_numpy(data.x[:1].astype(np.float32))
    reference = LayerConductance(zoo.model, zoo.model.sigmoid1).attribute(x, target=1)[0].detach().numpy()
    np.testing.assert_allclose(layer.layer_attribution, reference, rtol=1e-4, atol=1e-6)

    result = run_cli("explain-tabular", "--model", str(path), "--data", str(CSV), "--label-column", "survived",
                     "--row", "0", "--method", "layer_conductance", "--param", "layer=sigmoid1", "steps=8",
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert row["layer"] == "sigmoid1" and len(row["layer_attribution"]) == 12


@pytest.mark.parametrize("form", ["script", "trace"])
def test_logit_choice_strips_a_torchscript_final_softmax(tmp_path, form):
    from xai_core.types import ImageSpec

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
                        nn.Softmax(dim=1)).eval()
    program = _save(net, torch.rand(1, 3, 8, 8), tmp_path / "soft.pt", form)
    picture = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    adapter = TorchAdapter(program, ImageSpec((8, 8)), name="soft", kind="torchscript", device="cpu")
    logits = TorchAdapter(net[:-1], ImageSpec((8, 8)), name="logits", device="cpu")
    got = explain(adapter, picture, "saliency", {"absolute": False}, target=2, output="logit")
    want = explain(logits, picture, "saliency", {"absolute": False}, target=2)
    np.testing.assert_allclose(got.attribution, want.attribution, atol=1e-6)
    assert adapter.output_kind == "probability"
