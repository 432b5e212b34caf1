"""Models with several inputs and one-output models, through the one spine:
PyTorch ``forward(a, b)`` with an image and a feature vector, or one picture fed to
two image inputs; checked against captum called on the same tuple of inputs.
The perturbation methods (occlusion, LIME, SHAP Partition) are checked against
captum's Occlusion, answers we know, shap's own Image masker, and across PyTorch,
Keras and ONNX twins of one model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from xai_core import explain
from xai_core.adapters.torch import TorchAdapter
from xai_core.cli.main import main
from xai_core.service import explain_classes, prepare_inputs
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
    assert result.model_evals == 1 + 32 + 2  # the prediction, the path, its two ends: items, not inputs


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
    with pytest.raises(UnsupportedError, match="grad_cam explains models with one input.*use integrated_gradients"):
        explain(image_and_vector, [picture, row], "grad_cam")
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


ROW = np.array([0.5, -1.0, 2.0], np.float32)
FAST = {"occlusion": {"window": 4, "stride": 2}, "lime": {"samples": 300, "segments": 8},
        "shap_partition": {"max_evals": 200}}


class IgnoresB(nn.Module):
    """Class scores from the image alone; the vector input is read and ignored."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Linear(3, 3)
        with torch.no_grad():
            self.head.weight.mul_(10)

    def forward(self, a, b=None):
        out = self.head(torch.relu(self.conv(a)).mean((2, 3)))
        return out if b is None else out + 0.0 * b.sum(1, keepdim=True)


class ScoreOfB(nn.Module):
    """One raw output (a score: it leaves [0, 1]), linear in the vector input, blind to the image."""

    def forward(self, a, b):
        return 10 + (b * torch.tensor([2.0, -1.0, 0.5])).sum(1, keepdim=True) + 0.0 * a.mean((1, 2, 3))[:, None]


def _probability(module, target):
    return lambda *xs: torch.softmax(module(*xs), dim=1)


def test_occlusion_matches_captum_on_a_tuple_of_inputs(image_and_vector, picture, tmp_path):
    from captum.attr import Occlusion

    background = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
    np.save(tmp_path / "rows.npy", background)
    params = {"window": 4, "stride": 2, "fill": "black", "background_file": str(tmp_path / "rows.npy")}
    result = explain(image_and_vector, [picture, ROW], "occlusion", params, target=2)
    assert [a.shape for a in result.attributions] == [(8, 8), (3,)]
    assert result.model_evals == 1 + 9 + 3  # the prediction, 3 x 3 patches, 3 features
    inputs = _captum_inputs(prepare_inputs(image_and_vector, [picture, ROW]), image_and_vector.inputs)
    ref_a, ref_b = Occlusion(_probability(image_and_vector.model, 2)).attribute(
        inputs, sliding_window_shapes=((1, 4, 4), (1,)), strides=((1, 2, 2), (1,)),
        baselines=(0.0, torch.from_numpy(background.mean(0))[None]), target=2)
    np.testing.assert_allclose(result.attributions[0], ref_a[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.attributions[1], ref_b[0].numpy(), atol=1e-6)
    assert np.abs(result.attributions[1]).max() > 1e-3  # the vector branch matters to this model


def test_lime_gives_an_ignored_input_no_weight_and_keeps_single_input_quality():
    picture = np.kron(np.random.default_rng(1).integers(0, 256, (4, 4, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    specs = [ImageSpec(size=(16, 16), name="a"), VectorSpec(3, name="b")]
    module = IgnoresB().eval()
    params = {"samples": 400, "segments": 12}
    both = explain(TorchAdapter(module, specs, device="cpu"), [picture, ROW], "lime", params, target=0, seed=3)
    alone = explain(TorchAdapter(module, specs[0], device="cpu"), picture, "lime", params, target=0, seed=3)
    assert both.attributions[0].shape == (16, 16) and both.attributions[1].shape == (3,)
    weights_a = both.extras["input_weights"][0]
    assert np.abs(both.attributions[1]).max() < 0.05 * np.abs(weights_a).max()
    assert np.corrcoef(both.attributions[0].ravel(), alone.attribution.ravel())[0, 1] > 0.9
    assert abs(both.extras["fit_r2"] - alone.extras["fit_r2"]) < 0.1


def test_lime_overlay_uses_each_image_inputs_own_superpixels(picture):
    from tests.test_several_inputs import TwoViews
    from xai_core import render

    specs = [ImageSpec(size=(8, 8), name="small"), ImageSpec(size=(12, 12), name="large")]
    result = explain(TorchAdapter(TwoViews(), specs, device="cpu"), picture, "lime", FAST["lime"], target=0)
    segments = result.extras["input_segments"]
    assert [s.shape for s in segments] == [(8, 8), (12, 12)]
    for i, seg in enumerate(segments):
        view = render.input_view(result, i)
        np.testing.assert_array_equal(view.extras["segments"], seg)
        np.testing.assert_array_equal(render.upsample_to(view, *seg.shape), result.attributions[i])


def test_joint_masker_over_one_image_is_shaps_image_masker():
    import shap

    from xai_core.explainers.shap_partition import JointMasker

    rng = np.random.default_rng(0)
    x = rng.random((8, 8, 3)).astype(np.float32)
    w = rng.normal(size=(8 * 8 * 3, 2)).astype(np.float32)

    def f(batch):
        return np.tanh(np.asarray(batch).reshape(len(batch), -1) @ w)

    def image_masker(shape):
        return shap.maskers.Image("blur(4,4)", shape)

    joint = JointMasker([x], ["image"], image_masker, [x])
    ours = shap.explainers.Partition(f, joint)(x[None], max_evals=300, silent=True)
    ref = shap.explainers.Partition(f, image_masker(x.shape))(x[None], max_evals=300, silent=True)
    np.testing.assert_allclose(ours.values, ref.values, atol=1e-6)
    np.testing.assert_allclose(ours.base_values, ref.base_values, atol=1e-6)


def test_joint_masker_over_two_vectors_is_shaps_partition_masker_on_the_joined_row():
    """Vector inputs: the same values as shap's own Partition masker over the joined
    row, with the hidden values as its one background row and the joint tree."""
    import shap

    from xai_core.explainers.shap_partition import JointMasker

    rng = np.random.default_rng(0)
    a, b, fill_a, fill_b = (rng.normal(size=n).astype(np.float32) for n in (5, 3, 5, 3))
    w = rng.normal(size=(8, 1)).astype(np.float32)

    def f(*parts):
        return np.tanh(np.concatenate([np.asarray(p) for p in parts], axis=1) @ w) ** 2

    joint = JointMasker([a, b], ["vector", "vector"], None, [fill_a, fill_b])
    ours = shap.explainers.Partition(f, joint)(a[None], b[None], max_evals=200, silent=True)
    masker = shap.maskers.Partition(np.concatenate([fill_a, fill_b])[None], clustering=joint.clustering)
    ref = shap.explainers.Partition(f, masker)(np.concatenate([a, b])[None], max_evals=200, silent=True)
    np.testing.assert_allclose(np.concatenate([ours[0].values[0], ours[1].values[0]]), ref.values[0], atol=1e-6)
    assert np.abs(ref.values).max() > 0.05


def test_shap_partition_is_efficient_over_all_inputs(image_and_vector, picture):
    import shap

    from xai_core.explainers.shap_partition import JointMasker, ShapPartitionParams, masker_spec

    result = explain(image_and_vector, [picture, ROW], "shap_partition", {"max_evals": 300}, target=1)
    assert [a.shape for a in result.attributions] == [(8, 8), (3,)]
    items = prepare_inputs(image_and_vector, [picture, ROW])
    # everything hidden: the image blurred all over, the features 0
    masker = JointMasker(items, ["image", "vector"],
                         lambda s: shap.maskers.Image(masker_spec(ShapPartitionParams(), s[0], s[1]), s),
                         [items[0], np.zeros(3, np.float32)])
    hidden = masker(np.zeros(masker.shape[1], bool), *items)
    f_hidden = image_and_vector.predict(list(hidden))[0, 1]
    np.testing.assert_allclose(result.extras["base_value"], f_hidden, atol=1e-6)
    total = sum(float(a.sum()) for a in result.attributions)
    np.testing.assert_allclose(total, result.probabilities[1] - f_hidden, atol=1e-5)


def test_shap_partition_known_answer_for_an_additive_score(picture):
    specs = [ImageSpec(size=(8, 8), name="a"), VectorSpec(3, name="b")]
    adapter = TorchAdapter(ScoreOfB(), specs, device="cpu")
    assert adapter.output_kind == "score"
    result = explain(adapter, [picture, ROW], "shap_partition", {"max_evals": 300}, target=0)
    np.testing.assert_allclose(result.attributions[1], ROW * np.array([2.0, -1.0, 0.5]), atol=1e-5)
    np.testing.assert_allclose(result.attributions[0], 0.0, atol=1e-6)


@pytest.mark.parametrize("method", ["occlusion", "lime", "shap_partition"])
def test_classes_share_the_perturbed_batches(image_and_vector, picture, method):
    one = explain(image_and_vector, [picture, ROW], method, FAST[method], target=0, seed=4)
    results = explain_classes(image_and_vector, [picture, ROW], method, FAST[method], classes="0,1,2", seed=4)
    np.testing.assert_allclose(results[0].attributions[1], one.attributions[1], atol=1e-6)
    assert results[0].model_evals == one.model_evals
    assert all(r.model_evals <= 1 for r in results[1:])  # only their own prediction pass, if that


def test_background_file_needs_a_vector_input(picture):
    adapter = TorchAdapter(IgnoresB().eval(), ImageSpec(size=(16, 16)), device="cpu")
    with pytest.raises(InputError, match="background_file fills hidden feature-vector inputs"):
        explain(adapter, picture, "occlusion", {"background_file": "rows.csv"})


def _keras_twin(module: ImageAndVector):
    import keras

    a, b = keras.Input((8, 8, 1), name="digit"), keras.Input((3,), name="extra")
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu")
    dense = keras.layers.Dense(4, activation="tanh")
    head = keras.layers.Dense(3)
    out = head(keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(conv(a)), dense(b)]))
    model = keras.Model([a, b], out)
    conv.set_weights([module.conv.weight.detach().numpy().transpose(2, 3, 1, 0), module.conv.bias.detach().numpy()])
    dense.set_weights([module.dense.weight.detach().numpy().T, module.dense.bias.detach().numpy()])
    head.set_weights([module.head.weight.detach().numpy().T, module.head.bias.detach().numpy()])
    return model


def _onnx_twin(module: ImageAndVector, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 1, 8, 8), torch.zeros(1, 3)), str(path), dynamo=False,
                          input_names=["digit", "extra"], output_names=["scores"],
                          dynamic_axes={"digit": {0: "n"}, "extra": {0: "n"}, "scores": {0: "n"}})
    return path


@pytest.mark.parametrize("method", ["occlusion", "lime", "shap_partition"])
def test_keras_and_onnx_twins_agree_with_pytorch(image_and_vector, picture, tmp_path, method):
    from xai_core.adapters.keras import KerasAdapter
    from xai_core.loading.models import open_model

    onnx_model = open_model(_onnx_twin(image_and_vector.model, tmp_path / "two.onnx"))
    assert onnx_model.input_kinds == ["image", "vector"]
    specs = list(onnx_model.inputs)  # what the graph says; the twins take the same
    torch_model = TorchAdapter(image_and_vector.model, specs, device="cpu")
    keras_model = KerasAdapter(_keras_twin(image_and_vector.model), specs)
    ref = explain(torch_model, [picture, ROW], method, FAST[method], target=1, seed=5)
    for other in (keras_model, onnx_model):
        got = explain(other, [picture, ROW], method, FAST[method], target=1, seed=5)
        for mine, theirs in zip(got.attributions, ref.attributions, strict=True):
            np.testing.assert_allclose(mine, theirs, atol=2e-5)


def test_cli_perturbation_methods_write_one_file_per_input(tmp_path, picture):
    """An ONNX graph with an image and a feature-vector input, the row given with
    ``--input NAME=FILE``: a map for the image, one value per feature for the row."""
    from PIL import Image

    path = _onnx_twin(ImageAndVector().eval(), tmp_path / "two.onnx")
    Image.fromarray(picture).save(tmp_path / "pic.png")
    np.save(tmp_path / "row.npy", ROW)
    out = tmp_path / "out"
    code = main(["explain", "--model", str(path), "--image", str(tmp_path / "pic.png"),
                 "--input", f"extra={tmp_path / 'row.npy'}", "--method", "occlusion", "lime",
                 "--param", "lime.samples=50", "--out", str(out)])
    assert code == 0
    for method in ("occlusion", "lime"):
        assert np.load(out / f"pic__{method}__digit.npy").shape == (8, 8)
        assert np.load(out / f"pic__{method}__extra.npy").shape == (3,)
        assert (out / f"pic__{method}__extra.png").is_file()
    records = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in records] == ["occlusion", "lime"]
    assert all(r["inputs"] == ["digit", "extra"] for r in records)


@pytest.mark.parametrize("method", ["occlusion", "lime", "shap_partition"])
def test_dashboard_view_draws_each_image_input_on_the_picture(picture, method):
    """The dashboard's per-input view (render.draw_input): one overlay per image input,
    at the picture's size, from that input's own map."""
    from xai_core import render

    specs = [ImageSpec(size=(8, 8), name="small"), ImageSpec(size=(12, 12), name="large")]
    result = explain(TorchAdapter(TwoViews(), specs, device="cpu"), picture, method, FAST[method], target=1)
    assert [a.shape for a in result.attributions] == [(8, 8), (12, 12)]
    drawn = [render.draw_input(result, i, picture) for i in range(2)]
    assert all(d.shape == picture.shape and d.dtype == np.uint8 for d in drawn)
    assert not np.array_equal(drawn[0], drawn[1])


def test_shap_partition_stop_when_stable_watches_every_input(image_and_vector, picture):
    params = {"max_evals": 1024, "tolerance": 0.5}
    result = explain(image_and_vector, [picture, ROW], "shap_partition", params, target=0)
    assert result.extras["stopped_early"] and result.extras["rounds"] >= 2
    assert [a.shape for a in result.attributions] == [(8, 8), (3,)]
    total = sum(float(a.sum()) for a in result.attributions)  # Owen values are efficient at any budget
    np.testing.assert_allclose(total, result.probabilities[0] - result.extras["base_value"], atol=1e-5)
