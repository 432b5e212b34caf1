"""A synthetic network whose answer we know: class 0 = 'how red', class 1 = 'how
green'. The image has one red and one green square on a blue background.
Every method must put the evidence for each class on its own square."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import torch_image_methods
from xai_core.adapters.torch import TorchAdapter
from xai_core.explainers import REGISTRY
from xai_core.service import explain
from xai_core.types import ImageSpec

RED = (slice(8, 24), slice(8, 24))
GREEN = (slice(40, 56), slice(40, 56))
BUDGET = {
    "smoothgrad": {"samples": 16, "noise_level": 0.1},  # 0.15 leaks ~5% of background pixels over the ReLU
    "integrated_gradients": {"steps": 32},
    "occlusion": {"window": 8, "stride": 4},
    "lime": {"samples": 400, "segments": 30},
    "shap_partition": {"max_evals": 400},
    "shap_gradient": {"samples": 32},
    "layer_conductance": {"steps": 16},
}


class ColorNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5]]).view(2, 3, 1, 1))
            self.features.bias.zero_()
        self.relu = nn.ReLU()
        self.head = nn.Linear(2, 2)  # after global average pooling: CAM-ready
        with torch.no_grad():
            self.head.weight.copy_(40 * torch.eye(2))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.relu(self.features(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def color_adapter():
    return TorchAdapter(ColorNet(), ImageSpec((64, 64), (0.0,), (1.0,)), ["red", "green"], name="colornet")


@pytest.fixture(scope="module")
def squares_image():
    rng = np.random.default_rng(0)
    img = np.empty((64, 64, 3), np.float32)
    img[:] = (0.2, 0.2, 0.8)  # decisively neither red nor green, even under SmoothGrad noise
    img += rng.uniform(-0.03, 0.03, img.shape).astype(np.float32)
    img[RED] = (0.9, 0.1, 0.1)
    img[GREEN] = (0.1, 0.75, 0.1)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def region_mask(region, pad=4):
    mask = np.zeros((64, 64), bool)
    mask[max(region[0].start - pad, 0) : region[0].stop + pad, max(region[1].start - pad, 0) : region[1].stop + pad] = True
    return mask


# neuron conductance explains one unit of a layer, not the class; a method whose map is
# the same for every class (Eigen-CAM) cannot put each class on its own square
@pytest.mark.parametrize("method", [m for m in torch_image_methods()
                                    if m != "neuron_conductance" and REGISTRY[m].class_specific])
@pytest.mark.parametrize(("target", "region"), [(0, RED), (1, GREEN)])
def test_evidence_lands_on_the_right_square(method, target, region, color_adapter, squares_image):
    e = explain(color_adapter, squares_image, method, BUDGET.get(method, {}), target=target, seed=0)
    positive = np.clip(e.attribution, 0, None)
    mask = region_mask(region)
    inside = positive[mask].sum() / max(positive.sum(), 1e-12)
    assert inside > 0.6, f"{method}: only {inside:.0%} of the positive evidence on the {e.target_label} square"
    assert e.attribution[region].mean() > e.attribution[~mask].mean()


def test_predicted_class_is_the_bigger_square(color_adapter, squares_image):
    probs = color_adapter.predict(squares_image[None].astype(np.float32) / 255)[0]
    assert probs.argmax() == 0  # 0.9 red beats 0.75 green
