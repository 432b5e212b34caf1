"""Dashboard pages through streamlit.testing.v1.AppTest (no browser).

Speed: the per-explainer tests use the zoo's 32x32 digits CNN with small budgets;
only the landing page's one-click start loads EfficientNet-Lite0.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import torch_image_methods
from ui.samples import list_samples
from xai_core.explainers import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 180

# small budgets per method, set through the generated parameter widgets
SMALL = {
    "lime": {"samples": 60, "segments": 16},
    "smoothgrad": {"samples": 4},
    "integrated_gradients": {"steps": 8},
    "shap_gradient": {"samples": 8, "background_size": 2},
    "shap_partition": {"max_evals": 60},
    "occlusion": {"window": 8, "stride": 8},
}


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at), errors(at)


def assert_page_words(at: AppTest) -> None:
    """Errors speak of the page's widgets and the uploaded file's name, never of
    command-line flags or the server's temporary copies."""
    import tempfile

    for e in errors(at):
        assert "--" not in e and tempfile.gettempdir() not in e and "xai-dashboard-uploads" not in e, e


def captions(at: AppTest) -> list[str]:
    return [c for img in at.get("image") for c in img.captions]


def image_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("views/image.py").run()
    assert_clean(at)
    return at


def use_digits_model(at: AppTest) -> None:
    at.selectbox(key="img_zoo_model").set_value("digits_cnn").run()
    assert_clean(at)
    digit = [s.name for s in list_samples() if s.name.startswith("digit")]
    if digit:
        at.selectbox(key="img_sample").set_value(digit[0]).run()


BUDGET_WORDS = ("sample", "step", "eval", "background")


def small_budget(method: str) -> dict[str, int]:
    """The budgets above; for a method added later, every integer budget at its lower bound."""
    if method in SMALL:
        return SMALL[method]
    return {p.name: int(p.low) for p in REGISTRY[method].param_infos()
            if p.type is int and p.low is not None and any(w in p.name for w in BUDGET_WORDS)}


def set_params(at: AppTest, method: str) -> None:
    for name, value in small_budget(method).items():
        at.number_input(key=f"img_param_{method}_{name}").set_value(value)


def click_explain(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "Explain").click().run()


def predictions_frame(at: AppTest):
    assert len(at.dataframe) == 1
    return at.dataframe[0].value


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    import skimage.data

    return skimage.data.chelsea()


@pytest.fixture(scope="module")
def digits_module():
    from model_zoo.pretrained import own_model

    return own_model("digits_cnn").eval()


def test_landing_page_one_click_start_explains_a_sample_photo():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert "image classifiers" in " ".join(m.value for m in at.markdown)
    at.button[0].click().run()
    assert_clean(at)
    assert at.selectbox(key="img_zoo_model").value == "efficientnet_lite0"
    assert at.selectbox(key="img_method").value == "grad_cam"
    shown = captions(at)
    assert "Original" in shown and "Overlay: Grad-CAM" in shown and "Heatmap: Grad-CAM" in shown
    frame = predictions_frame(at)
    assert len(frame) == 5
    assert list(frame["Probability"]) == sorted(frame["Probability"], reverse=True)
    assert "cat" in frame["Label"].iloc[0].lower()  # the sample photo is Chelsea the cat
    assert [m.label for m in at.metric] == ["Run time", "Model evaluations", "Engine"]
    assert at.metric[2].value == "torch"  # Grad-CAM's gradients stay on the framework
    assert any(b.label.startswith("Download overlay") for b in at.get("download_button"))


@pytest.mark.parametrize("method", torch_image_methods())
def test_every_explainer_renders_images_and_predictions(method):
    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value(method).run()
    set_params(at, method)
    click_explain(at)
    assert_clean(at)
    label = REGISTRY[method].label
    shown = captions(at)
    assert f"Overlay: {label}" in shown and f"Heatmap: {label}" in shown
    frame = predictions_frame(at)
    assert len(frame) == 5 and set(frame["Label"]) <= {str(d) for d in range(10)}
    (chart,) = at.get("plotly_chart")
    assert json.loads(chart.proto.spec)["layout"]["yaxis"]["type"] == "category"  # "0".."9" are names
    evals = int(next(m.value for m in at.metric if m.label == "Model evaluations").replace(",", ""))
    assert evals >= 1
    engine = next(m.value for m in at.metric if m.label == "Engine")
    fast = REGISTRY[method].requires == {"predict"} or REGISTRY[method].forward_bound  # the fast forward path
    assert engine in (("onnxruntime", "openvino") if fast else ("torch",))


def test_top_classes_show_the_image_x_class_grid():
    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("occlusion").run()
    set_params(at, "occlusion")
    offered = set(at.selectbox(key="img_target").options)
    assert {f"Top {k} classes (image x class grid)" for k in (2, 3, 4, 5)} <= offered
    at.selectbox(key="img_target").set_value("top4").run()  # shap's ranked_outputs=4, as in the VGG19 story
    click_explain(at)
    assert_clean(at)
    assert "Occlusion: image x class grid" in captions(at)
    labels = [b.label for b in at.get("download_button")]
    assert "Download overlay grid PNG (occlusion)" in labels
    assert sum(label.startswith("Download overlay PNG") for label in labels) == 4  # one per class


def test_several_explainers_side_by_side_on_a_shared_scale():
    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("integrated_gradients").run()
    at.multiselect(key="img_compare").set_value(["grad_cam", "shap_gradient"]).run()
    set_params(at, "integrated_gradients")
    set_params(at, "shap_gradient")
    at.checkbox(key="img_shared_scale").check()
    click_explain(at)
    assert_clean(at)
    overlays = [c for c in captions(at) if c.startswith("Overlay: ")]
    assert overlays == ["Overlay: Integrated Gradients", "Overlay: Grad-CAM", "Overlay: SHAP expected gradients"]
    note = next(c.value for c in at.caption if "colour scale" in c.value)
    assert "Integrated Gradients and SHAP expected gradients share one colour scale" in note
    assert "Grad-CAM keep their own scale" in note
    downloads = [b.label for b in at.get("download_button")]
    assert sum(label.startswith("Download overlay") for label in downloads) == 3


def test_reruns_and_repeated_clicks_reuse_the_cached_result(monkeypatch):
    from ui import cache
    from xai_core import service

    calls = []
    real = service.explain

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "explain", counting)
    cache._explain.clear()
    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("saliency").run()
    click_explain(at)
    assert calls == ["saliency"]
    at.run()  # a plain rerun
    assert calls == ["saliency"] and "Overlay: Saliency (gradients)" in captions(at)
    click_explain(at)  # same settings: served from st.cache_data
    assert calls == ["saliency"]
    at.number_input(key="img_seed").set_value(7)
    click_explain(at)  # the seed is part of the key
    assert calls == ["saliency", "saliency"]


def test_generated_parameter_widgets_follow_the_definitions():
    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("lime").run()
    infos = {p.name: p for p in REGISTRY["lime"].param_infos()}
    samples = at.number_input(key="img_param_lime_samples")
    assert (samples.min, samples.max, samples.value) == (infos["samples"].low, infos["samples"].high,
                                                        infos["samples"].default)
    seg = at.selectbox(key="img_param_lime_segmentation")
    assert seg.options == list(infos["segmentation"].choices)
    assert seg.help == infos["segmentation"].help
    width = at.slider(key="img_param_lime_kernel_width")
    assert (width.min, width.max) == (infos["kernel_width"].low, infos["kernel_width"].high)
    # parameters for feature-vector inputs stay off the form of a model with one image input
    at.selectbox(key="img_method").set_value("occlusion").run()
    shown = {w.key for w in at.number_input}
    assert "img_param_occlusion_window" in shown and "img_param_occlusion_feature_window" not in shown
    # Grad-CAM gets a layer picker: what each layer is in plain words, the default
    # recommended, and the raw index · name · kind · C x h x w beside
    at.selectbox(key="img_method").set_value("grad_cam").run()
    layer = at.selectbox(key="img_layer_grad_cam")
    assert layer.value == "features"  # the core's default: the last spatial feature map
    assert layer.options == [  # index as in the leaf order of named_modules() · name · kind · C x h x w
        "first convolution, 16 x 32 x 32  (0 · features.0 · Conv2d · 16x32x32)",
        "middle convolution, 32 x 16 x 16  (3 · features.3 · Conv2d · 32x16x16)",
        "last convolution, 64 x 8 x 8  (6 · features.6 · Conv2d · 64x8x8)",
        "convolution block, 64 x 8 x 8, recommended for Grad-CAM  (features · Sequential · 64x8x8)",
    ]
    at.checkbox(key="img_layer_grad_cam_all").check().run()
    assert len(at.selectbox(key="img_layer_grad_cam").options) == 9


def test_zoo_entry_sets_preprocessing_defaults_and_preview():
    at = image_page()
    assert (at.number_input(key="img_height").value, at.selectbox(key="img_norm").value) == (224, "ImageNet")
    use_digits_model(at)
    assert at.number_input(key="img_height").value == 32
    assert at.checkbox(key="img_grayscale").value is True
    assert at.selectbox(key="img_norm").value.startswith("[-1, 1]")
    assert any(c.startswith("Model input: 32x32, gray") for c in captions(at))


def test_upload_torchscript_model_and_photo(photo, digits_module, tmp_path):
    import torch

    scripted = torch.jit.trace(digits_module, torch.zeros(1, 1, 32, 32))
    path = tmp_path / "digits_script.pt"
    torch.jit.save(scripted, str(path))
    at = image_page()
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key="img_model_file_torch").set_value(("digits_script.pt", path.read_bytes(), "application/octet-stream")).run()
    assert not at.exception  # loaded at the default 224x224 RGB input, which this model rejects
    assert any("(1, 3, 224, 224)" in e and "Preprocessing" in e for e in errors(at))
    assert_page_words(at)
    at.number_input(key="img_height").set_value(32)
    at.number_input(key="img_width").set_value(32)
    at.checkbox(key="img_grayscale").check()
    at.selectbox(key="img_norm").set_value("[-1, 1] (mean 0.5, std 0.5)").run()
    at.radio(key="img_image_source").set_value("Upload an image").run()
    at.file_uploader(key="img_image_file").set_value(("cat.png", png_bytes(photo), "image/png")).run()
    assert_clean(at)
    methods = at.selectbox(key="img_method").options
    # TorchScript layers are hooked through the program's wrappers; LRP needs the module itself
    assert {"Grad-CAM", "Layer conductance", "Saliency (gradients)"} <= set(methods)
    (missing,) = [x for x in at.expander if x.label.startswith("Not available for this model")]
    why = " ".join(m.value for m in missing.markdown)
    assert "**Grad-CAM**" not in why and "LRP" in why and "state_dict" in why
    at.selectbox(key="img_method").set_value("grad_cam").run()
    click_explain(at)
    assert_clean(at)
    assert "Overlay: Grad-CAM" in captions(at)
    assert len(predictions_frame(at)) == 5


def test_state_dict_upload_asks_for_its_architecture(digits_module, tmp_path):
    import torch

    path = tmp_path / "weights.pth"
    torch.save(digits_module.state_dict(), str(path))
    at = image_page()
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key="img_model_file_torch").set_value(("weights.pth", path.read_bytes(), "application/octet-stream")).run()
    assert not at.exception
    assert any("state_dict" in e and "choose its Architecture" in e for e in errors(at)), errors(at)
    assert_page_words(at)
    assert len(at.selectbox(key="img_arch").options) > 10
    at.selectbox(key="img_arch").set_value("digits_cnn")
    at.number_input(key="img_height").set_value(32)
    at.number_input(key="img_width").set_value(32)
    at.checkbox(key="img_grayscale").check().run()
    assert_clean(at)
    assert "Grad-CAM" in at.selectbox(key="img_method").options


def test_pickled_module_runs_confined_without_consent(digits_module, tmp_path):
    import torch

    from xai_core.worker import sandbox

    if not sandbox.detect().confined:
        pytest.skip("no kernel confinement here")
    path = tmp_path / "whole.pt"
    torch.save(digits_module, str(path))
    at = image_page()
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key="img_model_file_torch").set_value(("whole.pt", path.read_bytes(), "application/octet-stream")).run()
    assert not at.exception
    assert "img_trust_pickle" not in [c.key for c in at.checkbox]
    assert any("confined worker" in c.value for c in at.caption)
    at.number_input(key="img_height").set_value(32)
    at.number_input(key="img_width").set_value(32)
    at.checkbox(key="img_grayscale").check().run()
    assert_clean(at)
    assert at.selectbox(key="img_method").value is not None


def test_an_uploaded_model_is_stored_once_not_on_every_rerun(digits_module, tmp_path, monkeypatch):
    """Every widget change reruns the page; the uploaded bytes are hashed and stored
    once per uploaded file, and the stored path is re-used."""
    import torch

    import ui.cache

    calls = []
    real = ui.cache.store_upload
    monkeypatch.setattr(ui.cache, "store_upload", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    path = tmp_path / "digits.pt2"
    torch.export.save(torch.export.export(digits_module, (torch.zeros(1, 1, 32, 32),)), str(path))
    at = image_page()
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key="img_model_file_torch").set_value(("digits.pt2", path.read_bytes(), "application/octet-stream")).run()
    at.number_input(key="img_height").set_value(32).run()
    at.number_input(key="img_width").set_value(32).run()
    at.checkbox(key="img_grayscale").check().run()
    assert_clean(at)
    assert calls == ["digits.pt2"]


def test_pickled_module_needs_explicit_trust(digits_module, tmp_path, unconfined):
    import torch

    path = tmp_path / "whole.pt"
    torch.save(digits_module, str(path))
    at = image_page()
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key="img_model_file_torch").set_value(("whole.pt", path.read_bytes(), "application/octet-stream")).run()
    assert not at.exception
    assert any("pickled" in e and "I trust this file" in e for e in errors(at))
    assert_page_words(at)
    assert "img_method" not in [s.key for s in at.selectbox]
    at.number_input(key="img_height").set_value(32)
    at.number_input(key="img_width").set_value(32)
    at.checkbox(key="img_grayscale").check()
    at.checkbox(key="img_trust_pickle").check().run()
    assert_clean(at)
    assert at.selectbox(key="img_method").value is not None


def hidden_note(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption if "The last result" in c.value)


def test_bad_uploads_show_errors_and_hide_results_of_other_inputs():
    """A result is shown only beside the model and image it was computed from: a
    failed upload hides it (with a line saying why) and choosing the original
    inputs again brings it back."""
    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("saliency").run()
    click_explain(at)
    assert_clean(at)
    assert "Overlay: Saliency (gradients)" in captions(at)
    # a corrupt image
    at.radio(key="img_image_source").set_value("Upload an image").run()
    at.file_uploader(key="img_image_file").set_value(("photo.png", b"this is not a png", "image/png")).run()
    assert not at.exception
    assert any("photo.png" in e and "not a readable image" in e for e in errors(at))
    assert "Overlay: Saliency (gradients)" not in captions(at)
    assert "is hidden because the image changed" in hidden_note(at)
    at.radio(key="img_image_source").set_value("Sample image").run()
    assert "Overlay: Saliency (gradients)" in captions(at)  # nothing was lost
    # a bad labels file
    labels_uploader(at).set_value(("labels.json", b"[1, 2", "application/json")).run()
    assert any("labels.json" in e and "invalid JSON" in e for e in errors(at))
    # a file that is no model at all
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key="img_model_file_torch").set_value(("model.pt", b"garbage" * 10, "application/octet-stream")).run()
    assert not at.exception
    assert any("model.pt" in e and "not a PyTorch model file" in e for e in errors(at))
    assert "Overlay: Saliency (gradients)" not in captions(at)
    assert "is hidden because the model changed" in hidden_note(at)


def test_a_result_is_hidden_after_the_image_changes():
    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("saliency").run()
    click_explain(at)
    assert "Overlay: Saliency (gradients)" in captions(at)
    other = [s.name for s in list_samples() if s.name != at.selectbox(key="img_sample").value][0]
    at.selectbox(key="img_sample").set_value(other).run()
    assert_clean(at)
    assert not [c for c in captions(at) if c.startswith(("Overlay", "Heatmap"))]
    assert "hidden because the image changed" in hidden_note(at)


def test_wrong_preprocessing_is_an_error_with_a_fix():
    at = image_page()
    at.selectbox(key="img_norm").set_value("Custom").run()
    at.text_input(key="img_mean").input("0.5, 0.5").run()  # two values for an RGB model
    assert not at.exception
    assert any("mean has 2 values" in e for e in errors(at))
    at.text_input(key="img_mean").input("half").run()
    assert any("comma-separated numbers" in e for e in errors(at))
    assert not [b for b in at.button if b.label == "Explain" and not b.disabled]


def test_preprocessing_the_model_rejects_is_an_error_and_reset_restores_the_defaults():
    at = image_page()
    use_digits_model(at)
    at.checkbox(key="img_grayscale").uncheck().run()  # three channels into a one-channel CNN
    assert not at.exception
    assert any("Could not load the model" in e and "Preprocessing" in e for e in errors(at)), errors(at)
    assert "img_method" not in [s.key for s in at.selectbox]
    at.button(key="img_reset_preprocessing").click().run()
    assert_clean(at)
    assert at.checkbox(key="img_grayscale").value is True
    assert at.selectbox(key="img_method").value is not None


@pytest.mark.parametrize("failure, shown", [
    ("unsupported", "does not provide. Change its settings"),
    ("crash", "failed (MemoryError: out of memory). Try smaller settings"),
])
def test_a_method_that_cannot_run_is_an_error_not_a_traceback(monkeypatch, failure, shown):
    from ui import cache
    from xai_core import service
    from xai_core.types import UnsupportedError

    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("saliency").run()
    click_explain(at)
    assert_clean(at)

    def broken(*args, **kwargs):
        if failure == "unsupported":
            raise UnsupportedError("grad_cam needs layer hooks, which this model does not provide")
        raise MemoryError("out of memory")

    monkeypatch.setattr(service, "explain", broken)
    cache._explain.clear()
    at.selectbox(key="img_target").set_value(3)  # a class picked by index through the searchable list
    at.selectbox(key="img_method").set_value("grad_cam").run()
    click_explain(at)
    assert not at.exception
    msgs = errors(at)
    assert len(msgs) == 1 and shown in msgs[0] and "Traceback" not in msgs[0], msgs
    assert "Overlay: Saliency (gradients)" in captions(at)  # the earlier result is still there
    assert "The previous result of this model and image is still shown below." in [i.value for i in at.info]


def test_reproduce_record_holds_the_command(photo):
    from ui.reproduce import reproduce_record
    from xai_core.loading.models import open_model
    from xai_core.service import explain

    adapter = open_model("digits_cnn")
    e = explain(adapter, photo, "lime", {"samples": 40}, seed=3)
    record = reproduce_record(
        model="digits_cnn", model_source="zoo", image="sample_images/chelsea.png", image_sha256="abc",
        image_size=photo.shape[:2], explanation=e, spec=adapter.spec, framework="torch",
    )
    argv = shlex.split(record["command"])
    assert argv == record["argv"]
    assert argv[:4] == ["python", "-m", "xai_core", "explain"]
    pairs = {argv[i]: argv[i + 1] for i in range(4, len(argv) - 1) if argv[i].startswith("--")}
    assert pairs["--model"] == "digits_cnn" and pairs["--method"] == "lime"
    assert pairs["--seed"] == "3" and pairs["--target"] == str(e.target)
    assert pairs["--input-size"] == "32,32" and pairs["--mean"] == "0.5" and pairs["--std"] == "0.5"
    assert "--grayscale" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--param"] == [
        f"{k}={v}" for k, v in e.params.items()]
    assert json.loads(json.dumps(record))["predictions"][0]["index"] == e.predictions[0].index


def test_core_never_imports_streamlit_and_the_app_imports_no_torch():
    code = (
        "import sys\n"
        "import xai_core.service, xai_core.render, xai_core.loading.models, xai_core.explainers\n"
        "assert 'streamlit' not in sys.modules, 'xai_core imported streamlit'\n"
        "from streamlit.testing.v1 import AppTest\n"
        # the page's own thread must stay light; the warm-up thread (ui/warmup.py) imports
        # torch in the background on purpose, so it is kept from starting here
        "import ui.warmup\n"
        "ui.warmup._started.set()\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=60).run()\n"
        "assert not at.exception, at.exception\n"
        "assert 'torch' not in sys.modules, 'the landing page imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]


def test_progress_comes_from_the_real_batches(photo):
    from ui import cache
    from xai_core.loading.models import open_model

    adapter = open_model("digits_cnn")
    cache._explain.clear()
    seen = []
    params = {"window": 8, "stride": 4}
    e = cache.explain_cached("digits-test", adapter, "chelsea-test", photo, "occlusion", params,
                             target=None, layer=None, seed=0, progress=lambda f, t: seen.append((f, t)))
    patches = e.extras["patches"]
    batches = -(-patches // adapter.default_batch_size)
    assert len(seen) == batches >= 2
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1] == (1.0, f"{patches}/{patches} patches")
    seen.clear()
    again = cache.explain_cached("digits-test", adapter, "chelsea-test", photo, "occlusion", params,
                                 target=None, layer=None, seed=0, progress=lambda f, t: seen.append((f, t)))
    assert seen == [] and np.array_equal(again.attribution, e.attribution)  # a cache hit runs nothing


def test_layer_conductance_shows_unit_bars_for_dense_and_a_map_for_conv_layers():
    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("layer_conductance").run()
    at.number_input(key="img_param_layer_conductance_steps").set_value(4)
    layer = at.selectbox(key="img_layer_layer_conductance")
    assert any(o.endswith("(9 · classifier · Linear · 10)") for o in layer.options)  # dense layers offered, index in the raw label
    layer.set_value("classifier")
    click_explain(at)
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2  # the unit bars and the predictions
    assert any(m.value.startswith("**Units of layer classifier** (10)") for m in at.markdown)
    assert "Layer attribution .npy" in [b.label for b in at.get("download_button")]
    at.selectbox(key="img_layer_layer_conductance").set_value("features.6")
    click_explain(at)
    assert_clean(at)
    assert any(c.startswith("layer features.6: 64 channels of 8x8") for c in captions(at))

def labels_uploader(at: AppTest):
    (found,) = [u for u in at.file_uploader if u.label.startswith("Labels file")]
    return found


def test_a_labels_file_belongs_to_its_model():
    at = image_page()
    use_digits_model(at)
    labels_uploader(at).set_value(("digits.txt", "\n".join(f"digit {i}" for i in range(10)).encode(), "text/plain")).run()
    assert_clean(at)
    assert at.selectbox(key="img_target").format_func(3) == "3: digit 3"
    at.selectbox(key="img_zoo_model").set_value("efficientnet_lite0").run()
    assert_clean(at)  # ten names for 1000 classes would be an error: the file is not carried over
    assert not [u for u in at.file_uploader if u.label.startswith("Labels file") and u.value]
    at.selectbox(key="img_zoo_model").set_value("digits_cnn").run()
    assert not [u for u in at.file_uploader if u.label.startswith("Labels file") and u.value]


def test_an_unconverged_integrated_gradients_result_gets_a_visible_note():
    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("integrated_gradients").run()
    at.number_input(key="img_param_integrated_gradients_steps").set_value(2)
    at.selectbox(key="img_param_integrated_gradients_method").set_value("riemann_trapezoid").run()
    click_explain(at)
    assert_clean(at)
    assert any("Integrated Gradients has not converged" in w.value for w in at.warning), [w.value for w in at.warning]


def test_each_uploader_states_the_limit_and_types_the_service_accepts():
    from xai_core.inputs.images import MAX_FILE_BYTES, SUPPORTED_SUFFIXES, load_image
    from xai_core.loading.torch import MAX_MODEL_BYTES

    at = image_page()
    at.radio(key="img_image_source").set_value("Upload an image").run()
    labels = labels_uploader(at).proto
    at.radio(key="img_source").set_value("Upload a model file").run()
    by_label = {u.label: u.proto for u in at.file_uploader}
    image, model = by_label["Image file"], by_label["Model file"]
    assert image.max_upload_size_mb == MAX_FILE_BYTES // 2**20 == 50
    assert model.max_upload_size_mb == MAX_MODEL_BYTES // 2**20
    assert labels.max_upload_size_mb == 4
    assert {f".{t.lstrip('.')}" for t in image.type} >= set(SUPPORTED_SUFFIXES) >= {".tif", ".tiff", ".gif"}
    gif = io.BytesIO()
    Image.new("P", (8, 6)).save(gif, format="GIF")
    assert load_image(gif.getvalue(), "x.gif").shape == (6, 8, 3)  # what the uploader offers, the service reads


def test_the_reproduce_command_runs_from_any_folder_and_records_the_files_hash(tmp_path):
    """The page's "Reproduce .json" for a sample image, run from an unrelated folder
    with no PYTHONPATH (the project is installed into .venv), gives the same map."""
    import hashlib

    from ui.results import _record_json
    from ui.runner import RESULTS_KEY

    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("integrated_gradients").run()
    set_params(at, "integrated_gradients")
    click_explain(at)
    assert_clean(at)
    results = at.session_state[RESULTS_KEY]
    (item,) = results.items
    record = json.loads(_record_json(results, item))
    image_file = Path(record["image"]["file"])
    assert image_file.is_absolute() and image_file.is_file()
    assert record["image"]["sha256"] == hashlib.sha256(image_file.read_bytes()).hexdigest()
    assert "run_in" not in record  # nothing uploaded: the command needs no particular folder
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    argv = [sys.executable if a == "python" else a for a in shlex.split(record["command"])]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (npy,) = (tmp_path / "xai_out").glob("*__integrated_gradients.npy")
    assert np.array_equal(np.load(npy), item.explanation.attribution.astype(np.float32))


def test_integrated_gradients_at_a_layer_from_the_picker_matches_the_core():
    """The VGG19 row's form on the digits CNN: IG takes an optional layer (none by
    default), then the layer's output or input; a dense layer's units are bars (no
    input map), a conv layer's map is drawn upsampled; numbers are the core's."""
    from xai_core import explain
    from xai_core.loading.models import open_model

    at = image_page()
    use_digits_model(at)
    at.selectbox(key="img_method").set_value("integrated_gradients").run()
    at.number_input(key="img_param_integrated_gradients_steps").set_value(8)
    layer = at.selectbox(key="img_layer_integrated_gradients")
    assert layer.value == "" and layer.options[0] == "none: attribute to the model input"
    assert any(o.endswith("(9 · classifier · Linear · 10)") for o in layer.options)  # words, raw beside
    assert "img_param_integrated_gradients_at" not in [r.key for r in at.radio]  # no layer: no "at"
    layer.set_value("classifier").run()
    at.radio(key="img_param_integrated_gradients_at").set_value("input")
    click_explain(at)
    assert_clean(at)
    assert not any(c.startswith("Overlay: Integrated Gradients") for c in captions(at))  # no map for a dense layer
    downloads = [b.label for b in at.get("download_button")]
    assert "Layer attribution .npy" in downloads and "Attribution .npy" not in downloads
    (bars,) = [m.value for m in at.markdown if m.value.startswith("**Units of the input of layer classifier**")]
    result = at.session_state["img_results"].items[0].explanation
    assert result.layer == "classifier" and result.extras["layer_where"] == "input" and bars.endswith(
        f"({result.layer_attribution.size}): integrated gradients per unit")
    picture = at.session_state["img_results"].image.array
    core = explain(open_model("digits_cnn"), picture, "integrated_gradients", {"steps": 8, "at": "input"},
                   layer="9")  # by index, as the command line takes it
    np.testing.assert_allclose(result.layer_attribution, core.layer_attribution, rtol=1e-4, atol=1e-6)
    from ui.results import _record_json

    argv = json.loads(_record_json(at.session_state["img_results"], at.session_state["img_results"].items[0]))["argv"]
    assert argv[argv.index("--layer") + 1] == "classifier" and "at=input" in argv
    at.selectbox(key="img_target").set_value("top3")  # several classes: bars per class, no empty grid
    click_explain(at)
    assert_clean(at)
    per_class = [m.value for m in at.markdown if m.value.startswith("**Units of the input of layer classifier for")]
    assert len(per_class) == 3 and "Layer attribution .npy" in [b.label for b in at.get("download_button")]
    at.selectbox(key="img_target").set_value(-1)
    at.selectbox(key="img_method").set_value("shap_gradient").run()  # the same picker for expected gradients
    assert at.selectbox(key="img_layer_shap_gradient").options[0] == "none: attribute to the model input"
    at.selectbox(key="img_method").set_value("integrated_gradients").run()
    at.selectbox(key="img_layer_integrated_gradients").set_value("features.6").run()
    at.radio(key="img_param_integrated_gradients_at").set_value("output")
    click_explain(at)
    assert_clean(at)
    assert "Overlay: Integrated Gradients (layer features.6, channels summed, upsampled)" in captions(at)
    assert at.session_state["img_results"].items[0].explanation.layer_attribution.shape == (64, 8, 8)


def test_a_layer_typed_into_the_picker_is_resolved_as_the_command_line_does():
    """The picker takes a typed index or name (AppTest cannot type into a select box,
    so the resolver it calls is checked on the digits CNN)."""
    from ui.layer_form import find_layer
    from xai_core.loading.models import open_model
    from xai_core.types import InputError

    adapter = open_model("digits_cnn")
    every = {info.name: info for info in adapter.layers()}
    assert find_layer(adapter, "-1", every, False).name == "classifier"  # model.layers[-1]
    assert find_layer(adapter, "6", every, False).name == "features.6"
    assert find_layer(adapter, "features.3", every, False).name == "features.3"
    with pytest.raises(InputError, match=r"has no layer with index 99 \(indices 0..9\)"):
        find_layer(adapter, "99", every, False)
    spatial = {name: info for name, info in every.items() if info.spatial}
    with pytest.raises(InputError, match="'classifier' has no feature map output for this method"):
        find_layer(adapter, "9", spatial, True)  # a CAM needs a feature map
