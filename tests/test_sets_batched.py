"""Items explained in shared batches equal the one-item service path, method by
method (same seed, same numbers up to the rounding of another batch
composition), and the batches really are shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xai_core.sets.batched import Batcher, batched_view, explain_items
from xai_core.sets.data import array_to_rgb
from xai_core.sets.model import ModelRef

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "sample_data" / "digits_test.npz"
CLASSES = [[0, 3], [5], [1, 2, 9], [4]]


@pytest.fixture(scope="module")
def digits():
    return ModelRef("digits_cnn", device="cpu", batch_size=64).open().model


@pytest.fixture(scope="module")
def images():
    with np.load(DIGITS) as f:
        return [array_to_rgb(a, str(i)) for i, a in enumerate(f["x"][:4])]


@pytest.mark.parametrize(("method", "params"), [
    ("saliency", {}),
    ("smoothgrad", {"samples": 6}),
    ("integrated_gradients", {"steps": 8}),
    ("shap_gradient", {"samples": 8, "background_size": 4}),
    ("grad_cam", {}),
    ("grad_cam_plus_plus", {}),
    ("cam", {}),
    ("layer_cam", {}),
    ("eigen_cam", {}),
    ("score_cam", {}),
])
def test_batched_items_equal_one_item_path(digits, images, method, params):
    from xai_core.service import explain_classes

    got = explain_items(digits, images, method, params, classes=CLASSES, seed=7, batch_size=64)
    for image, wanted, results in zip(images, CLASSES, got, strict=True):
        ref = explain_classes(digits, image, method, params, classes=wanted, seed=7, batch_size=64)
        assert [r.target for r in results] == wanted
        for a, b in zip(results, ref, strict=True):
            assert a.model_evals == b.model_evals
            scale = float(np.abs(b.attribution).max()) or 1.0
            np.testing.assert_allclose(a.attribution, b.attribution, rtol=0, atol=1e-5 * scale)


def test_items_share_the_model_passes(digits, images):
    # 4 items x 1 class of Grad-CAM: one prediction pass and one layer pass for each
    # class asked in the same round, instead of 2 passes per item
    from xai_core.service import explain_classes

    calls = []
    batcher = Batcher(len(images), 64)
    original = Batcher._run_group

    def counting(self, members):
        calls.append((members[0].op, len(members)))
        return original(self, members)

    Batcher._run_group = counting
    try:
        import threading

        out = [None] * len(images)

        def one(i):
            try:
                out[i] = explain_classes(batched_view(digits, batcher), images[i], "grad_cam", {}, classes=[3], seed=0)
            finally:
                batcher.leave()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(images))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        Batcher._run_group = original
    assert all(o is not None for o in out)
    assert calls and all(n == len(images) for _, n in calls)
    assert {op for op, _ in calls} == {"predict", "layer_activations_and_gradients"}


def test_a_bad_class_is_refused_not_deadlocked(digits, images):
    from xai_core.types import InputError

    with pytest.raises(InputError):
        explain_items(digits, images[:2], "grad_cam", {}, classes=[[0], [99]], seed=0)


def test_an_uploaded_model_batches_inside_its_confined_worker(digits, images):
    from xai_core.loading.models import open_model
    from xai_core.worker.client import RemoteModel

    remote = open_model(ROOT / "model_zoo" / "weights" / "digits_cnn.pt", arch="digits_cnn", device="cpu")
    assert isinstance(remote, RemoteModel)
    for method, params in (("grad_cam", {}), ("shap_gradient", {"samples": 8, "background_size": 4})):
        got = explain_items(remote, images, method, params, classes=CLASSES, seed=1, batch_size=64)
        want = explain_items(digits, images, method, params, classes=CLASSES, seed=1, batch_size=64)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(np.stack([m.attribution for m in a]), np.stack([m.attribution for m in b]),
                                       rtol=0, atol=1e-6)


@pytest.mark.parametrize("grayscale", [True, False])
def test_a_chunk_is_read_and_prepared_as_one_batch_with_the_one_item_values(tmp_path, grayscale):
    from xai_core.inputs.images import preprocess, preprocess_batch
    from xai_core.sets.data import open_set
    from xai_core.types import ImageSpec

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", x=x, y=np.arange(6) % 2)
    dataset = open_set(tmp_path / "s.npz", ["a", "b"])
    many = dataset.read_many([4, 1, 2])
    np.testing.assert_array_equal(many, np.stack([dataset.read(i) for i in (4, 1, 2)]))
    for size in ((8, 8), (12, 10), (32, 32)):  # at the model's size, or resized in two PIL passes
        spec = ImageSpec(size=size, mean=(0.5,), std=(0.5,), grayscale=grayscale)
        np.testing.assert_array_equal(preprocess_batch(many, spec), np.stack([preprocess(m, spec) for m in many]))


def test_cams_find_the_predicted_class_in_their_own_pass(digits, images):
    from xai_core.inputs.images import preprocess
    from xai_core.service import explain_classes
    from xai_core.sets.batched import predicts_in_pass

    assert predicts_in_pass(digits, "grad_cam") and not predicts_in_pass(digits, "integrated_gradients")
    got = explain_items(digits, images, "grad_cam", {}, classes=None, seed=7, batch_size=64)
    probs = digits.predict(np.stack([preprocess(i, digits.spec) for i in images]))
    for image, p, (result,) in zip(images, probs, got, strict=True):
        np.testing.assert_allclose(result.probabilities, p, rtol=0, atol=1e-6)
        assert result.target == int(np.argmax(p))
        (ref,) = explain_classes(digits, image, "grad_cam", {}, classes=[result.target], seed=7, batch_size=64)
        scale = float(np.abs(ref.attribution).max()) or 1.0
        np.testing.assert_allclose(result.attribution, ref.attribution, rtol=0, atol=1e-5 * scale)


class _SigmoidNet:
    """A one-sigmoid image model (a binary classifier with a single output unit)."""

    @staticmethod
    def build():
        import torch
        from torch import nn

        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, 1), nn.Sigmoid()).eval()


@pytest.fixture(scope="module", params=["keras", "sigmoid"])
def per_row_model(request):
    if request.param == "keras":
        return ModelRef("keras_digits_cnn", device="cpu", batch_size=64).open().model
    from xai_core.adapters.torch import TorchAdapter
    from xai_core.types import ImageSpec

    return TorchAdapter(_SigmoidNet.build(), ImageSpec((16, 16)), ["no", "yes"], name="sigmoid", device="cpu")


def test_keras_and_sigmoid_cams_take_one_target_per_row_in_one_pass(per_row_model, images):
    """Keras models and one-sigmoid models give each row of a layer pass its own
    class too: a chunk of (item, class) pairs is one pass, equal to the one-item path,
    and the predicted class is found in that pass."""
    from xai_core.service import explain_classes
    from xai_core.sets.batched import predicts_in_pass

    model = per_row_model
    classes = [list(dict.fromkeys(c % model.num_classes for c in cs)) for cs in CLASSES]
    calls = []
    original = model.layer_activations_and_gradients

    def counting(batch, target, layer, return_probs=False):
        calls.append(len(batch))
        return original(batch, target, layer, return_probs=return_probs)

    model.layer_activations_and_gradients = counting
    try:
        got = explain_items(model, images, "grad_cam", {}, classes=classes, seed=3, batch_size=64)
        pairs = sum(len(cs) for cs in classes)
        assert calls == [pairs]  # every (item, class) pair in one pass, whatever its class
        found = explain_items(model, images, "grad_cam", {}, classes=None, seed=3, batch_size=64)
    finally:
        del model.layer_activations_and_gradients
    assert predicts_in_pass(model, "grad_cam")
    for image, wanted, results, (mine,) in zip(images, classes, got, found, strict=True):
        ref = explain_classes(model, image, "grad_cam", {}, classes=wanted, seed=3, batch_size=64)
        for a, b in zip(results, ref, strict=True):
            assert a.target == b.target
            scale = float(np.abs(b.attribution).max()) or 1.0
            np.testing.assert_allclose(a.attribution, b.attribution, rtol=0, atol=1e-5 * scale)
        (top,) = explain_classes(model, image, "grad_cam", {}, classes=[mine.target], seed=3, batch_size=64)
        assert mine.target == int(np.argmax(mine.probabilities))
        scale = float(np.abs(top.attribution).max()) or 1.0
        np.testing.assert_allclose(mine.attribution, top.attribution, rtol=0, atol=1e-5 * scale)
