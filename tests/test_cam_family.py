"""The CAM family on one template: CAM equals the hand computation and Grad-CAM of
the logits; the rectify option; layers by name or index; the default layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.test_cli import run_cli
from xai_core.adapters.torch import TorchAdapter
from xai_core.inputs.images import preprocess
from xai_core.service import explain
from xai_core.types import ImageSpec, InputError, UnsupportedError


def test_cam_is_the_dense_weights_on_the_last_feature_map(digits_adapter, digit_image):
    """digits_cnn ends in global average pooling + Linear and outputs logits."""
    e = explain(digits_adapter, digit_image, "cam", {"rectify": "none"})
    acts, _, _ = digits_adapter.layer_activations_and_gradients(
        preprocess(digit_image, digits_adapter.spec)[None], e.target, "features")
    weights = digits_adapter.model.classifier.weight.detach().numpy()[e.target]
    np.testing.assert_allclose(e.extras["cam"], np.tensordot(weights, acts[0], axes=(0, 0)), rtol=1e-5, atol=1e-5)
    assert e.layer == "features" and e.signed


@pytest.mark.parametrize("rectify", ["relu", "abs", "none"])
def test_cam_equals_grad_cam_of_the_logit_times_h_w(rectify, digits_adapter, digit_image):
    """Zhou et al.'s CAM and Selvaraju et al.'s Grad-CAM agree on GAP + dense networks:
    d logit_c / d A_k(i, j) = W[c, k] / (h * w) at every location."""
    cam = explain(digits_adapter, digit_image, "cam", {"rectify": rectify}, target=3)
    grad = explain(digits_adapter, digit_image, "grad_cam", {"rectify": rectify}, target=3)
    h, w = cam.extras["cam"].shape
    np.testing.assert_allclose(cam.extras["cam"], grad.extras["cam"] * h * w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cam.attribution, grad.attribution * h * w, rtol=1e-4, atol=1e-4)
    assert cam.signed == grad.signed == (rectify == "none")


def test_rectify_options_transform_the_signed_map(digits_adapter, digit_image):
    signed = explain(digits_adapter, digit_image, "grad_cam", {"rectify": "none"}, target=1).extras["cam"]
    assert signed.min() < 0 < signed.max()
    relu = explain(digits_adapter, digit_image, "grad_cam", target=1)
    absolute = explain(digits_adapter, digit_image, "grad_cam", {"rectify": "abs"}, target=1)
    np.testing.assert_allclose(relu.extras["cam"], np.maximum(signed, 0), atol=1e-6)
    np.testing.assert_allclose(absolute.extras["cam"], np.abs(signed), atol=1e-6)
    assert absolute.attribution.min() >= 0 and not absolute.signed


def test_keras_cam_is_the_hand_computation_on_a_softmax_model(digit_image):
    from xai_core.loading.models import open_model

    adapter = open_model("keras_digits_cnn")
    e = explain(adapter, digit_image, "cam", {"rectify": "none"}, layer=4)  # model.layers[4] = conv3
    assert e.layer == "conv3" == adapter.model.layers[4].name
    acts, _, _ = adapter.layer_activations_and_gradients(
        preprocess(digit_image, adapter.spec)[None], e.target, "conv3")
    kernel = adapter.model.get_layer("classifier").get_weights()[0]  # 64 x 10
    np.testing.assert_allclose(e.extras["cam"], np.tensordot(kernel[:, e.target], acts[0], axes=(0, 0)),
                               rtol=1e-4, atol=1e-4)


def test_cam_refuses_a_network_without_gap_and_one_dense_layer(digits_adapter, digit_image):
    with pytest.raises(UnsupportedError, match="global average pooling.*grad_cam"):
        explain(digits_adapter, digit_image, "cam", layer="features.3")


def test_layer_by_index_equals_layer_by_name(digits_adapter, digit_image):
    """PyTorch indices count the leaf modules of named_modules() in order."""
    leaves = [n for n, m in digits_adapter.model.named_modules() if n and not list(m.children())]
    assert leaves[6] == "features.6" and digits_adapter.resolve_layer("6") == "features.6"
    by_index = explain(digits_adapter, digit_image, "grad_cam", layer=6)
    by_name = explain(digits_adapter, digit_image, "grad_cam", layer="features.6")
    assert by_index.layer == by_name.layer == "features.6"
    np.testing.assert_array_equal(by_index.attribution, by_name.attribution)
    assert digits_adapter.resolve_layer(-1) == "classifier"
    with pytest.raises(InputError, match="no layer with index 42"):
        digits_adapter.resolve_layer(42)
    with pytest.raises(InputError, match="does not use a layer"):
        explain(digits_adapter, digit_image, "saliency", layer=6)


def test_layers_lists_dense_layers_with_kind_shape_and_index(digits_adapter):
    found = {info.name: info for info in digits_adapter.layers()}
    assert found["classifier"].output_shape == (10,) and found["classifier"].dense
    assert found["classifier"].index == "9" and found["features.6"].index == "6"
    assert found["features"].index is None  # a container is no leaf
    assert found["features.5"].passive and not found["features.6"].passive


class PoolLast(nn.Module):
    """conv -> relu -> max-pool inside one block, then a flatten head: the last spatial
    output (the block's, which is the pool's) must not be the default CAM layer."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.1))
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.head(self.block(x).flatten(1))


def test_default_cam_layer_is_the_last_convolution_like_map_not_a_pooling_layer():
    torch.manual_seed(0)
    adapter = TorchAdapter(PoolLast(), ImageSpec((16, 16)), name="poollast", device="cpu")
    spatial = [info.name for info in adapter.layers() if info.spatial]
    assert spatial == ["block.0", "block.1", "block.2", "block.3", "block"]
    assert adapter.default_cam_layer() == "block.1"


def test_cli_layers_prints_indices_and_explain_takes_an_index(tmp_path):
    listing = run_cli("layers", "--model", "digits_cnn")
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[1]: line.split() for line in listing.stdout.splitlines()[1:] if len(line.split()) >= 4}
    assert rows["features.6"][0] == "6" and rows["classifier"][3] == "10"
    assert "default" in " ".join(rows["features"])
    result = run_cli("explain", "--model", "digits_cnn", "--image", "sample_images/digit_7.png",
                     "--method", "grad_cam", "cam", "--layer", "6", "--param", "rectify=abs", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    import json

    records = json.loads((tmp_path / "results.json").read_text())
    assert [r["layer"] for r in records] == ["features.6", "features.6"]
    assert records[0]["params"] == {"rectify": "abs"}
    bad = run_cli("explain", "--model", "digits_cnn", "--image", "sample_images/digit_7.png",
                  "--method", "saliency", "--layer", "6", "--out", str(tmp_path))
    assert bad.returncode == 2 and bad.stderr.startswith("error: --layer") and "Traceback" not in bad.stderr


def test_grad_cam_plus_plus_equals_pytorch_grad_cam(digits_adapter, digit_image):
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from tests.test_reference_agreement import Normalised

    ours = explain(digits_adapter, digit_image, "grad_cam_plus_plus", target=2)
    wrapped = Normalised(digits_adapter.model, [0.5], [0.5]).eval()
    x01 = preprocess(digit_image, digits_adapter.spec)
    tensor = torch.from_numpy(x01).permute(2, 0, 1)[None].contiguous()
    with GradCAMPlusPlus(model=wrapped, target_layers=[wrapped.model.features]) as reference:
        theirs = reference(input_tensor=tensor, targets=[ClassifierOutputTarget(2)])[0]
    # pytorch-grad-cam min-max scales, resizes (bilinear), then scales again
    mine = scale_cam_image(scale_cam_image(ours.extras["cam"][None], (32, 32)))[0]
    np.testing.assert_allclose(mine, theirs, atol=1e-4)
    grad_cam = explain(digits_adapter, digit_image, "grad_cam", target=2)
    assert not np.allclose(ours.extras["cam"] / ours.extras["cam"].max(),
                           grad_cam.extras["cam"] / grad_cam.extras["cam"].max(), atol=1e-3)


@pytest.fixture(scope="module")
def gap200():
    """The user story's model: a Keras CNN on 200 x 200 grayscale digits ending in
    GlobalAveragePooling + Dense(softmax) (model_zoo/train_keras_digits_gap200.py)."""
    from xai_core.loading.models import open_model

    return open_model(str(Path(__file__).resolve().parents[1] / "model_zoo/weights/keras_digits_gap200.keras"),
                      engine="inprocess")  # the test reads the Keras model itself


def test_cam_and_grad_cam_by_index_with_abs_on_the_200px_gap_model(gap200, digit_image):
    assert gap200.spec.size == (200, 200) and gap200.output_kind == "probability"
    assert gap200.default_cam_layer() == "conv4" == gap200.model.get_layer(index=6).name
    cam = explain(gap200, digit_image, "cam", {"rectify": "abs"}, layer=6)
    assert cam.layer == "conv4" and cam.target_label == "7" and cam.attribution.shape == (200, 200)
    acts, _, _ = gap200.layer_activations_and_gradients(preprocess(digit_image, gap200.spec)[None], 7, "conv4")
    kernel = gap200.model.get_layer("classifier").get_weights()[0]
    np.testing.assert_allclose(cam.extras["cam"], np.abs(np.tensordot(kernel[:, 7], acts[0], axes=(0, 0))),
                               rtol=1e-4, atol=1e-5)
    grad = explain(gap200, digit_image, "grad_cam", {"rectify": "abs"}, layer="conv4")
    assert grad.layer == "conv4" and not grad.signed and grad.attribution.min() >= 0


def test_cam_equals_grad_cam_of_the_logit_on_a_softmax_model(gap200, digit_image):
    """The issue's check: on a GAP + Dense(softmax) network, Grad-CAM of the softmax
    output disagrees with CAM, Grad-CAM of the logit (softmax stripped) agrees."""
    cam = explain(gap200, digit_image, "cam", {"rectify": "none"}, layer=6)
    logit = explain(gap200, digit_image, "grad_cam", {"rectify": "none"}, layer=6, output="logit")
    probability = explain(gap200, digit_image, "grad_cam", {"rectify": "none"}, layer=6)
    h, w = cam.extras["cam"].shape
    np.testing.assert_allclose(cam.extras["cam"], logit.extras["cam"] * h * w, rtol=1e-3, atol=1e-4)
    assert logit.output_kind == "logit" and probability.output_kind == "probability"
    assert not np.allclose(cam.extras["cam"], probability.extras["cam"] * h * w, rtol=1e-2, atol=1e-2)


# -- the completed family against pytorch-grad-cam, like for like ---------------------------
# pytorch-grad-cam ReLUs the low-resolution map, min-max scales it, resizes it with
# cv2 (bilinear) and min-max scales again; our extras['cam'] is the map after the
# same ReLU (rectify='relu'), so that transformation applied to it must give the
# reference's output.

REFERENCE_CAMS = {"hires_cam": "HiResCAM", "layer_cam": "LayerCAM", "xgrad_cam": "XGradCAM",
                  "eigen_cam": "EigenCAM", "score_cam": "ScoreCAM", "ablation_cam": "AblationCAM",
                  "grad_cam": "GradCAM"}


def _as_reference_scales(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    def minmax(a):
        a = a - a.min()
        return a / (1e-7 + a.max())

    return minmax(cv2.resize(np.float32(minmax(cam)), (width, height)))


def _reference_cam(adapter, image01: np.ndarray, method: str, layer: str, target: int) -> np.ndarray:
    """pytorch-grad-cam called as a notebook user does: the module, its normalised
    input tensor, the layer's module and ClassifierOutputTarget(target)."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    spec = adapter.spec
    x = (torch.from_numpy(image01).permute(2, 0, 1)[None] - torch.tensor(spec.mean_array()).view(1, -1, 1, 1)) \
        / torch.tensor(spec.std_array()).view(1, -1, 1, 1)
    cls = getattr(pytorch_grad_cam, REFERENCE_CAMS[method])
    with cls(model=adapter.model, target_layers=[adapter.module(layer)]) as cam:
        if hasattr(cam, "batch_size"):
            cam.batch_size = 16
        return cam(input_tensor=x.float(), targets=[ClassifierOutputTarget(target)])[0]


@pytest.fixture(scope="module")
def resnet18_adapter():
    """torchvision's resnet18 with random weights (seed 0), 10 classes, 32 x 32 inputs."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    return TorchAdapter(model, ImageSpec((32, 32)), name="resnet18", device="cpu")


@pytest.mark.parametrize("method", sorted(REFERENCE_CAMS))
@pytest.mark.parametrize("model", ["digits", "resnet18"])
def test_cam_equals_pytorch_grad_cam(method, model, digits_adapter, digit_image, resnet18_adapter):
    adapter = digits_adapter if model == "digits" else resnet18_adapter
    layer = "features" if model == "digits" else "layer1"
    x = preprocess(digit_image, adapter.spec)
    target = int(adapter.predict(x[None])[0].argmax())  # a positive logit: Ablation-CAM divides by it
    ours = explain(adapter, digit_image, method, layer=layer, target=target, seed=0)
    h, w = x.shape[:2]
    reference = _reference_cam(adapter, x, method, layer, target)
    assert ours.extras["cam"].max() > 0, "a map of zeros compares nothing"
    np.testing.assert_allclose(_as_reference_scales(ours.extras["cam"], h, w), reference, atol=2e-4)
    assert ours.layer == layer and not ours.signed


def test_hires_cam_sums_to_the_logit_on_a_gap_dense_network(digits_adapter, digit_image):
    """On GAP + dense, dS/dA_k(i,j) = W[c,k]/(h w), so the signed HiResCAM summed over
    the map is the logit minus the bias (Draelos & Carin's faithfulness property)."""
    e = explain(digits_adapter, digit_image, "hires_cam", {"rectify": "none"}, target=5)
    logits = digits_adapter.outputs(preprocess(digit_image, digits_adapter.spec)[None])[0]
    bias = digits_adapter.model.classifier.bias.detach().numpy()[5]
    np.testing.assert_allclose(e.extras["cam"].sum(), logits[5] - bias, rtol=1e-4, atol=1e-4)


def test_score_cam_runs_on_the_fast_forward_engine_and_shares_evaluations_between_classes(
        digits_adapter, digit_image):
    from xai_core.service import explain_classes

    one = explain(digits_adapter, digit_image, "score_cam", target=2)
    assert one.engine in ("onnxruntime", "openvino", "torch")
    assert one.model_evals >= 64  # one masked image per channel of 'features'
    several = explain_classes(digits_adapter, digit_image, "score_cam", classes="0,2")
    assert several[1].model_evals < several[0].model_evals  # the masked images were evaluated once
    np.testing.assert_allclose(several[1].extras["cam"], one.extras["cam"], rtol=1e-4, atol=1e-5)


class _BatchMixer(nn.Module):
    """A model whose code takes its batch size from the input and later uses it to
    reshape: fed one shared row under N replaced layer outputs, it would centre the
    N items together (N rows out, wrong values)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.feat = nn.ReLU()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        b = x.shape[0]
        f = self.feat(self.conv(x))
        n, c, h, w = f.shape
        t = f.flatten(2).transpose(1, 2).reshape(b, -1, c)
        t = (t - t.mean(1, keepdim=True) * 0.5).reshape(n, h * w, c)
        return self.fc(t.mean(1))


@pytest.mark.parametrize("case", ["digits", "mixer"])
def test_layer_scores_share_the_layers_below_only_where_a_measured_check_allows(case, digits_adapter, digit_image):
    """Ablation-CAM's forward-only primitive runs one shared row below the layer when
    that gives the repeated batch's scores (digits_cnn), and the repeated batch when
    it does not (a model that reshapes with its input's batch size)."""
    if case == "digits":
        adapter, layer = digits_adapter, digits_adapter.default_cam_layer()
        adapter.__dict__.pop("_shared_prefix", None)
    else:
        adapter, layer = TorchAdapter(_BatchMixer().eval(), ImageSpec((8, 8)), name="mixer"), "feat"
    one = preprocess(digit_image, adapter.spec)[None]
    raw = adapter.layer_values(one, layer)
    rng = np.random.default_rng(0)
    values = (np.repeat(raw, 6, axis=0) * rng.random((6, *raw.shape[1:]))).astype(np.float32)
    want = adapter.layer_gradients_at(np.repeat(one, 6, axis=0), 1, layer, values)[1]
    got = adapter.layer_scores_at(one, 1, layer, values, "output", 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert adapter._shared_prefix[layer] is (case == "digits")
    if case == "mixer":  # what the shared row would have given: the check is what stops it
        shared = adapter._at_layer(one, 1, layer, values, "output", None, False, shared=True)[1]
        assert np.abs(shared - want).max() > 1e-3


@pytest.mark.parametrize("method", ["eigen_cam", "score_cam"])
def test_gradient_free_cams_take_the_prediction_from_their_layer_pass(method, digits_adapter, digit_image):
    """The layer pass that reads the activations also gives the probabilities: the
    predicted class and the table are the model's own, with no prediction pass."""
    x = preprocess(digit_image, digits_adapter.spec)
    probs = digits_adapter.predict(x[None])[0]
    params = {"channels": 8} if method == "score_cam" else {}
    for target in (None, 2):
        e = explain(digits_adapter, digit_image, method, params, target=target)
        assert e.target == (int(np.argmax(probs)) if target is None else 2)
        assert e.predictions
        for p in e.predictions:
            assert abs(p.probability - probs[p.index]) < 1e-6
        assert e.model_evals == (1 if method == "eigen_cam" else 9)


def test_ablation_cam_reads_its_layer_once(digits_adapter, digit_image, monkeypatch):
    """The layer's own-layout values come from the pass that read the map: one layer
    read per run, and the count of evaluations is the estimate's."""
    reads = []
    original = type(digits_adapter).layer_values

    def counted(self, batch, layer, *args, **kwargs):
        reads.append(layer)
        return original(self, batch, layer, *args, **kwargs)

    monkeypatch.setattr(type(digits_adapter), "layer_values", counted)
    e = explain(digits_adapter, digit_image, "ablation_cam", {"channels": 8}, layer="features", target=2)
    assert reads == ["features"]
    assert e.model_evals == 1 + 1 + 1 + 8  # the prediction, the layer, the unablated score, 8 ablations
