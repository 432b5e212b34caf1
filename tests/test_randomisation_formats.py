"""The randomisation check on the Keras and Hugging Face forms users save (issue
20 item 2; the PyTorch and ONNX forms are in test_every_format.py): a Keras
functional `.keras` file, a subclassed model saved as `.keras` and with
`model.export`, a SavedModel whose signature takes one image a call, and a
Hugging Face folder.
Each works through the model worker and equals the same model in-process, or is
refused with one line saying why."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import ROOT

from xai_core.inputs.images import preprocess
from xai_core.loading.models import open_model
from xai_core.metrics.service import evaluate_image
from xai_core.service import explain
from xai_core.types import UnsupportedError

SIDE = 16
SIDECAR = {"size": [SIDE, SIDE], "mean": [0.5] * 3, "std": [0.5] * 3, "labels": ["a", "b", "c"]}


def _layers():
    import keras

    return [keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(8, activation="sigmoid", name="hidden"),
            keras.layers.Dense(3, name="out")]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{form: path} for one small Keras CNN saved as users save it, and the functional model."""
    from xai_core.adapters.runtime import import_tensorflow

    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIDE, SIDE, 3))
    x = inp
    for layer in _layers():
        x = layer(x)
    functional = keras.Model(inp, x)

    class Subclassed(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.stack = _layers()

        def call(self, x):
            for layer in self.stack:
                x = layer(x)
            return x

    subclassed = Subclassed()
    subclassed(np.zeros((1, SIDE, SIDE, 3), np.float32))
    subclassed.set_weights(functional.get_weights())

    out = tmp_path_factory.mktemp("keras_forms")
    files = {"functional": out / "functional.keras", "subclassed_export": out / "subclassed_export",
             "one_image_signature": out / "one_image", "subclassed": out / "subclassed.keras"}
    functional.save(files["functional"])
    keras.saving.register_keras_serializable(package="xai_tests")(Subclassed)
    subclassed.save(files["subclassed"])
    subclassed.export(files["subclassed_export"], verbose=False)
    one = tf.function(lambda x: {"logits": functional(x, training=False)},
                      input_signature=[tf.TensorSpec((1, SIDE, SIDE, 3), tf.float32, name="x")])
    module = tf.Module()
    module.model = functional
    tf.saved_model.save(module, str(files["one_image_signature"]), signatures={"serving_default": one})
    for path in files.values():
        path.with_suffix(".json").write_text(json.dumps(SIDECAR))
    return files, functional


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(3).random((SIDE, SIDE, 3)) * 255).astype(np.uint8)


def randomisation(model, image, method="saliency"):
    x = preprocess(image, model.spec)
    exp = explain(model, image, method, {}, seed=0)
    return evaluate_image(model, x, exp, ["randomization"])["randomization"]


def test_keras_functional_file_through_the_worker_equals_in_process(saved, image):
    from xai_core.adapters.keras import KerasAdapter

    files, functional = saved
    model = open_model(files["functional"])
    assert model.engine == "worker"
    result = randomisation(model, image)
    local = KerasAdapter(functional, model.spec, list(model.labels), name="in-process")
    reference = randomisation(local, image)
    assert result.details["total_layers"] == 3
    assert result.value == pytest.approx(reference.value, abs=1e-6)
    assert result.value < 0.9  # the map changed once the weights were random


@pytest.mark.parametrize("form", ["subclassed_export", "one_image_signature"])
def test_keras_savedmodel_is_refused_in_one_line(saved, image, form):
    files, functional = saved
    model = open_model(files[form])
    x = preprocess(image, model.spec)
    want = functional(((x - 0.5) / 0.5)[None]).numpy()
    np.testing.assert_allclose(model.outputs(x[None]), want, rtol=1e-4, atol=1e-6)  # it loads and runs
    with pytest.raises(UnsupportedError) as info:
        randomisation(model, image)
    text = str(info.value)
    assert "\n" not in text and "SavedModel" in text and "save the model as .keras" in text


def test_subclassed_keras_file_is_refused_when_opened(saved):
    """Its class is Python code the worker does not have (and a model with no defined
    input cannot be wrapped in-process either): one line at open, not a wrong check."""
    from xai_core.types import ModelLoadError

    files, _ = saved
    with pytest.raises(ModelLoadError) as info:
        open_model(files["subclassed"])
    assert "\n" not in str(info.value) and "custom class" in str(info.value)


def test_hugging_face_folder_through_the_worker_equals_in_process(tmp_path, image):
    folder = shutil.copytree(ROOT / "model_zoo" / "weights" / "digits_vit", tmp_path / "digits_vit")
    model = open_model(folder)
    assert model.engine == "worker"
    result = randomisation(model, image)
    reference = randomisation(open_model("digits_vit"), image)
    assert result.details["total_layers"] == reference.details["total_layers"] > 3
    assert result.value == pytest.approx(reference.value, abs=1e-6)
    assert result.value < 0.9
