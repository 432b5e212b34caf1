"""The command line contract of DESIGN.md section 3, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, SAMPLES


def run_cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "xai_core", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_explain_photos_with_the_zoo_model(tmp_path):
    out = tmp_path / "out"
    photos = [SAMPLES / "chelsea_cat.jpg", SAMPLES / "coffee.jpg"]
    result = run_cli("explain", "--model", "efficientnet_lite0", "--image", *map(str, photos),
                     "--method", "grad_cam", "occlusion", "--param", "window=56", "occlusion.stride=56",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 4
    keys = {"image", "method", "target", "target_label", "predictions", "params", "seed", "model_evals",
            "elapsed_s", "overlay", "attribution"}
    for record in records:
        assert keys <= set(record)
        assert len(record["predictions"]) == 5
        assert {"index", "label", "probability"} == set(record["predictions"][0])
        photo = Image.open(record["image"])
        overlay = Image.open(record["overlay"])
        assert overlay.size == photo.size  # at the original resolution
        att = np.load(record["attribution"])
        assert att.shape == (224, 224) and att.dtype == np.float32
    by_image = {r["image"].split("/")[-1]: r["target_label"] for r in records}
    assert by_image == {"chelsea_cat.jpg": "Egyptian cat", "coffee.jpg": "espresso"}
    assert (out / "chelsea_cat__grad_cam.png").exists() and (out / "coffee__occlusion.npy").exists()
    occl = [r for r in records if r["method"] == "occlusion"][0]
    assert occl["params"]["window"] == 56 and occl["params"]["stride"] == 56


@pytest.mark.parametrize("kind", ["torchscript", "export", "state_dict", "pickle"])
def test_explain_each_model_format(kind, digits_files, tmp_path):
    extra = {"state_dict": ["--arch", "digits_cnn"], "pickle": ["--trust-pickle"]}.get(kind, [])
    result = run_cli("explain", "--model", str(digits_files[kind]), *extra, "--image",
                     str(SAMPLES / "digit_4.png"), "--method", "grad_cam", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "results.json").read_text())[0]
    assert record["target_label"] == "4"


def test_target_and_preprocessing_flags(tmp_path, digits_files):
    result = run_cli("explain", "--model", str(digits_files["state_dict"]), "--arch", "digits_cnn",
                     "--input-size", "32", "--mean", "0.5", "--std", "0.5", "--grayscale",
                     "--image", str(SAMPLES / "digit_9.png"), "--method", "integrated_gradients",
                     "--target", "4", "--seed", "5", "--param", "steps=8", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "results.json").read_text())[0]
    assert record["target"] == 4 and record["seed"] == 5 and record["params"]["steps"] == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "--model", "efficientnet_lite0", "--image", "nope.jpg", "--method", "saliency", "--out", "o"],
         "nope.jpg: no such image file"),
        (["explain", "--model", "digits_cnn", "--image", "sample_images/digit_0.png", "--method", "magic", "--out", "o"],
         "unknown method 'magic'"),
        (["explain", "--model", "digits_cnn", "--image", "sample_images/digit_0.png", "--method", "lime",
          "--param", "samples=abc", "--out", "o"], "lime: parameter samples must be int"),
        (["explain", "--model", "digits_cnn", "--image", "sample_images/digit_0.png", "--method", "lime",
          "--param", "samples=3", "--out", "o"], "must be between 10 and 20000"),
        (["explain", "--model", "digits_cnn", "--image", "sample_images/digit_0.png", "--method", "saliency",
          "--param", "steps=3", "--out", "o"], "not a parameter of saliency"),
        (["explain", "--model", "digits_cnn", "--image", "sample_images/digit_0.png", "--method", "saliency",
          "--target", "12", "--out", "o"], "target 12 is out of range"),
        (["explain", "--model", "digits_cnn", "--image", "sample_images/digit_0.png", "--method", "grad_cam",
          "--layer", "fc9", "--out", "o"], "no layer named 'fc9'"),
        (["explain", "--model", "digits_cnn", "--image", "sample_images/digit_0.png", "--method", "grad_cam",
          "saliency", "--layer", "features.3", "--out", "o"], "--layer is not used by saliency"),
        (["explain", "--model", "digits_cnn", "--image", "sample_images/digit_0.png", "--method", "saliency",
          "--mean", "a,b", "--out", "o"], "--mean must be comma-separated numbers"),
        (["explain", "--model", "resnet18", "--image", "sample_images/coffee.jpg", "--method", "saliency",
          "--out", "o"], "put it at"),
        (["explain", "--model", "digits_cnn", "--image"], "expected at least one argument"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_error_line(args, message, tmp_path):
    result = run_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_corrupt_image_and_model_files(tmp_path):
    bad_img = tmp_path / "broken.jpg"
    bad_img.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = run_cli("explain", "--model", "digits_cnn", "--image", str(bad_img), "--method", "saliency",
                     "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "broken.jpg" in result.stderr
    bad_model = tmp_path / "model.pt"
    bad_model.write_bytes(b"garbage" * 100)
    result = run_cli("explain", "--model", str(bad_model), "--image", str(SAMPLES / "digit_0.png"),
                     "--method", "saliency", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "model.pt: not a PyTorch model file" in result.stderr


def test_torchscript_lrp_suggests_a_state_dict(digits_files, tmp_path):
    """Layer methods work on TorchScript (tests/test_torchscript_layers.py); LRP needs the module itself."""
    result = run_cli("explain", "--model", str(digits_files["torchscript"]), "--image",
                     str(SAMPLES / "digit_0.png"), "--method", "lrp", "--out", str(tmp_path))
    assert result.returncode == 2 and "compiled program" in result.stderr and "state_dict" in result.stderr


def test_models_methods_layers():
    models = run_cli("models")
    assert models.returncode == 0 and "efficientnet_lite0" in models.stdout and "resnet50" in models.stdout
    methods = run_cli("methods")
    for name in ("saliency", "smoothgrad", "integrated_gradients", "grad_cam", "occlusion", "lime",
                 "shap_partition", "shap_gradient"):
        assert name in methods.stdout
    assert "noise_level=0.15" in methods.stdout
    layers = run_cli("layers", "--model", "efficientnet_lite0")
    assert layers.returncode == 0
    default = [line for line in layers.stdout.splitlines() if "default" in line]
    assert len(default) == 1 and "1280x7x7" in default[0]


def test_methods_for_a_torchscript_model_offers_grad_cam_and_marks_lrp(digits_files):
    result = run_cli("methods", "--model", str(digits_files["torchscript"]))
    lines = result.stdout.splitlines()
    assert "not available" not in [ln for ln in lines if ln.startswith("grad_cam ")][0]
    assert "not available" in [ln for ln in lines if ln.startswith("lrp ")][0]


@pytest.mark.parametrize("doc", ["README.md", "docs/python.md"])
def test_the_python_snippets_run_from_any_folder(tmp_path, doc):
    """The first Python block of the README and of the docs' "From Python" page, run in an
    unrelated folder without PYTHONPATH: the project is installed into .venv
    (scripts/setup.sh), not found by the cwd."""
    import re

    text = (ROOT / doc).read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "import" in block and "explain(" in block
    code = block.replace('{"steps": 128}', '{"steps": 8}')  # the same calls, a smaller budget
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()  # it prints the target label and the convergence delta
