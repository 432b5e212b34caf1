"""One-output models (sigmoid = two classes, raw = a score) and the logit-or-
probability choice for models that end in a softmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xai_core import explain
from xai_core.adapters.torch import TorchAdapter
from xai_core.types import ImageSpec, InputError, UnsupportedError, VectorSpec


class SigmoidNet(nn.Module):
    """p = sigmoid(2 x_0 - x_1): one output, a binary classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[2.0, -1.0, 0.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


def test_sigmoid_output_is_two_classes():
    adapter = TorchAdapter(SigmoidNet(), VectorSpec(3), name="sigmoid", device="cpu")
    assert adapter.output_kind == "sigmoid" and adapter.num_classes == 2 and adapter.explains == "probability"
    x = np.array([[1.0, 0.5, 3.0]], np.float32)
    p = 1 / (1 + np.exp(-1.5))
    np.testing.assert_allclose(adapter.predict(x), [[1 - p, p]], atol=1e-6)
    g1, s1 = adapter.gradients(x, 1)
    g0, s0 = adapter.gradients(x, 0)
    np.testing.assert_allclose(s1 + s0, 1.0, atol=1e-6)
    np.testing.assert_allclose(g0, -g1, atol=1e-7)
    np.testing.assert_allclose(g1[0], p * (1 - p) * np.array([2.0, -1.0, 0.0]), atol=1e-6)


def test_raw_single_output_is_a_score():
    net = nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.fill_(3.0)
        net.bias.fill_(5.0)
    adapter = TorchAdapter(net, VectorSpec(3), name="score", device="cpu")
    assert adapter.output_kind == "score" and adapter.labels == ["score"] and adapter.num_classes == 1
    np.testing.assert_allclose(adapter.predict(np.ones((1, 3), np.float32)), [[14.0]], atol=1e-5)


SPEC = ImageSpec(size=(8, 8), mean=(0.5,), std=(0.5,), grayscale=True)


def _softmax_net(functional: bool = False) -> nn.Module:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4))

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = body

        def forward(self, x):
            return torch.softmax(self.body(x), dim=1)

    return (Functional() if functional else nn.Sequential(body, nn.Softmax(dim=1))).eval()


def test_logit_choice_strips_the_final_softmax():
    picture = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    net = _softmax_net()
    adapter = TorchAdapter(net, SPEC, name="softmax_net", device="cpu")
    logits = TorchAdapter(net[0], SPEC, name="logits_net", device="cpu")
    assert adapter.output_kind == "probability" and logits.output_kind == "logit"
    as_logit = explain(adapter, picture, "saliency", {"absolute": False}, target=2, output="logit")
    reference = explain(logits, picture, "saliency", {"absolute": False}, target=2)
    as_probability = explain(adapter, picture, "saliency", {"absolute": False}, target=2)
    np.testing.assert_allclose(as_logit.attribution, reference.attribution, atol=1e-6)
    assert not np.allclose(as_probability.attribution, reference.attribution, atol=1e-4)
    assert as_logit.record()["explains"] == "logit" and as_probability.record()["explains"] == "probability"
    # predictions stay the model's probabilities, and the model is back as it was
    np.testing.assert_allclose([p.probability for p in as_logit.predictions],
                               [p.probability for p in as_probability.predictions], atol=1e-6)
    assert adapter.output_kind == "probability"


def test_logit_choice_errors_are_clear():
    picture = np.zeros((8, 8, 3), np.uint8)
    functional = TorchAdapter(_softmax_net(functional=True), SPEC, name="functional", device="cpu")
    with pytest.raises(UnsupportedError, match="does not end in an nn.Softmax layer"):
        explain(functional, picture, "saliency", output="logit")
    logits = TorchAdapter(_softmax_net()[0], SPEC, name="logits_net", device="cpu")
    with pytest.raises(InputError, match="outputs logits"):
        explain(logits, picture, "saliency", output="probability")
    with pytest.raises(InputError, match="choose logit or probability"):
        explain(logits, picture, "saliency", output="score")


def test_keras_logit_choice_swaps_the_softmax_activation():
    from xai_core.adapters.keras import KerasAdapter
    from xai_core.adapters.runtime import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    spec = ImageSpec(size=(8, 8), mean=(0.5,), std=(0.5,), grayscale=True)
    probs = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")])
    logits = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 3, activation="relu"),
                               keras.layers.Flatten(), keras.layers.Dense(4)])
    logits.set_weights(probs.get_weights())
    picture = (np.random.default_rng(1).random((8, 8, 3)) * 255).astype(np.uint8)
    adapter = KerasAdapter(probs, spec, name="probs", device="cpu")
    twin = KerasAdapter(logits, spec, name="logits", device="cpu")
    got = explain(adapter, picture, "integrated_gradients", {"steps": 16}, target=1, output="logit")
    want = explain(twin, picture, "integrated_gradients", {"steps": 16}, target=1)
    np.testing.assert_allclose(got.attribution, want.attribution, atol=1e-5)
    assert got.output_kind == "logit" and adapter.output_kind == "probability"
    # the traced graph still holds the softmax afterwards
    np.testing.assert_allclose(adapter.predict(np.full((1, 8, 8, 1), 0.3, np.float32)).sum(), 1.0, atol=1e-5)
