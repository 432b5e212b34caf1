"""Every tabular model format loads, predicts the same numbers as the original, and
refuses what is unsafe or broken with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tabular_helpers import (
    KNOWN,
    N_FEATURES,
    ROOT,
    SAMPLE_CSV,
    keras_available,
    known_feature_onnx,
    known_feature_torch_module,
)
from tabular_helpers import keras as keras_module

from xai_core.tabular import load_table, open_tabular_model, open_uploaded_model
from xai_core.types import Capability, InputError, ModelLoadError, UnsupportedError

RNG = np.random.default_rng(0)
X = (RNG.normal(size=(9, N_FEATURES)) * 2 + KNOWN).astype(np.float32)


def _mlp(seed: int = 0):
    import torch

    from model_zoo.architectures import TabularMLP

    torch.manual_seed(seed)
    return TabularMLP(N_FEATURES, (8, 4), 3, mean=np.arange(N_FEATURES), std=np.full(N_FEATURES, 2.0)).eval()


def _torch_out(module, x=X):
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def test_zoo_torch_model_matches_its_metadata():
    model = open_tabular_model("breast_cancer_mlp")
    meta = json.loads((ROOT / "model_zoo" / "weights" / "breast_cancer_mlp.json").read_text())
    data = load_table(SAMPLE_CSV, label_column="target", n_features=model.n_features)
    accuracy = float((model.predict(data.x).argmax(1) == np.array(data.labels)).mean())
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1e-6)
    assert accuracy >= 0.9
    assert model.output_names == ["malignant", "benign"] and model.output_kind == "probability"
    assert model.supports(Capability.INPUT_GRADIENTS)


def test_zoo_onnx_model_matches_its_metadata():
    model = open_tabular_model("breast_cancer_sklearn")
    meta = json.loads((ROOT / "model_zoo" / "weights" / "breast_cancer_sklearn.json").read_text())
    data = load_table(SAMPLE_CSV, label_column="target", n_features=model.n_features)
    accuracy = float((model.predict(data.x).argmax(1) == np.array(data.labels)).mean())
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1e-6)
    assert model.framework == "onnx" and not model.supports(Capability.INPUT_GRADIENTS)


def test_state_dict_round_trip(tmp_path):
    import torch

    module = _mlp()
    path = tmp_path / "mlp.pt"
    torch.save(module.state_dict(), path)
    for arch in (None, "tabular_mlp"):  # the architecture is recognised from the weights
        model = open_tabular_model(path, arch=arch)
        assert model.n_features == N_FEATURES and model.num_outputs == 3
        np.testing.assert_allclose(model.predict(X), _torch_out(module), atol=1e-6)
    grads, scores = model.gradients(X, 2)
    assert grads.shape == X.shape and np.allclose(scores, _torch_out(module)[:, 2], atol=1e-6)


def test_bare_state_dict_of_unknown_architecture_asks_for_arch(tmp_path):
    import torch

    path = tmp_path / "weights.pt"
    torch.save({"layer.weight": torch.zeros(2, 4), "layer.bias": torch.zeros(2)}, path)
    with pytest.raises(ModelLoadError, match=r"name its architecture with --arch \(tabular_mlp, titanic_mlp\)"):
        open_tabular_model(path)
    with pytest.raises(ModelLoadError, match="not a tabular_mlp state_dict"):
        open_tabular_model(path, arch="tabular_mlp")


def test_torchscript_round_trip(tmp_path):
    import torch

    module = known_feature_torch_module()
    path = tmp_path / "known.pt"
    torch.jit.save(torch.jit.trace(module, torch.from_numpy(X)), path)
    model = open_tabular_model(path)
    assert model.kind == "torchscript" and model.n_features == N_FEATURES
    np.testing.assert_allclose(model.predict(X), _torch_out(module), atol=1e-6)
    grads, _ = model.gradients(X, 1)
    assert np.count_nonzero(grads[:, [i for i in range(N_FEATURES) if i != KNOWN]]) == 0
    assert np.all(grads[:, KNOWN] > 0)


@pytest.mark.parametrize("dynamic", [True, False])
def test_torch_export_round_trip(tmp_path, dynamic):
    import torch

    module = _mlp(1)
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=100_000)}} if dynamic else None
    program = torch.export.export(module, (torch.from_numpy(X[:2] if dynamic else X[:1]),), dynamic_shapes=shapes)
    path = tmp_path / "mlp.pt2"
    torch.export.save(program, path)
    model = open_tabular_model(path)
    assert model.kind == "export"
    # a program exported for one row is run row by row
    np.testing.assert_allclose(model.predict(X), _torch_out(module), atol=1e-6)
    assert model.gradients(X, 0)[0].shape == X.shape


def test_pickled_module_needs_trust(tmp_path):
    import torch

    module = _mlp(2)
    path = tmp_path / "whole.pt"
    torch.save(module, path)
    # in-process nothing confines the unpickling: explicit trust is needed
    with pytest.raises(ModelLoadError, match="fully pickled PyTorch module"):
        open_tabular_model(path, engine="inprocess")
    model = open_tabular_model(path, trust_pickle=True, engine="inprocess")
    np.testing.assert_allclose(model.predict(X), _torch_out(module), atol=1e-6)


@pytest.mark.parametrize("zipmap", [False, True])
def test_onnx_sklearn_round_trip(tmp_path, zipmap):
    path = tmp_path / "clf.onnx"
    path.write_bytes(known_feature_onnx(zipmap=zipmap))
    model = open_tabular_model(path)
    expected = 1 / (1 + np.exp(-1.5 * (X[:, KNOWN] - KNOWN)))
    out = model.predict(X)
    assert out.shape == (len(X), 2)
    np.testing.assert_allclose(out[:, 1], expected, atol=1e-5)
    assert model.output_names == ["0", "1"]  # the classifier's class labels
    assert model.output_kind == "probability"
    with pytest.raises(UnsupportedError, match="give no gradients"):
        model.gradients(X, 1)


def test_onnx_regressor_is_one_score(tmp_path):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    reg = LinearRegression().fit(X, X @ np.arange(N_FEATURES))
    path = tmp_path / "reg.onnx"
    path.write_bytes(to_onnx(reg, X[:1], target_opset=17).SerializeToString())
    model = open_tabular_model(path)
    assert model.num_outputs == 1 and model.output_kind == "score" and model.output_names == ["score"]
    np.testing.assert_allclose(model.predict(X)[:, 0], reg.predict(X), rtol=1e-4, atol=1e-3)


def test_uploaded_bytes_and_labels(tmp_path):
    import torch

    module = _mlp(3)
    path = tmp_path / "m.pt"
    torch.save(module.state_dict(), path)
    model = open_uploaded_model("m.pt", path.read_bytes(), labels=["a", "b", "c"])
    assert model.output_names == ["a", "b", "c"]
    np.testing.assert_allclose(model.predict(X), _torch_out(module), atol=1e-6)
    with pytest.raises(InputError, match="3 outputs"):
        open_uploaded_model("m.pt", path.read_bytes(), labels=["a", "b"])
    onnx_model = open_uploaded_model("clf.onnx", known_feature_onnx(zipmap=False))
    assert onnx_model.framework == "onnx" and onnx_model.n_features == N_FEATURES


def test_feature_count_mismatch_is_named():
    model = open_tabular_model("breast_cancer_mlp")
    with pytest.raises(InputError, match="takes 30 features but 6 columns"):
        model.check_features(6)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.pt", b"", "the file is empty"),
        ("junk.pt", b"not a model at all", "not a PyTorch model file"),
        ("junk.onnx", b"\x08\x01garbage", "not a readable ONNX model"),
        ("junk.keras", b"PK\x03\x04broken", "corrupt or truncated .keras archive|need tensorflow"),
    ],
)
def test_broken_files_are_model_load_errors(name, content, message):
    if name.endswith(".keras") and not keras_available():
        pytest.skip("keras is not installed")
    with pytest.raises(ModelLoadError, match=message):
        open_uploaded_model(name, content)


def test_unknown_zoo_name_lists_the_zoo():
    with pytest.raises(InputError, match="breast_cancer_mlp"):
        open_tabular_model("no_such_model")


@pytest.mark.skipif(not keras_available(), reason="keras is not installed")
def test_keras_round_trip_and_gradients(tmp_path):
    keras = keras_module()
    keras.utils.set_random_seed(0)
    net = keras.Sequential([
        keras.Input((N_FEATURES,)),
        keras.layers.Dense(5, activation="tanh"),
        keras.layers.Dense(2, activation="softmax"),
    ])
    path = tmp_path / "net.keras"
    net.save(path)
    model = open_tabular_model(path)
    assert model.framework == "keras" and model.n_features == N_FEATURES and model.output_kind == "probability"
    np.testing.assert_allclose(model.predict(X), net.predict(X, verbose=0), atol=1e-6)
    grads, scores = model.gradients(X[:3], 1)
    eps = 1e-2
    for j in range(N_FEATURES):  # central differences agree with the tape's gradients
        up, down = X[:3].copy(), X[:3].copy()
        up[:, j] += eps
        down[:, j] -= eps
        numeric = (model.predict(up)[:, 1] - model.predict(down)[:, 1]) / (2 * eps)
        np.testing.assert_allclose(grads[:, j], numeric, atol=2e-3)


@pytest.mark.skipif(not keras_available(), reason="keras is not installed")
def test_keras_lambda_layer_is_refused_in_safe_mode(tmp_path, unconfined):
    keras = keras_module()
    net = keras.Sequential([keras.Input((N_FEATURES,)), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(1)])
    path = tmp_path / "lambda.keras"
    net.save(path)
    with pytest.raises(ModelLoadError, match="safe mode refuses"):
        open_tabular_model(path)


@pytest.mark.skipif(not keras_available(), reason="keras is not installed")
def test_zoo_keras_model_matches_its_metadata():
    model = open_tabular_model("breast_cancer_keras")
    meta = json.loads((ROOT / "model_zoo" / "weights" / "breast_cancer_keras.json").read_text())
    data = load_table(SAMPLE_CSV, label_column="target", n_features=model.n_features)
    accuracy = float((model.predict(data.x).argmax(1) == np.array(data.labels)).mean())
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1e-6)


@pytest.mark.skipif(not keras_available(), reason="keras is not installed")
def test_keras_then_torch_export_does_not_crash_the_process():
    """TensorFlow loaded before triton makes torch.export segfault; import_keras
    orders the imports so that a Keras model and a .pt2 can share one server."""
    import subprocess
    import sys

    code = (
        "from xai_core.adapters.runtime import import_tensorflow; import_tensorflow(); import keras; import torch; "
        "torch.export.export(torch.nn.Linear(3, 2), (torch.zeros(2, 3),)); print('exported')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-500:]
    assert "exported" in done.stdout
