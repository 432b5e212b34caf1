"""Shared cached models under simultaneous sessions: one fresh model, several
threads at once, each must see the same answers as a lone caller."""

from __future__ import annotations

import threading

import numpy as np


def _together(n: int, work) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def test_layer_discovery_on_a_fresh_model_from_six_threads(digit_image):
    from xai_core.loading.models import open_model
    from xai_core.service import explain

    lone = [info.name for info in open_model("digits_cnn", device="cpu").layers()]
    assert lone
    batch = np.random.default_rng(0).random((8, 32, 32, 1), dtype=np.float32)
    for _ in range(3):
        model = open_model("digits_cnn", device="cpu")  # fresh: nothing discovered yet

        def session(i: int, model=model):
            if i % 2:  # a session predicting while others discover layers
                for _ in range(5):
                    model.predict(batch)
                return lone
            return [info.name for info in model.layers()]

        assert _together(6, session) == [lone] * 6
        assert [info.name for info in model.layers()] == lone  # nothing wrong stays cached
        cams = _together(6, lambda i, model=model: explain(model, digit_image, "grad_cam").attribution)
        for cam in cams[1:]:
            np.testing.assert_array_equal(cam, cams[0])


def test_tabular_keras_gradients_from_several_threads():
    from xai_core.loading.tables import open_tabular_model

    model = open_tabular_model("breast_cancer_keras")
    x = np.random.default_rng(1).random((4, model.n_features), dtype=np.float32)
    want, _ = model.gradients(x, 0)
    for got, _ in _together(4, lambda i: model.gradients(x, 0)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
