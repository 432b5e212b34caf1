"""LRP (zennit), RISE, and the declarations the new methods make: each equals its
reference (zennit called directly; the paper's RISE estimator and masks) and
answers a model whose answer is known."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from tests.test_known_answer import GREEN, RED, ColorNet
from xai_core.adapters.torch import TorchAdapter
from xai_core.explainers import REGISTRY, available_for
from xai_core.inputs.images import preprocess
from xai_core.service import explain, explain_classes
from xai_core.service.quality import quality_notes
from xai_core.types import ImageSpec, UnsupportedError

COMPOSITES = ["epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1"]


@pytest.fixture(scope="module")
def resnet18_adapter():
    """torchvision's resnet18, random weights (seed 0), 10 classes, 32 x 32 inputs, ImageNet normalisation."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    with torch.no_grad():  # batch norms with statistics of their own, so that merging them matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return TorchAdapter(model, ImageSpec((32, 32)), name="resnet18", device="cpu")


def _zennit_reference(adapter, image01, composite_name, target):
    """zennit as its documentation shows: composite (with the torchvision canonizer
    where one exists) and the Gradient attributor, output relevance = the logit."""
    from zennit.attribution import Gradient
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    spec = adapter.spec
    mean = torch.tensor(spec.mean_array()).view(1, -1, 1, 1)
    std = torch.tensor(spec.std_array()).view(1, -1, 1, 1)
    x01 = torch.from_numpy(image01).permute(2, 0, 1)[None].float()
    x = (x01 - mean) / std
    canonizers = [ResNetCanonizer()] if adapter.name == "resnet18" else [SequentialMergeBatchNorm()]
    if composite_name == "epsilon_gamma_box":
        composite = EpsilonGammaBox(low=(0 - mean) / std * torch.ones_like(x), high=(1 - mean) / std * torch.ones_like(x),
                                    canonizers=canonizers)
    elif composite_name == "epsilon_alpha2_beta1":
        composite = EpsilonAlpha2Beta1(canonizers=canonizers)
    else:
        composite = EpsilonPlusFlat(canonizers=canonizers)
    with Gradient(model=adapter.model, composite=composite,
                  attr_output=lambda out: torch.eye(out.shape[1])[[target]] * out) as attributor:
        _, relevance = attributor(x.requires_grad_(True))
    return relevance[0].permute(1, 2, 0).detach().numpy()


@pytest.mark.parametrize(("model", "composite"), [("digits", c) for c in COMPOSITES]
                         + [("resnet18", "epsilon_plus_flat"), ("resnet18", "epsilon_gamma_box")])
def test_lrp_equals_zennit_called_directly(model, composite, digits_adapter, digit_image, resnet18_adapter):
    adapter = digits_adapter if model == "digits" else resnet18_adapter
    e = explain(adapter, digit_image, "lrp", {"composite": composite}, target=3)
    reference = _zennit_reference(adapter, preprocess(digit_image, adapter.spec), composite, 3)
    scale = np.abs(reference).max()
    assert scale > 0
    np.testing.assert_allclose(e.raw, reference, atol=1e-5 * scale, rtol=1e-4)
    np.testing.assert_allclose(e.attribution, reference.sum(-1), atol=1e-5 * scale, rtol=1e-4)
    assert e.extras["canonizer"] == ("ResNetCanonizer" if model == "resnet18" else "none")
    assert e.signed and e.output_kind == "logit"


def test_lrp_batch_norms_merged_against_the_unmerged_model(resnet18_adapter, digit_image):
    """The ResNet canonizer changes the answer (batch norms merged into the convolutions)
    and leaves the model as it was afterwards."""
    before = resnet18_adapter.predict(preprocess(digit_image, resnet18_adapter.spec)[None])
    e = explain(resnet18_adapter, digit_image, "lrp", target=3)
    after = resnet18_adapter.predict(preprocess(digit_image, resnet18_adapter.spec)[None])
    np.testing.assert_array_equal(before, after)
    assert e.extras["canonizer"] == "ResNetCanonizer" and np.isfinite(e.attribution).all()


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box"])
def test_lrp_relevance_sums_to_the_logit_without_biases(composite, digits_module, digit_image):
    """Bias-free digits CNN: z+, gamma, flat, z^B and epsilon (1e-6) conserve relevance,
    so the map sums to the logit within 1e-4 of it."""
    model = copy.deepcopy(digits_module)
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
    adapter = TorchAdapter(model, ImageSpec((32, 32), (0.5,), (0.5,), grayscale=True), name="nobias", device="cpu")
    e = explain(adapter, digit_image, "lrp", {"composite": composite}, target=7)
    assert e.extras["score"] > 1
    np.testing.assert_allclose(e.attribution.sum(), e.extras["score"], rtol=1e-4)
    assert not quality_notes("lrp", e.extras)


def test_lrp_notes_relevance_the_rules_did_not_conserve(digits_adapter, digit_image):
    """alpha 2 beta 1 gives a neuron without negative inputs twice its relevance."""
    e = explain(digits_adapter, digit_image, "lrp", {"composite": "epsilon_alpha2_beta1"}, target=7)
    note = quality_notes("lrp", e.extras)
    assert note and "sum to" in note[0]


def test_lrp_is_refused_where_no_module_can_be_hooked(digits_files, digit_image):
    from xai_core.loading.models import open_model

    scripted = open_model(digits_files["torchscript"])
    assert "lrp" not in {e.name for e in available_for(scripted)}
    with pytest.raises(UnsupportedError, match="torch_module"):
        explain(scripted, digit_image, "lrp")
    assert "Keras" in REGISTRY["lrp"].description and "ONNX" in REGISTRY["lrp"].description


def test_lrp_refuses_a_softmax_output():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
                          nn.Softmax(dim=1))
    adapter = TorchAdapter(model, ImageSpec((16, 16)), name="soft", device="cpu", output_kind="probability")
    with pytest.raises(UnsupportedError, match="logit"):
        explain(adapter, np.zeros((16, 16, 3), np.uint8), "lrp", target=0)
    e = explain(adapter, np.zeros((16, 16, 3), np.uint8), "lrp", target=0, output="logit")
    assert np.isfinite(e.attribution).all()


# -- RISE ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def color_adapter():
    return TorchAdapter(ColorNet(), ImageSpec((64, 64), (0.0,), (1.0,)), ["red", "green"], name="colornet")


@pytest.fixture(scope="module")
def squares_image():
    img = np.empty((64, 64, 3), np.float32)
    img[:] = (0.2, 0.2, 0.8)
    img[RED] = (0.9, 0.1, 0.1)
    img[GREEN] = (0.1, 0.75, 0.1)
    return (img * 255).round().astype(np.uint8)


def test_rise_masks_are_the_papers(color_adapter):
    """Grids upsampled with skimage's bilinear resize to (s + 1) cells and cropped at a
    random shift, as the authors' code does, mask by mask."""
    from skimage.transform import resize

    from xai_core.explainers.rise import MaskMaker

    maker = MaskMaker(50, 37, 7, 0.4)
    grids, rows, cols = maker.draw(np.random.default_rng(1), 6)
    masks = maker.masks(grids, rows, cols)
    ch, cw = maker.cell
    for i in range(6):
        up = resize(grids[i], (8 * ch, 8 * cw), order=1, mode="reflect", anti_aliasing=False)
        np.testing.assert_allclose(masks[i], up[rows[i]:rows[i] + 50, cols[i]:cols[i] + 37], atol=1e-6)
    assert 0.3 < grids.mean() < 0.5


@pytest.mark.parametrize(("target", "region"), [(0, RED), (1, GREEN)])
def test_rise_peaks_on_the_cue(target, region, color_adapter, squares_image):
    e = explain(color_adapter, squares_image, "rise", {"masks": 600, "grid": 8}, target=target, seed=0)
    peak = np.unravel_index(np.argmax(e.attribution), e.attribution.shape)
    assert region[0].start - 4 <= peak[0] < region[0].stop + 4 and region[1].start - 4 <= peak[1] < region[1].stop + 4
    assert e.attribution[region].mean() > 3 * abs(np.median(e.attribution))
    assert e.engine in ("onnxruntime", "openvino", "torch")


def test_rise_is_the_papers_estimator(color_adapter, squares_image):
    """centre=False: S = 1 / (p N) sum_i f(I . M_i) M_i, with the same seeded masks;
    centred: the same minus mean(f) * sum_i M_i / (p N)."""
    from xai_core.explainers.rise import MaskMaker

    n, p = 64, 0.5
    plain = explain(color_adapter, squares_image, "rise", {"masks": n, "centre": False}, target=0, seed=5)
    centred = explain(color_adapter, squares_image, "rise", {"masks": n}, target=0, seed=5)
    x = preprocess(squares_image, color_adapter.spec)
    maker = MaskMaker(64, 64, 7, p)
    rng = np.random.default_rng(5)
    masks = np.concatenate([maker.masks(*maker.draw(rng, min(16, n - s))) for s in range(0, n, 16)])
    f = color_adapter.predict((masks[..., None] * x).astype(np.float32))[:, 0].astype(np.float64)
    expected = np.tensordot(f, masks, axes=(0, 0)) / (p * n)
    np.testing.assert_allclose(plain.attribution, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(centred.attribution, expected - f.mean() * masks.sum(0) / (p * n), rtol=1e-3,
                               atol=1e-5)


def test_rise_stops_when_stable_and_shares_masks_between_classes(color_adapter, squares_image):
    full = explain(color_adapter, squares_image, "rise", {"masks": 4000, "tolerance": 0.2}, target=0, seed=0)
    assert full.extras["stopped_early"] and full.extras["masks"] < 4000
    assert full.extras["precision"] <= 0.2 and full.model_evals == full.extras["masks"] + 1
    two = explain_classes(color_adapter, squares_image, "rise", {"masks": 200}, classes="0,1", seed=0)
    assert two[1].model_evals <= 1  # the second class reuses the first's masked images
    again = explain(color_adapter, squares_image, "rise", {"masks": 200}, target=1, seed=0)
    np.testing.assert_allclose(two[1].attribution, again.attribution, rtol=1e-5, atol=1e-7)


# -- declarations ----------------------------------------------------------------------------
def test_new_methods_declare_their_drawing_and_are_registered():
    from xai_core.render import drawing_of  # noqa: F401 - render reads the declarations

    for name in ("hires_cam", "layer_cam", "xgrad_cam", "eigen_cam", "score_cam", "ablation_cam"):
        assert REGISTRY[name].drawing.upsample == "bicubic"
    assert REGISTRY["lrp"].drawing.pixel_level and REGISTRY["lrp"].drawing.units == "output"
    assert not REGISTRY["eigen_cam"].class_specific
    assert "expected gradients" in REGISTRY["shap_gradient"].description.lower()


def test_new_methods_run_through_the_command_line(tmp_path):
    from tests.test_cli import run_cli

    out = tmp_path / "out"
    result = run_cli("explain", "--model", "digits_cnn", "--image", "sample_images/digit_7.png", "--method",
                     "score_cam", "rise", "lrp", "--param", "rise.masks=100", "score_cam.channels=8",
                     "lrp.composite=epsilon_gamma_box", "--out", str(out))
    assert result.returncode == 0, result.stderr
    names = " ".join(p.name for p in out.rglob("*.npy"))
    assert "score_cam" in names and "rise" in names and "lrp" in names
