"""Our gradient methods equal the reference implementations (captum,
pytorch-grad-cam) on the same model, layer and input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import SAMPLES
from xai_core.inputs.images import preprocess
from xai_core.service import explain


class Normalised(torch.nn.Module):
    """What the reference libraries see: [0, 1] NCHW input, normalisation inside."""

    def __init__(self, model, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)


@pytest.fixture(scope="module")
def digits_setup(digits_adapter, digit_image):
    model = digits_adapter.model
    wrapped = Normalised(model, [0.5], [0.5]).eval()
    x01 = preprocess(digit_image, digits_adapter.spec)
    tensor = torch.from_numpy(x01).permute(2, 0, 1)[None].contiguous()
    return wrapped, tensor, x01


def nchw(a: np.ndarray) -> np.ndarray:
    return np.transpose(a, (2, 0, 1))


def test_saliency_equals_captum(digits_adapter, digit_image, digits_setup):
    from captum.attr import Saliency

    wrapped, tensor, _ = digits_setup
    ours = explain(digits_adapter, digit_image, "saliency")
    ref = Saliency(wrapped).attribute(tensor, target=ours.target, abs=True)[0].detach().numpy()
    np.testing.assert_allclose(np.abs(nchw(ours.raw)), ref, rtol=1e-4, atol=1e-6)


def test_integrated_gradients_equals_captum(digits_adapter, digit_image, digits_setup):
    from captum.attr import IntegratedGradients

    wrapped, tensor, _ = digits_setup
    ours = explain(digits_adapter, digit_image, "integrated_gradients", {"steps": 64, "baseline": "black"})
    ref, delta = IntegratedGradients(wrapped).attribute(
        tensor, baselines=torch.zeros_like(tensor), target=ours.target, n_steps=64,
        method="gausslegendre", return_convergence_delta=True,
    )
    np.testing.assert_allclose(nchw(ours.raw), ref[0].detach().numpy(), rtol=1e-3, atol=1e-6)
    assert ours.extras["convergence_delta"] == pytest.approx(float(delta[0]), abs=1e-3)


def test_grad_cam_equals_captum_and_pytorch_grad_cam(digits_adapter, digit_image, digits_setup):
    from captum.attr import LayerGradCam
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    wrapped, tensor, _ = digits_setup
    ours = explain(digits_adapter, digit_image, "grad_cam")
    assert ours.layer == "features"
    layer = wrapped.model.features
    ref = LayerGradCam(wrapped, layer).attribute(tensor, target=ours.target, relu_attributions=True)
    np.testing.assert_allclose(ours.extras["cam"], ref[0, 0].detach().numpy(), rtol=1e-4, atol=1e-6)

    with GradCAM(model=wrapped, target_layers=[layer]) as cam:
        pgc = cam(input_tensor=tensor, targets=[ClassifierOutputTarget(ours.target)])[0]
    # pytorch-grad-cam min-max scales, resizes (bilinear), then scales again
    mine = scale_cam_image(scale_cam_image(ours.extras["cam"][None], (32, 32)))[0]
    np.testing.assert_allclose(mine, pgc, atol=1e-4)


def test_occlusion_equals_captum(digits_adapter, digit_image, digits_setup):
    from captum.attr import Occlusion

    wrapped, tensor, _ = digits_setup

    def probs(x):
        return torch.softmax(wrapped(x), 1)

    ours = explain(digits_adapter, digit_image, "occlusion", {"window": 8, "stride": 4, "fill": "gray"})
    ref = Occlusion(probs).attribute(
        tensor, sliding_window_shapes=(1, 8, 8), strides=(1, 4, 4), baselines=0.5, target=ours.target
    )
    np.testing.assert_allclose(ours.attribution, ref[0, 0].detach().numpy(), rtol=1e-3, atol=1e-5)


def test_lite0_saliency_and_grad_cam_match_references(lite0_adapter, cat_image):
    """The same agreement on a real ImageNet network with ImageNet normalisation."""
    from captum.attr import LayerGradCam, Saliency

    wrapped = Normalised(lite0_adapter.model, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()
    x01 = preprocess(cat_image, lite0_adapter.spec)
    tensor = torch.from_numpy(x01).permute(2, 0, 1)[None].contiguous()
    sal = explain(lite0_adapter, cat_image, "saliency")
    ref = Saliency(wrapped).attribute(tensor, target=sal.target, abs=True)[0].detach().numpy()
    np.testing.assert_allclose(np.abs(nchw(sal.raw)), ref, rtol=1e-3, atol=1e-5)
    cam = explain(lite0_adapter, cat_image, "grad_cam")
    layer = dict(wrapped.model.named_modules())[cam.layer]
    ref_cam = LayerGradCam(wrapped, layer).attribute(tensor, target=cam.target, relu_attributions=True)[0, 0].detach().numpy()
    np.testing.assert_allclose(cam.extras["cam"], ref_cam, rtol=1e-3, atol=1e-5)
    assert SAMPLES.exists()


def test_shap_partition_equals_shaps_partition_explainer(digits_adapter, digit_image, digits_setup):
    import shap

    wrapped, _, x01 = digits_setup
    ours = explain(digits_adapter, digit_image, "shap_partition", {"max_evals": 300}, seed=0)

    def f(images):  # [0, 1] NHWC in, the target's probability out, on the framework
        with torch.no_grad():
            out = torch.softmax(wrapped(torch.from_numpy(np.asarray(images, np.float32)).permute(0, 3, 1, 2)), 1)
        return out[:, ours.target : ours.target + 1].numpy()

    masker = shap.maskers.Image("blur(16,16)", x01.shape)
    ref = shap.explainers.Partition(f, masker)(x01[None], max_evals=300, batch_size=digits_adapter.default_batch_size,
                                               silent=True)
    np.testing.assert_allclose(ours.raw, ref.values[0][..., 0], rtol=1e-3, atol=1e-5)
    assert ours.extras["base_value"] == pytest.approx(float(np.ravel(ref.base_values)[0]), abs=1e-5)


def test_shap_partitions_faster_masker_masks_the_same():
    import shap

    from xai_core.explainers.shap_partition import image_masker

    rng = np.random.default_rng(0)
    x = rng.random((24, 20, 3)).astype(np.float32)
    ours, theirs = image_masker("blur(12,10)", x.shape), shap.maskers.Image("blur(12,10)", x.shape)
    np.testing.assert_array_equal(ours.clustering, theirs.clustering)
    again = image_masker("blur(12,10)", x.shape)  # the cached tree is not shared state
    again.clustering[0, 0] = -1
    np.testing.assert_array_equal(image_masker("blur(12,10)", x.shape).clustering, theirs.clustering)
    for mask in [None, rng.random(x.size) < 0.5, np.ones(x.size, bool)]:
        np.testing.assert_array_equal(ours(mask, x)[0], theirs(mask, x)[0])
    other = rng.random(x.shape).astype(np.float32)  # a new image: blurred anew
    # (a fresh shap masker: shap's own cache is keyed on the id of a freed ravel(), which
    # the new image's ravel() may reuse, so the old masker can return the old blur)
    np.testing.assert_array_equal(ours(None, other)[0], shap.maskers.Image("blur(12,10)", x.shape)(None, other)[0])
    plain = image_masker("inpaint_telea", (24, 20, 3))  # the other maskers are shap's own
    u8 = (x * 255).astype(np.float32)
    mask = rng.random(x.size) < 0.5
    np.testing.assert_array_equal(plain(mask, u8)[0], shap.maskers.Image("inpaint_telea", x.shape)(mask, u8)[0])
