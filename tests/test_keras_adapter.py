"""Keras adapter and loaders: every file format round-trips, bad files fail with
clear messages, nested models expose their layers, and every registered image
explainer runs on a Keras model (shape, finite values, determinism with a seed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xai_core import service
from xai_core.explainers import REGISTRY, available_for
from xai_core.loading.models import SpecOverrides, open_model
from xai_core.types import Capability, ImageSpec, InputError, ModelLoadError, UnsupportedError

ROOT = Path(__file__).resolve().parents[1]
FAST_PARAMS = {
    "smoothgrad": {"samples": 6},
    "integrated_gradients": {"steps": 16},
    "occlusion": {"window": 8, "stride": 8},
    "lime": {"samples": 100, "segments": 12},
    "shap_partition": {"max_evals": 100},
    "shap_gradient": {"samples": 8, "background_size": 4},
    "shap_deep": {"background_size": 4},
}


def _keras():
    from xai_core.adapters.runtime import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def small_rgb_cnn(softmax: bool):
    """A 24 x 24 RGB functional CNN with tanh convolutions (smooth, for finite differences)."""
    keras = _keras()
    keras.utils.set_random_seed(1)
    inp = keras.Input((24, 24, 3), name="pixels")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="tanh", name="conv_a")(inp)
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, activation="softmax" if softmax else None, name="head")(x)
    return keras.Model(inp, out, name="small_rgb")


def nested_cnn():
    """A functional base (conv stack) nested in a Sequential with a linear GAP head,
    like a keras.applications base under a new classifier."""
    keras = _keras()
    keras.utils.set_random_seed(2)
    inp = keras.Input((20, 20, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="b_conv1")(inp)
    x = keras.layers.Conv2D(7, 3, padding="same", activation="relu", name="b_conv2")(x)
    base = keras.Model(inp, x, name="base")
    return keras.Sequential(
        [keras.Input((20, 20, 3)), base, keras.layers.GlobalAveragePooling2D(name="gap"),
         keras.layers.Dense(3, name="head")],
        name="nested",
    )


def rgb_image(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The small RGB CNN as .keras, .h5 and SavedModel, plus bad files."""
    keras = _keras()
    out = tmp_path_factory.mktemp("keras_models")
    model = small_rgb_cnn(softmax=True)
    paths = {"keras": out / "small.keras", "h5": out / "small.h5", "savedmodel": out / "small_savedmodel"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.export(paths["savedmodel"], verbose=False)
    data = paths["keras"].read_bytes()
    (out / "truncated.keras").write_bytes(data[: len(data) // 2])
    h5 = paths["h5"].read_bytes()
    (out / "truncated.h5").write_bytes(h5[: len(h5) // 3])
    (out / "noise.keras").write_bytes(np.random.default_rng(0).bytes(2000))
    (out / "empty.keras").write_bytes(b"")
    lam = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Lambda(lambda z: z * 2.0, name="double"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    lam.save(out / "lambda.keras")
    lam.save(out / "lambda.h5")
    a, b = keras.Input((8, 8, 3), name="image"), keras.Input((4,), name="extra")
    two = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(a), b])))
    two.save(out / "two_inputs.keras")
    (out / "not_a_savedmodel").mkdir()
    rgba = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    rgba.save(out / "rgba.keras")
    return model, out, paths


# -- loading -------------------------------------------------------------------------
def test_import_xai_core_loads_no_framework():
    code = "import sys, xai_core, xai_core.loading.models, model_zoo; print('tensorflow' in sys.modules, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_formats_round_trip(files, fmt):
    model, _, paths = files
    adapter = open_model(paths[fmt])
    assert adapter.framework == "keras"
    # preprocessing defaults come from the model's input: 24 x 24 RGB
    assert adapter.spec.size == (24, 24) and not adapter.spec.grayscale
    assert adapter.output_kind == "probability" and adapter.num_classes == 4
    batch = np.random.default_rng(1).random((3, 24, 24, 3), dtype=np.float32)
    x = (batch - adapter.spec.mean_array()) / adapter.spec.std_array()
    np.testing.assert_allclose(adapter.predict(batch), model.predict(x, verbose=0), atol=1e-6)
    grads, scores = adapter.input_gradients(batch, 2)
    assert grads.shape == batch.shape and np.abs(grads).sum() > 0
    np.testing.assert_allclose(scores, model.predict(x, verbose=0)[:, 2], atol=1e-6)


def test_savedmodel_has_gradients_but_no_layers(files):
    _, _, paths = files
    adapter = open_model(paths["savedmodel"])
    assert adapter.capabilities == {"predict", "input_gradients"}
    assert adapter.labels == [f"class {i}" for i in range(4)]
    sidecar = paths["savedmodel"].with_suffix(".json")
    sidecar.write_text(json.dumps({"labels": ["w", "x", "y", "z"]}))
    try:
        assert open_model(paths["savedmodel"]).labels == ["w", "x", "y", "z"]
    finally:
        sidecar.unlink()
    assert adapter.layers() == []
    names = {e.name for e in available_for(adapter)}
    assert "saliency" in names and "grad_cam" not in names
    with pytest.raises(UnsupportedError, match="layer hooks"):
        service.explain(adapter, rgb_image(24), "grad_cam")
    with pytest.raises(UnsupportedError, match=r"\.keras"):
        adapter.layer_activations_and_gradients(np.zeros((1, 24, 24, 3), np.float32), 0, "conv_b")


def test_sidecar_and_overrides_apply(files, tmp_path):
    _, _, paths = files
    model_path = tmp_path / "with_sidecar.keras"
    model_path.write_bytes(paths["keras"].read_bytes())
    model_path.with_suffix(".json").write_text(json.dumps(
        {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "labels": ["a", "b", "c", "d"]}))
    adapter = open_model(model_path)
    assert adapter.spec.mean == (0.5, 0.5, 0.5) and adapter.spec.std == (0.25, 0.25, 0.25)
    assert adapter.labels == ["a", "b", "c", "d"] and adapter.spec.size == (24, 24)
    with pytest.raises(InputError, match="--input-size 24,24"):
        open_model(model_path, overrides=SpecOverrides(size=(32, 32)))
    with pytest.raises(InputError, match="grayscale off"):
        open_model(model_path, overrides=SpecOverrides(grayscale=True))


@pytest.mark.parametrize(("name", "pattern"), [
    ("truncated.keras", "corrupt or truncated .keras archive"),
    ("truncated.h5", "corrupt or truncated HDF5"),
    ("noise.keras", "not a Keras model file"),
    ("empty.keras", "the file is empty"),
    ("not_a_savedmodel", "not a TensorFlow SavedModel"),
    ("rgba.keras", "takes 4-channel images; only 1 .grayscale. or 3 .RGB. channels"),
])
def test_bad_files_fail_clearly(files, name, pattern):
    _, out, _ = files
    with pytest.raises(ModelLoadError, match=pattern) as info:
        open_model(out / name, framework="keras")
    assert name in str(info.value)


def test_two_inputs_image_and_vector_with_gradients(files):
    """An image input and a feature-row input: one spec each, named after the model's
    inputs; gradients come back one array per input and match finite differences."""
    _, out, _ = files
    adapter = open_model(out / "two_inputs.keras", overrides=SpecOverrides(size=(8, 8)))
    assert [s.name for s in adapter.inputs] == ["image", "extra"] and adapter.input_kinds == ["image", "vector"]
    rng = np.random.default_rng(0)
    image, row = rng.random((3, 8, 8, 3), dtype=np.float32), rng.random((3, 4), dtype=np.float32)
    (g_image, g_row), scores = adapter.input_gradients([image, row], 1)
    assert g_image.shape == image.shape and g_row.shape == row.shape
    np.testing.assert_allclose(scores, adapter.outputs([image, row])[:, 1], atol=1e-6)
    eps = 1e-2
    up, down = row.copy(), row.copy()
    up[:, 2] += eps
    down[:, 2] -= eps
    numeric = (adapter.outputs([image, up])[:, 1] - adapter.outputs([image, down])[:, 1]) / (2 * eps)
    np.testing.assert_allclose(g_row[:, 2], numeric, atol=1e-3)


@pytest.mark.parametrize("name", ["lambda.keras", "lambda.h5"])
def test_lambda_refused_in_safe_mode_unless_trusted(files, name, unconfined):
    _, out, _ = files
    with pytest.raises(ModelLoadError, match="Lambda layer") as info:
        open_model(out / name)
    text = str(info.value)
    assert "Re-save the model without Lambda layers" in text and "--trust-code" in text
    adapter = open_model(out / name, trust_pickle=True, overrides=SpecOverrides(mean=(0.0,), std=(1.0,)))
    assert adapter.predict(np.ones((1, 8, 8, 3), np.float32)).shape == (1, 2)


def test_cuda_without_gpu_is_a_clear_error(files):
    _, _, paths = files
    from xai_core.adapters.runtime import import_tensorflow

    if import_tensorflow().config.list_physical_devices("GPU"):
        pytest.skip("TensorFlow sees a GPU here")
    with pytest.raises(InputError, match="TensorFlow sees no GPU"):
        open_model(paths["keras"], device="cuda")


# -- adapter primitives ------------------------------------------------------------
def test_output_kind_detected():
    from xai_core.adapters.keras import KerasAdapter

    spec = ImageSpec((24, 24))
    assert KerasAdapter(small_rgb_cnn(True), spec).output_kind == "probability"
    logits = KerasAdapter(small_rgb_cnn(False), spec)
    assert logits.output_kind == "logit"
    probs = logits.predict(np.random.default_rng(0).random((2, 24, 24, 3), dtype=np.float32))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_input_gradients_match_finite_differences():
    from xai_core.adapters.keras import KerasAdapter

    adapter = KerasAdapter(small_rgb_cnn(False), ImageSpec((24, 24)))
    x = np.random.default_rng(3).random((1, 24, 24, 3)).astype(np.float32)
    grads, score = adapter.input_gradients(x, 1)
    rng = np.random.default_rng(4)
    for _ in range(4):
        i, j, c = rng.integers(0, 24), rng.integers(0, 24), rng.integers(0, 3)
        eps = 1e-2
        up, down = x.copy(), x.copy()
        up[0, i, j, c] += eps
        down[0, i, j, c] -= eps
        numeric = (adapter.logits_or_probs(up)[0, 1] - adapter.logits_or_probs(down)[0, 1]) / (2 * eps)
        assert abs(numeric - grads[0, i, j, c]) < 2e-3 + 0.05 * abs(numeric)
    assert score.shape == (1,)


def test_target_none_takes_the_predicted_class_in_one_pass():
    from xai_core.adapters.keras import KerasAdapter

    adapter = KerasAdapter(small_rgb_cnn(False), ImageSpec((24, 24)))
    x = np.random.default_rng(5).random((2, 24, 24, 3)).astype(np.float32)
    grads, scores, probs = adapter.input_gradients(x, None, return_probs=True)
    top = int(probs[0].argmax())
    np.testing.assert_allclose(probs, adapter.predict(x), atol=1e-6)
    np.testing.assert_allclose(scores, adapter.logits_or_probs(x)[:, top], atol=1e-5)
    acts, lgrads, lscores, lprobs = adapter.layer_activations_and_gradients(x, None, "conv_b", return_probs=True)
    assert acts.shape == lgrads.shape == (2, 8, 12, 12)
    np.testing.assert_allclose(lscores, scores, atol=1e-5)


def test_nested_model_layers_and_exact_layer_gradients():
    """Behind conv2 come GAP and a linear head, so d logit_t / d A[c, i, j] is
    exactly W[c, t] / (h * w) at every position: an exact check of the layer path."""
    from xai_core.adapters.keras import KerasAdapter

    model = nested_cnn()
    adapter = KerasAdapter(model, ImageSpec((20, 20)), name="nested")
    # inner layers in execution order, then the nested model itself (its output is
    # b_conv2's map too), like a torch container module
    names = [info.name for info in adapter.layers() if info.spatial]
    assert names == ["base/b_conv1", "base/b_conv2", "base"]
    assert [(i.name, i.output_shape, i.index) for i in adapter.layers() if not i.spatial] == [
        ("gap", (7,), "1"), ("head", (3,), "2")]
    # indices as Keras counts them: model.layers[i], and layer j of a nested model as "i/j"
    assert [adapter.resolve_layer(i) for i in (2, "-1", "0", "0/2", "b_conv2")] == [
        "head", "head", "base", "base/b_conv2", "base/b_conv2"]
    assert model.layers[2].name == "head" and model.layers[0].layers[2].name == "b_conv2"
    with pytest.raises(InputError, match="input layer"):
        adapter.resolve_layer("0/0")
    with pytest.raises(InputError, match="no layer with index 3"):
        adapter.resolve_layer(3)
    assert adapter.layers()[1].output_shape == (7, 20, 20)
    assert adapter.default_cam_layer() == "base"
    x = np.random.default_rng(6).random((2, 20, 20, 3)).astype(np.float32)
    kernel = model.get_layer("head").get_weights()[0]  # 7 x 3
    base = model.get_layer("base")
    xn = (x - adapter.spec.mean_array()) / adapter.spec.std_array()
    for layer in ("base/b_conv2", "base"):
        acts, grads, scores = adapter.layer_activations_and_gradients(x, 1, layer)
        assert acts.shape == grads.shape == (2, 7, 20, 20)
        expected = np.broadcast_to((kernel[:, 1] / 400.0)[None, :, None, None], grads.shape)
        np.testing.assert_allclose(grads, expected, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(acts, base.predict(xn, verbose=0).transpose(0, 3, 1, 2), atol=1e-5)
        np.testing.assert_allclose(scores, adapter.logits_or_probs(x)[:, 1], atol=1e-5)
    # a bare inner name is enough when unique; unknown names list the candidates
    assert adapter.layer_activations_and_gradients(x[:1], 1, "b_conv1")[0].shape == (1, 5, 20, 20)
    with pytest.raises(InputError, match="candidates: base/b_conv1, base/b_conv2"):
        adapter.layer_activations_and_gradients(x[:1], 1, "nope")
    # the recording wrappers are gone afterwards
    assert "call" not in vars(base.get_layer("b_conv2"))


# -- every explainer ----------------------------------------------------------------
@pytest.fixture(scope="module")
def gray_adapter():
    """The zoo's Keras digits CNN: grayscale input, softmax output."""
    return open_model("keras_digits_cnn")


@pytest.fixture(scope="module")
def digit():
    from twin_models import digit_images

    return digit_images(1, offset=5)[0]


# what a Keras model cannot offer: LRP (zennit works on torch modules) and the methods
# that read a transformer's attention
NOT_ON_KERAS = {Capability.TORCH_MODULE, Capability.ATTENTION, Capability.CLASS_TOKEN, Capability.BLOCK_SCORES}
KERAS_METHODS = [n for n, e in REGISTRY.items() if e.input_kind == "image" and not e.requires & NOT_ON_KERAS]


def test_torch_and_transformer_methods_are_not_offered_on_keras(gray_adapter):
    offered = {e.name for e in available_for(gray_adapter)}
    others = {n for n, e in REGISTRY.items() if e.input_kind == "image" and e.requires & NOT_ON_KERAS}
    assert {"lrp", "attention_rollout"} <= others and not offered & others


@pytest.mark.parametrize("method", KERAS_METHODS)
def test_every_explainer_runs_on_keras(gray_adapter, digit, method):
    assert method in {e.name for e in available_for(gray_adapter)}
    params = FAST_PARAMS.get(method, {})
    first = service.explain(gray_adapter, digit, method, params, seed=7)
    again = service.explain(gray_adapter, digit, method, params, seed=7)
    assert first.attribution.shape == (32, 32) and first.attribution.dtype == np.float32
    assert np.isfinite(first.attribution).all() and np.abs(first.attribution).max() > 0
    np.testing.assert_array_equal(first.attribution, again.attribution)
    assert first.output_kind in ("probability",)
    assert first.predictions[0].index == first.target
    if method == "grad_cam":
        assert first.layer == "conv3"
        other = service.explain(gray_adapter, digit, method, layer="conv1", seed=7)
        assert other.layer == "conv1" and not np.allclose(other.attribution, first.attribution)


def test_keras_digits_zoo_model_is_accurate(gray_adapter):
    from twin_models import digit_labels

    from model_zoo import ZOO
    from model_zoo.digits_data import digit_split

    assert ZOO["keras_digits_cnn"].framework == "keras"
    meta = json.loads((ROOT / "model_zoo/weights/keras_digits_cnn.json").read_text())
    assert meta["test_accuracy"] > 0.9 and meta["seed"] == 0
    x_test = digit_split(0)[1][:200, ..., None]
    accuracy = (gray_adapter.predict(x_test).argmax(1) == digit_labels(200)).mean()
    assert accuracy > 0.9
    assert abs(accuracy - meta["test_accuracy"]) < 0.05


def test_keras_applications_offline_error_names_the_weights_path(tmp_path, monkeypatch):
    from model_zoo import ZOO

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for name, file_name in (("keras_resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
                            ("keras_mobilenet_v2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"),
                            ("keras_vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
                            ("keras_vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels.h5")):
        assert ZOO[name].framework == "keras" and not ZOO[name].offline
        with pytest.raises(ModelLoadError, match="not on this machine") as info:
            open_model(name)
        assert str(tmp_path / "models" / file_name) in str(info.value)


def test_caffe_preprocessing_matches_keras_preprocess_input():
    """ResNet50/VGG zoo entries: our mean/std plus the RGB -> BGR layer reproduce
    keras.applications.resnet50.preprocess_input exactly (random weights here)."""
    keras = _keras()
    from model_zoo import ZOO
    from model_zoo.keras_models import rgb_to_bgr_model
    from xai_core.adapters.keras import KerasAdapter

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    base = keras.Model(inp, keras.layers.Dense(5)(keras.layers.Flatten()(
        keras.layers.Conv2D(2, 3, name="c")(inp))), name="base")
    spec = ImageSpec((32, 32), ZOO["keras_resnet50"].spec.mean, ZOO["keras_resnet50"].spec.std)
    adapter = KerasAdapter(rgb_to_bgr_model(base), spec)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    reference = base.predict(keras.applications.resnet50.preprocess_input(x * 255.0), verbose=0)
    np.testing.assert_allclose(adapter.logits_or_probs(x), reference, rtol=1e-4, atol=1e-3)
    assert adapter.default_cam_layer() == "base/c"


# -- SHAP DeepExplainer (Keras only) ----------------------------------------------------
def test_shap_deep_adds_up_to_the_explained_probability(gray_adapter, digit):
    e = service.explain(gray_adapter, digit, "shap_deep", {"background_size": 6}, seed=0)
    probability = e.predictions[0].probability
    assert e.target == e.predictions[0].index
    assert abs(float(e.raw.sum()) + e.extras["expected_value"] - probability) < 1e-4
    assert e.extras["background_size"] == 6


def test_shap_deep_on_a_linear_model_is_gradient_times_input():
    """For a linear network and black references, DeepLIFT's values are exactly
    gradient x (input - 0): checks the normalisation layer and the target column."""
    keras = _keras()
    from xai_core.adapters.keras import KerasAdapter

    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3, name="lin"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    adapter = KerasAdapter(model, ImageSpec((12, 12), (0.4, 0.5, 0.6), (0.2, 0.3, 0.25)))
    image = rgb_image(12, seed=3)
    e = service.explain(adapter, image, "shap_deep", {"background": "black", "background_size": 2}, target=2)
    from xai_core.inputs.images import preprocess

    x = preprocess(image, adapter.spec)
    grads, _ = adapter.input_gradients(x[None], 2)
    np.testing.assert_allclose(e.raw, grads[0] * x, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize(("activation", "pattern"), [
    ("gelu", r"no rule for the TensorFlow op 'Erfc'.*Use shap_gradient"),
    ("swish", r"fail shap's additivity check.*Use shap_gradient"),
])
def test_shap_deep_fails_clearly_on_unsupported_layers(activation, pattern):
    keras = _keras()
    from xai_core.adapters.keras import KerasAdapter

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation=activation),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    adapter = KerasAdapter(model, ImageSpec((16, 16)))
    with pytest.raises(UnsupportedError, match=pattern):
        service.explain(adapter, rgb_image(16), "shap_deep", {"background_size": 4})
    # the registry swap was undone: true gradients afterwards
    x = np.random.default_rng(0).random((1, 16, 16, 3)).astype(np.float32)
    g, _ = adapter.input_gradients(x, 0)
    eps = 1e-2
    up, down = x.copy(), x.copy()
    up[0, 5, 5, 1] += eps
    down[0, 5, 5, 1] -= eps
    numeric = (adapter.logits_or_probs(up)[0, 0] - adapter.logits_or_probs(down)[0, 0]) / (2 * eps)
    assert abs(numeric - g[0, 5, 5, 1]) < 2e-3 + 0.05 * abs(numeric)


def test_shap_deep_not_offered_without_a_keras_model(files):
    _, _, paths = files
    adapter = open_model(paths["savedmodel"])
    assert "shap_deep" not in {e.name for e in available_for(adapter)}
    with pytest.raises(UnsupportedError, match="Use shap_gradient"):
        service.explain(adapter, rgb_image(24), "shap_deep")


@pytest.mark.slow
def test_keras_application_loads_weights_from_the_keras_cache(tmp_path, monkeypatch):
    """The real zoo path: keras.applications.MobileNetV2 built with the weights file
    found at $KERAS_HOME/models/<Keras' own file name> (random weights written there
    in Keras' legacy HDF5 layout, as the downloaded file is), mean/std 0.5 = [-1, 1]."""
    keras = _keras()
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    keras.utils.set_random_seed(0)
    reference = keras.applications.MobileNetV2(weights=None)
    (tmp_path / "models").mkdir()
    with h5py.File(tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    adapter = open_model("keras_mobilenet_v2")
    assert adapter.framework == "keras" and adapter.labels[:2] == ["tench", "goldfish"]
    x = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32)
    expected = reference.predict(keras.applications.mobilenet_v2.preprocess_input(x * 255.0), verbose=0)
    np.testing.assert_allclose(adapter.predict(x), expected, atol=1e-6)
    assert adapter.default_cam_layer() == "out_relu"
