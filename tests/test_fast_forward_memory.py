"""The fast forward path in bounded memory (issue 20 item 5): a Keras model's
ONNX export holds its weights about once more, not as constants frozen into a
traced graph (which grew by 65 x the weights, without bound on VGG16), and a
model whose engines would not fit the process's memory limit keeps the model
itself, with a note saying why."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from xai_core.adapters import fast_forward
from xai_core.adapters.runtime import resident_bytes
from xai_core.service import explain
from xai_core.types import ImageSpec

SIDE = 32
UNITS = 1024  # 7.4 M weights, 28 MB


@pytest.fixture(autouse=True)
def engine_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_ENGINE_CACHE", str(tmp_path / "engines"))
    monkeypatch.delenv("XAI_FAST_FORWARD", raising=False)
    fast_forward._BUILT.clear()
    yield tmp_path / "engines"
    fast_forward._BUILT.clear()


@pytest.fixture(scope="module")
def adapter():
    from xai_core.adapters.keras import KerasAdapter
    from xai_core.adapters.runtime import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIDE, SIDE, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)  # moving statistics: non-trainable variables
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)  # a seed generator's state: an integer variable
    x = keras.layers.Dense(UNITS, activation="relu")(x)
    out = keras.layers.Dense(4, activation="softmax")(x)
    return KerasAdapter(keras.Model(inp, out), ImageSpec(size=(SIDE, SIDE)), name="wide")


def tiny_keras():
    import keras

    from xai_core.adapters.keras import KerasAdapter

    inp = keras.Input((SIDE, SIDE, 3))
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp))
    return KerasAdapter(keras.Model(inp, out), ImageSpec(size=(SIDE, SIDE)), name="tiny")


def peak_growth(run) -> tuple[object, int]:
    """(run's result, the most the process's resident memory grew while it ran)."""
    start = peak = resident_bytes()
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, resident_bytes())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = run()
    finally:
        done.set()
        watcher.join()
    return result, max(peak, resident_bytes()) - start


def test_keras_export_holds_its_weights_once_not_frozen_into_the_graph(adapter):
    import onnxruntime as ort

    weights = fast_forward.weight_bytes(adapter)
    assert weights > 25 * 2**20
    fast_forward.export_onnx(tiny_keras())  # the converter's one-time imports and set-up are not the weights'
    onnx_bytes, growth = peak_growth(lambda: fast_forward.export_onnx(adapter))
    # about 2x the weights here alone, up to 5x in the whole suite's fragmented process; the
    # constants frozen into a traced graph, the failure this guards against, grew 65x
    assert growth < 8 * weights, f"the export grew by {growth / weights:.1f} x the weights"
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]  # the weights are initializers, not inputs
    batch = np.random.default_rng(0).random((3, SIDE, SIDE, 3)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"x": batch})[0], adapter.outputs(batch), rtol=1e-4, atol=1e-6)


def test_engines_that_would_not_fit_the_memory_limit_are_not_built(adapter, monkeypatch, engine_cache):
    needed = resident_bytes() + fast_forward.MEMORY_FACTOR * fast_forward.weight_bytes(adapter)
    monkeypatch.setenv("XAI_MEMORY_MB", str((needed - 50 * 2**20) // 2**20))
    image = (np.random.default_rng(1).random((SIDE, SIDE, 3)) * 255).astype(np.uint8)
    result = explain(adapter, image, "occlusion", {"window": 8, "stride": 8}, seed=0)
    assert result.engine == "keras"
    assert result.engine_note.startswith("not taken: building its engines needs about")
    assert "XAI_MEMORY_MB" in result.engine_note
    assert not engine_cache.exists()  # nothing was exported
    monkeypatch.setenv("XAI_MEMORY_MB", str((needed + 500 * 2**20) // 2**20))
    fast = explain(adapter, image, "occlusion", {"window": 8, "stride": 8}, seed=0)
    assert fast.engine in ("onnxruntime", "openvino", "keras"), fast.engine_note
    assert "not taken" not in fast.engine_note
    np.testing.assert_allclose(fast.attribution, result.attribution, atol=1e-4 * np.abs(result.attribution).max())
