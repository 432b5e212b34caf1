"""Models with several inputs and one-output models, through the one spine:
PyTorch ``forward(a, b)`` with an image and a feature vector, or one picture fed to
two image inputs; checked against captum called on the same tuple of inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from xai_core import explain
from xai_core.adapters.torch import TorchAdapter
from xai_core.cli import main
from xai_core.service import prepare_inputs
from xai_core.types import ImageSpec, InputError, UnsupportedError, VectorSpec

DIGIT = ImageSpec(size=(8, 8), mean=(0.0,), std=(1.0,), grayscale=True, name="digit")
EXTRA = VectorSpec(3, ("x", "y", "z"), name="extra")


class ImageAndVector(nn.Module):
    """A conv branch on an 8x8 grayscale image and a dense branch on 3 features -> 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.dense = nn.Linear(3, 4)
        self.head = nn.Linear(6, 3)

    def forward(self, a, b):
        fa = torch.relu(self.conv(a)).mean(dim=(2, 3))
        return self.head(torch.cat([fa, torch.tanh(self.dense(b))], dim=1))


class TwoViews(nn.Module):
    """The same picture at two sizes (8x8 and 12x12 RGB) -> 2 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.small = nn.Conv2d(3, 2, 3, padding=1)
        self.large = nn.Conv2d(3, 2, 5, padding=2)
        self.head = nn.Linear(4, 2)

    def forward(self, a, b):
        return self.head(torch.cat([torch.tanh(self.small(a)).mean((2, 3)), torch.tanh(self.large(b)).mean((2, 3))], 1))


@pytest.fixture(scope="module")
def picture():
    return (np.random.default_rng(0).random((20, 20, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_and_vector():
    return TorchAdapter(ImageAndVector(), [DIGIT, EXTRA], name="image_and_vector", device="cpu")


def _captum_inputs(items, specs):
    out = []
    for item, spec in zip(items, specs, strict=True):
        t = torch.from_numpy(item[None].copy())
        out.append(t.permute(0, 3, 1, 2).contiguous() if spec.kind == "image" else t)
    return tuple(out)


def test_integrated_gradients_gives_one_attribution_per_input_like_captum(image_and_vector, picture):
    from captum.attr import IntegratedGradients

    row = np.array([0.5, -1.0, 2.0], np.float32)
    result = explain(image_and_vector, [picture, row], "integrated_gradients", {"steps": 32}, target=1)
    assert result.inputs == ["digit", "extra"] and result.input_kinds == ["image", "vector"]
    assert result.attributions[0].shape == (8, 8) and result.attributions[1].shape == (3,)
    assert result.attribution is result.attributions[0]
    inputs = _captum_inputs(prepare_inputs(image_and_vector, [picture, row]), image_and_vector.inputs)
    ref_a, ref_b = IntegratedGradients(image_and_vector.model).attribute(
        inputs, baselines=tuple(torch.zeros_like(t) for t in inputs), target=1, n_steps=32, method="gausslegendre")
    np.testing.assert_allclose(result.attributions[0], ref_a[0].sum(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(result.attributions[1], ref_b[0].numpy(), atol=1e-5)
    assert abs(result.extras["convergence_delta"]) < 1e-3


def test_one_picture_feeds_two_image_inputs_like_captum_saliency(picture):
    from captum.attr import Saliency

    specs = [ImageSpec(size=(8, 8), name="small"), ImageSpec(size=(12, 12), name="large")]
    adapter = TorchAdapter(TwoViews(), specs, name="two_views", device="cpu")
    result = explain(adapter, picture, "saliency", {"absolute": False}, target=0)
    assert [a.shape for a in result.attributions] == [(8, 8), (12, 12)]
    items = prepare_inputs(adapter, picture)
    normalised = [(torch.from_numpy(x[None].copy()).permute(0, 3, 1, 2) - adapter._norm[i][0]) / adapter._norm[i][1]
                  for i, x in enumerate(items)]
    grads = Saliency(adapter.model).attribute(tuple(t.contiguous() for t in normalised), target=0, abs=False)
    for i, g in enumerate(grads):  # d/d(x01) = d/d(normalised) / std
        expected = (g[0] / adapter._norm[i][1][0]).sum(0).numpy()
        np.testing.assert_allclose(result.attributions[i], expected, rtol=1e-4, atol=1e-6)


def test_single_input_methods_and_stray_layer_are_clear_errors(image_and_vector, picture):
    row = np.zeros(3, np.float32)
    with pytest.raises(UnsupportedError, match="occlusion explains models with one input.*use integrated_gradients"):
        explain(image_and_vector, [picture, row], "occlusion")
    with pytest.raises(InputError, match="give one item per input"):
        explain(image_and_vector, picture, "saliency")
    with pytest.raises(InputError, match="saliency does not use a layer"):
        explain(image_and_vector, [picture, row], "saliency", layer="conv")


def test_cli_writes_one_file_per_input(tmp_path, picture):
    from PIL import Image

    module = TwoViews().eval()
    example = (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 12, 12))
    path = tmp_path / "two_views.pt"
    torch.jit.save(torch.jit.trace(module, example), path)
    path.with_suffix(".json").write_text(json.dumps({"inputs": [
        {"kind": "image", "name": "small", "size": [8, 8]}, {"kind": "image", "name": "large", "size": [12, 12]}]}))
    Image.fromarray(picture).save(tmp_path / "pic.png")
    out = tmp_path / "out"
    code = main(["explain", "--model", str(path), "--image", str(tmp_path / "pic.png"),
                 "--method", "integrated_gradients", "--param", "steps=8", "--out", str(out)])
    assert code == 0
    for name, side in (("small", 8), ("large", 12)):
        assert np.load(out / f"pic__integrated_gradients__{name}.npy").shape == (side, side)
        assert (out / f"pic__integrated_gradients__{name}.png").is_file()
    assert np.load(out / "pic__integrated_gradients.npy").shape == (8, 8)  # the first input's, as before
    (record,) = json.loads((out / "results.json").read_text())
    assert record["inputs"] == ["small", "large"] and [f["input"] for f in record["input_files"]] == ["small", "large"]


def test_vector_input_is_drawn_as_bars(image_and_vector, picture):
    from xai_core import render

    result = explain(image_and_vector, [picture, np.ones(3, np.float32)], "saliency", target=2)
    bars = render.draw_input(result, 1, None, list(EXTRA.feature_names))
    assert bars.ndim == 3 and bars.shape[2] == 3 and bars.dtype == np.uint8
    assert render.draw_input(result, 0, picture).shape == picture.shape
