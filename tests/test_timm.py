"""timm models: a timm folder or a timm name plus a weights file give the same
probabilities as timm itself (create_model + its own transforms); classes come
from the weights; wrong names and hostile arguments are one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from xai_core.inputs.images import load_image, preprocess
from xai_core.loading.models import open_model
from xai_core.types import XaiError

ROOT = Path(__file__).resolve().parents[1]
CONVNEXT = ROOT / "model_zoo" / "weights" / "digits_convnext"
DIGIT = ROOT / "sample_images" / "digit_3.png"
CAT = ROOT / "sample_images" / "chelsea_cat.jpg"


def square_photo(tmp_path: Path) -> Path:
    """The cat cropped square (a second photo shape besides the cat itself)."""
    from PIL import Image

    image = Image.open(CAT).convert("RGB")
    side = min(image.size)
    path = tmp_path / "cat_square.png"
    image.crop((0, 0, side, side)).save(path)
    return path


def timm_probabilities(model, photo: Path) -> np.ndarray:
    """timm's own eval transforms for ``model`` (resize to input / crop_pct, its
    interpolation, centre crop), which the service reproduces."""
    import timm
    import torch
    from PIL import Image

    config = timm.data.resolve_model_data_config(model)
    transform = timm.data.create_transform(**config)
    with torch.no_grad():
        return torch.softmax(model(transform(Image.open(photo).convert("RGB"))[None]), -1).numpy()[0]


def test_timm_folder_predicts_what_timm_predicts(tmp_path):
    import timm

    reference = timm.create_model(f"local-dir:{CONVNEXT}", pretrained=True).eval()
    model = open_model(CONVNEXT, engine="inprocess")
    assert model.spec.size == (32, 32) and model.num_classes == 10
    assert model.labels == [str(i) for i in range(10)]
    for photo in (DIGIT, square_photo(tmp_path), CAT):
        ours = model.predict(preprocess(load_image(photo), model.spec)[None])[0]
        np.testing.assert_allclose(ours, timm_probabilities(reference, photo), atol=1e-4)
    assert model.labels[int(np.argmax(model.predict(preprocess(load_image(DIGIT), model.spec)[None])[0]))] == "3"


@pytest.fixture(scope="module")
def test_vit_weights(tmp_path_factory):
    """timm's tiny ``test_vit`` with 3 random classes, saved as .safetensors and as a state_dict."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=3).eval()
    folder = tmp_path_factory.mktemp("timm")
    save_file(model.state_dict(), folder / "weights.safetensors")
    torch.save(model.state_dict(), folder / "weights.pth")
    return model, folder


@pytest.mark.parametrize("filename", ["weights.safetensors", "weights.pth"])
def test_name_plus_weights_file(test_vit_weights, tmp_path, filename):
    reference, folder = test_vit_weights
    model = open_model(folder / filename, arch="timm:test_vit", engine="inprocess")
    assert model.num_classes == 3  # read from the classifier's weight
    size = reference.pretrained_cfg["input_size"][1:]
    assert model.spec.size == tuple(size)
    ours = model.predict(preprocess(load_image(CAT), model.spec)[None])[0]
    # test_vit's data config crops 95% and resizes bicubic, as the service does
    assert "crop_pct 0.95" in model.preprocessing_note and "bicubic" in model.preprocessing_note
    assert model.spec.resize == 168 and model.spec.interpolation == "bicubic"
    np.testing.assert_allclose(ours, timm_probabilities(reference, CAT), atol=1e-5)


def test_sidecar_names_the_timm_model_and_the_worker_opens_it(test_vit_weights, tmp_path):
    _, folder = test_vit_weights
    path = tmp_path / "mine.safetensors"
    shutil.copy(folder / "weights.safetensors", path)
    path.with_suffix(".json").write_text(json.dumps({"arch": "timm:test_vit", "labels": ["x", "y", "z"]}))
    model = open_model(path)  # the confined worker, framework inferred from the sidecar's arch
    assert model.engine == "worker" and model.labels == ["x", "y", "z"]
    assert model.predict(np.full((1, *model.spec.size, 3), 0.5, np.float32)).shape == (1, 3)


def test_wrong_names_and_hostile_arguments_are_one_line(test_vit_weights, tmp_path):
    _, folder = test_vit_weights
    cases = [
        (dict(ref=folder / "weights.safetensors", arch="timm:no_such_net"), "not a timm model name"),
        (dict(ref=folder / "weights.safetensors", arch="timm:resnet50"), "check the timm model name"),
        (dict(ref=folder / "weights.safetensors"), "--arch timm:NAME"),
        (dict(ref=folder / "weights.safetensors", framework="timm"), "--arch timm:NAME"),
    ]
    hostile = tmp_path / "hostile"
    shutil.copytree(CONVNEXT, hostile)
    config = json.loads((hostile / "config.json").read_text())
    config["model_args"] = {"depths": [1, 1, 10**6, 1], "dims": [24, 48, 96, 128], "patch_size": 2}
    (hostile / "config.json").write_text(json.dumps(config))
    cases.append((dict(ref=hostile, framework="timm"), "refused"))
    sneaky = tmp_path / "sneaky"
    shutil.copytree(CONVNEXT, sneaky)
    config["model_args"] = {"checkpoint_path": "/etc/passwd"}
    (sneaky / "config.json").write_text(json.dumps(config))
    cases.append((dict(ref=sneaky), "checkpoint_path"))
    for kwargs, expected in cases:
        ref = kwargs.pop("ref")
        with pytest.raises(XaiError) as info:
            open_model(ref, engine="inprocess", **kwargs)
        assert expected in str(info.value) and "\n" not in str(info.value)


def test_dashboard_takes_weights_and_a_timm_name(test_vit_weights):
    """Framework timm, a weights upload, the name from the searchable list: the model
    loads (in the worker) and the preprocessing box shows timm's data config."""
    from test_dashboard import assert_clean, image_page

    _, folder = test_vit_weights
    at = image_page()
    at.selectbox(key="img_framework").set_value("timm").run()
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key="img_model_file_timm").set_value(
        ("weights.safetensors", (folder / "weights.safetensors").read_bytes(), "application/octet-stream")).run()
    assert "test_vit" in at.selectbox(key="img_timm_name").options
    at.selectbox(key="img_timm_name").set_value("test_vit").run()
    assert_clean(at)
    assert at.number_input(key="img_height").value == 160  # timm's data config for test_vit
    # its resize (160 / crop_pct 0.95, shortest edge) and filter, editable
    assert at.text_input(key="img_resize").value == "168"
    assert at.selectbox(key="img_interpolation").value == "bicubic"
