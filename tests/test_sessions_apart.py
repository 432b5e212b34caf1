"""Eight sessions with eight different uploaded models at once (issue 20): each
gets its own model's answer, as a lone run of that model gives it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from xai_core.inputs import uploads
from xai_core.loading.models import open_model


def _onnx_bytes(weights: np.ndarray) -> bytes:
    """A 3-class classifier of 8x8 RGB images: softmax(channel means @ weights)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["z"]),
         helper.make_node("Softmax", ["z"], ["y"], axis=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [3, 3], weights.ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _expected(weights: np.ndarray, images: np.ndarray) -> np.ndarray:
    z = images.mean(axis=(1, 2)) @ weights  # the model normalises nothing: [0, 1] pixels, mean 0, std 1
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_eight_sessions_eight_models(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.setenv("XAI_UPLOAD_DIR", str(tmp_path / "store"))
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 3, (3, 3)).astype(np.float32) for _ in range(8)]
    sidecar = b'{"size": [8, 8], "mean": [0, 0, 0], "std": [1, 1, 1]}'
    paths = [uploads.store_upload(_onnx_bytes(w), "model.onnx", sidecar=sidecar) for w in weights]
    assert len({p.parent for p in paths}) == 8  # one folder per upload, same file name
    images = rng.random((8, 5, 8, 8, 3)).astype(np.float32)

    def session(i: int) -> np.ndarray:
        model = open_model(paths[i])
        assert model.engine == "worker"
        return model.predict(images[i])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(session, range(8)))
    for i, answer in enumerate(answers):
        np.testing.assert_allclose(answer, _expected(weights[i], images[i]), rtol=1e-4, atol=1e-6)
        lone = open_model(paths[i]).predict(images[i])  # a lone run of the same upload
        np.testing.assert_allclose(answer, lone, rtol=1e-6, atol=1e-7)
