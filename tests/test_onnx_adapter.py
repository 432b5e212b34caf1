"""ONNX adapter: a PyTorch CNN exported to ONNX predicts what the PyTorch model
predicts; layout, size and dtype come from the graph; only prediction-based
methods are offered; bad files fail with clear messages."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from twin_models import DIGITS_SPEC_DICT, digit_images, torch_digits

from xai_core import service
from xai_core.explainers import available_for
from xai_core.inputs.images import preprocess
from xai_core.loading.models import SpecOverrides, open_model
from xai_core.types import ImageSpec, InputError, ModelLoadError, UnsupportedError

SPEC = ImageSpec((32, 32), (0.5,), (0.5,), grayscale=True)


class NHWCInput(torch.nn.Module):
    """Takes N x H x W x C (as TensorFlow exports do) and ends in a softmax."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(self.inner(x.permute(0, 3, 1, 2)), dim=1)


class TwoInputs(torch.nn.Module):
    def forward(self, a, b):
        return a.mean(dim=(2, 3)) + b


def export(module, example, path, dynamic_batch=True, input_names=("image",)):
    kwargs = {"input_names": list(input_names), "output_names": ["scores"], "dynamo": False}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {input_names[0]: {0: "batch"}, "scores": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), **kwargs)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx_models")
    module = torch_digits()
    x = torch.zeros(1, 1, 32, 32)
    paths = {
        "nchw": export(module, (x,), out / "digits.onnx"),
        "fixed_batch": export(module, (x,), out / "digits_b1.onnx", dynamic_batch=False),
        "nhwc_softmax": export(NHWCInput(module), (torch.zeros(1, 32, 32, 1),), out / "digits_nhwc.onnx"),
        "two_inputs": export(TwoInputs(), (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3)), out / "two.onnx",
                             dynamic_batch=False, input_names=("a", "b")),
    }
    data = paths["nchw"].read_bytes()
    (out / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (out / "noise.onnx").write_bytes(np.random.default_rng(0).bytes(3000))
    (out / "empty.onnx").write_bytes(b"")
    paths["nchw"].with_suffix(".json").write_text(json.dumps(DIGITS_SPEC_DICT))
    return module, out, paths


@pytest.fixture(scope="module")
def batch():
    return np.stack([preprocess(im, SPEC) for im in digit_images(6)])


def torch_probs(module, batch):
    with torch.no_grad():
        x = (torch.from_numpy(batch).permute(0, 3, 1, 2) - 0.5) / 0.5
        return torch.softmax(module(x), 1).numpy()


@pytest.mark.parametrize("kind", ["nchw", "fixed_batch", "nhwc_softmax"])
def test_predictions_match_torch(files, batch, kind):
    module, _, paths = files
    adapter = open_model(paths[kind])
    assert adapter.framework == "onnx"
    assert adapter.capabilities == {"predict"}
    # size and channels read from the graph's input (no sidecar except for nchw)
    assert adapter.spec.size == (32, 32) and adapter.spec.grayscale
    assert adapter.spec.mean == (0.5,) and adapter.spec.std == (0.5,)
    expected_layout = "NHWC" if kind == "nhwc_softmax" else "NCHW"
    assert adapter.input.layout == expected_layout
    assert adapter.input.batch == (1 if kind == "fixed_batch" else None)
    assert adapter.output_kind == ("probability" if kind == "nhwc_softmax" else "logit")
    probs = adapter.predict(batch, batch_size=4)  # 4 + a short last chunk of 2
    assert probs.shape == (6, 10)
    np.testing.assert_allclose(probs, torch_probs(module, batch), atol=1e-5)


def test_sidecar_labels_and_size_checks(files):
    _, _, paths = files
    adapter = open_model(paths["nchw"])
    assert adapter.labels == [str(i) for i in range(10)]
    with pytest.raises(InputError, match="--input-size 32,32"):
        open_model(paths["nchw"], overrides=SpecOverrides(size=(64, 64)))
    with pytest.raises(InputError, match="grayscale on"):
        open_model(paths["nchw"], overrides=SpecOverrides(grayscale=False))


def test_only_prediction_methods_are_offered(files):
    _, _, paths = files
    adapter = open_model(paths["nchw"])
    assert {e.name for e in available_for(adapter)} == {"lime", "occlusion", "rise", "shap_partition"}
    image = digit_images(1)[0]
    for method in ("saliency", "integrated_gradients", "grad_cam"):
        with pytest.raises(UnsupportedError, match="ONNX models offer predictions only"):
            service.explain(adapter, image, method)


def test_perturbation_methods_match_torch(files):
    """Occlusion and LIME on the ONNX export equal those on the PyTorch model."""
    module, _, paths = files
    from xai_core.adapters.torch import TorchAdapter

    onnx_adapter = open_model(paths["nchw"])
    torch_adapter = TorchAdapter(module, SPEC, device="cpu")
    image = digit_images(1, offset=2)[0]
    for method, params in (("occlusion", {"window": 8, "stride": 8}), ("lime", {"samples": 80, "segments": 12})):
        a = service.explain(onnx_adapter, image, method, params, seed=1)
        b = service.explain(torch_adapter, image, method, params, seed=1)
        assert a.target == b.target
        scale = np.abs(b.attribution).max()
        assert scale > 0 and np.abs(a.attribution - b.attribution).max() <= 1e-3 * scale


@pytest.mark.parametrize(("name", "pattern"), [
    ("truncated.onnx", "not a readable ONNX model"),
    ("noise.onnx", "not a readable ONNX model"),
    ("empty.onnx", "the file is empty"),
])
def test_bad_files_fail_clearly(files, name, pattern):
    _, out, _ = files
    with pytest.raises(ModelLoadError, match=pattern) as info:
        open_model(out / name)
    assert name in str(info.value)


def test_two_inputs_image_and_vector(files):
    """A graph with an image input and a feature-row input: one spec each, named
    after the graph's inputs, and both fed on every call (the fixed batch of 1 too)."""
    _, out, _ = files
    adapter = open_model(out / "two.onnx")
    assert [s.name for s in adapter.inputs] == ["a", "b"] and adapter.input_kinds == ["image", "vector"]
    rng = np.random.default_rng(0)
    image, row = rng.random((2, 8, 8, 3), dtype=np.float32), rng.random((2, 3), dtype=np.float32)
    normalised = (image - np.array(adapter.spec.mean, np.float32)) / np.array(adapter.spec.std, np.float32)
    np.testing.assert_allclose(adapter.outputs([image, row]), normalised.mean(axis=(1, 2)) + row, atol=1e-5)
    with pytest.raises(InputError, match="takes 2 input"):
        adapter.predict(image)


def test_non_float_input_is_refused(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Cast", ["image"], ["scores"], to=TensorProto.FLOAT)
    graph = helper.make_graph(
        [node], "uint8_input",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "uint8.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match=r"tensor\(uint8\) input; only float image tensors"):
        open_model(path)
