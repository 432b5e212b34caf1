"""The dashboard's Keras and ONNX paths through AppTest: zoo, uploads of every
format (.keras, .h5, SavedModel .zip, .onnx), preprocessing read from the model,
the explainer list per capability, downloads, and the refusal of untrusted code."""

from __future__ import annotations

import io
import zipfile

import pytest
from test_dashboard import assert_clean, captions, click_explain, errors, image_page, predictions_frame

from tests.conftest import ROOT
from xai_core.adapters.runtime import import_tensorflow

KERAS_DIGITS = ROOT / "model_zoo" / "weights" / "keras_digits_cnn.keras"


def choose_framework(at, key: str):
    at.selectbox(key="img_framework").set_value(key).run()
    assert_clean(at)


def upload_model(at, framework: str, name: str, data: bytes):
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key=f"img_model_file_{framework}").set_value((name, data, "application/octet-stream")).run()


def use_digit_sample(at):
    at.selectbox(key="img_sample").set_value("digit_7.png").run()


def explainer_options(at) -> list[str]:
    """Method names behind the Explainer selectbox (which shows their labels)."""
    from xai_core.explainers import REGISTRY

    by_label = {e.label: name for name, e in REGISTRY.items()}
    return [by_label[label] for label in at.selectbox(key="img_method").options]


def download_labels(at) -> list[str]:
    return [d.label for d in at.get("download_button")]


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    import_tensorflow()
    import keras

    out = tmp_path_factory.mktemp("dash_keras")
    model = keras.saving.load_model(KERAS_DIGITS)
    model.save(out / "digits.h5")
    model.export(out / "digits_savedmodel", verbose=False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in (out / "digits_savedmodel").rglob("*"):
            if p.is_file():
                zf.write(p, p.relative_to(out))
    (out / "digits_savedmodel.zip").write_bytes(buf.getvalue())
    lam = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Lambda(lambda z: z * 1.0, name="identity"),
                            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    lam.save(out / "lambda.keras")
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape/saved_model.pb", b"x")
    (out / "escape.zip").write_bytes(evil.getvalue())
    return out


def test_softmax_model_can_be_explained_as_logits():
    at = image_page()
    choose_framework(at, "keras")
    use_digit_sample(at)
    at.selectbox(key="img_method").set_value("saliency").run()
    at.radio(key="img_explains").set_value("logit").run()
    click_explain(at)
    assert_clean(at)
    assert "Overlay: Saliency (gradients)" in captions(at)
    from ui.runner import RESULTS_KEY

    (item,) = at.session_state[RESULTS_KEY].items
    assert item.explanation.output_kind == "logit"


def test_keras_zoo_model_explains_a_digit():
    at = image_page()
    choose_framework(at, "keras")
    assert at.selectbox(key="img_zoo_model").value == "keras_digits_cnn"
    use_digit_sample(at)
    at.selectbox(key="img_method").set_value("grad_cam").run()
    click_explain(at)
    assert_clean(at)
    assert "Overlay: Grad-CAM" in captions(at)
    assert predictions_frame(at)["Label"].iloc[0] == "7"


@pytest.mark.parametrize("fmt", [".keras", ".h5", ".zip"])
def test_uploaded_keras_model_in_each_format(fmt, keras_files):
    source = KERAS_DIGITS if fmt == ".keras" else keras_files / f"digits{'.h5' if fmt == '.h5' else '_savedmodel.zip'}"
    at = image_page()
    choose_framework(at, "keras")
    upload_model(at, "keras", f"mine{fmt}", source.read_bytes())
    assert_clean(at)
    # the form takes the model's declared input: 32 x 32, one channel
    assert at.number_input(key="img_height").value == 32 and at.checkbox(key="img_grayscale").value
    use_digit_sample(at)
    options = explainer_options(at)
    if fmt == ".zip":
        assert "grad_cam" not in options and "saliency" in options  # SavedModel: gradients, no layers
    else:
        assert {"grad_cam", "saliency", "integrated_gradients", "lime"} <= set(options)
    at.selectbox(key="img_method").set_value("saliency").run()
    click_explain(at)
    assert_clean(at)
    assert predictions_frame(at)["Label"].iloc[0] == "class 7"
    assert any(label.startswith("Download overlay") for label in download_labels(at))


def test_keras_lambda_layer_needs_explicit_trust(keras_files, unconfined):
    at = image_page()
    choose_framework(at, "keras")
    upload_model(at, "keras", "lambda.keras", (keras_files / "lambda.keras").read_bytes())
    assert not at.exception
    message = " ".join(errors(at))
    assert "Lambda" in message and "I trust this file" in message
    at.checkbox(key="img_trust_keras").check().run()
    assert_clean(at)
    assert at.number_input(key="img_height").value == 32


def test_savedmodel_zip_that_escapes_is_refused(keras_files):
    at = image_page()
    choose_framework(at, "keras")
    upload_model(at, "keras", "escape.zip", (keras_files / "escape.zip").read_bytes())
    assert not at.exception
    assert any("points outside it" in e for e in errors(at))
    assert not (keras_files.parent / "escape").exists()


@pytest.fixture(scope="module")
def onnx_digits(tmp_path_factory):
    import torch

    from model_zoo.pretrained import own_model

    out = tmp_path_factory.mktemp("dash_onnx") / "digits.onnx"
    torch.onnx.export(own_model("digits_cnn").eval(), (torch.zeros(1, 1, 32, 32),), str(out), dynamo=False,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return out


def test_uploaded_onnx_model_offers_only_perturbation_methods(onnx_digits):
    at = image_page()
    choose_framework(at, "onnx")
    upload_model(at, "onnx", "digits.onnx", onnx_digits.read_bytes())
    assert_clean(at)
    assert at.number_input(key="img_height").value == 32 and at.checkbox(key="img_grayscale").value
    at.selectbox(key="img_norm").set_value("[-1, 1] (mean 0.5, std 0.5)").run()
    use_digit_sample(at)
    options = set(explainer_options(at))
    assert {"lime", "shap_partition", "occlusion"} <= options
    assert not options & {"saliency", "grad_cam", "integrated_gradients", "smoothgrad", "shap_gradient"}
    at.selectbox(key="img_method").set_value("occlusion").run()
    at.number_input(key="img_param_occlusion_window").set_value(8)
    at.number_input(key="img_param_occlusion_stride").set_value(8)
    click_explain(at)
    assert_clean(at)
    assert predictions_frame(at)["Label"].iloc[0] == "class 7"


def test_broken_onnx_upload_is_an_error_and_the_page_survives():
    at = image_page()
    choose_framework(at, "onnx")
    upload_model(at, "onnx", "broken.onnx", b"\x08\x01garbage" * 50)
    assert not at.exception
    assert any("broken.onnx" in e for e in errors(at))
    at.radio(key="img_source").set_value("Model zoo").run()
    choose_framework(at, "torch")
    assert_clean(at)
