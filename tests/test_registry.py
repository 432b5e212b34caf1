"""The framework registry: every framework registered once, and the command line,
the dashboard's upload types, framework inference and error messages read it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from xai_core.loading import registry
from xai_core.loading.models import open_model
from xai_core.types import InputError

ROOT = Path(__file__).resolve().parents[1]
VIT = ROOT / "model_zoo" / "weights" / "digits_vit"
CONVNEXT = ROOT / "model_zoo" / "weights" / "digits_convnext"


def test_every_framework_is_registered_once():
    keys = registry.framework_keys()
    assert keys == ("torch", "keras", "onnx", "huggingface", "timm")
    assert len(set(keys)) == len(keys)
    assert registry.framework_keys(rows=True) == ("torch", "keras", "onnx")


def test_command_line_choices_come_from_the_registry():
    from xai_core.cli.main import build_parser

    parser = build_parser()
    explain = parser._subparsers._group_actions[0].choices["explain"]  # noqa: SLF001 - argparse keeps them here
    framework = next(a for a in explain._actions if a.dest == "framework")  # noqa: SLF001
    assert tuple(framework.choices) == registry.framework_keys()


def test_upload_types_come_from_the_registry():
    from ui.frameworks import available_frameworks, upload_types

    types = upload_types()
    assert {"pt", "keras", "onnx", "safetensors", "zip"} <= set(types)
    assert "zip" not in upload_types(rows=True)  # table models are single files
    assert [f.key for f in available_frameworks()] == list(registry.framework_keys())
    hf = registry.get_framework("huggingface")
    assert hf.upload_types == ["zip"] and "config.json" in hf.formats


def _zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for item in sorted(folder.iterdir()):
            zf.write(item, f"{folder.name}/{item.name}")
    return target


def test_framework_is_inferred_from_content(tmp_path):
    assert registry.infer_framework(VIT) == "huggingface"
    assert registry.infer_framework(CONVNEXT) == "timm"
    assert registry.infer_framework(_zip_folder(VIT, tmp_path / "vit.zip")) == "huggingface"
    assert registry.infer_framework(_zip_folder(CONVNEXT, tmp_path / "cnx.zip")) == "timm"
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"x")
    assert registry.infer_framework(saved) == "keras"
    assert registry.infer_framework(tmp_path / "m.onnx") == "onnx"
    assert registry.infer_framework(tmp_path / "m.keras") == "keras"
    assert registry.infer_framework(tmp_path / "m.pt") == "torch"
    assert registry.infer_framework(tmp_path / "w.safetensors", "timm:resnet18") == "timm"


def test_unknown_folder_and_framework_are_one_clear_line(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    with pytest.raises(InputError, match="not a model folder we know.*Hugging Face.*config.json") as info:
        registry.infer_framework(folder)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="unknown framework 'jax'; use torch, keras, onnx, huggingface, timm"):
        open_model(VIT, framework="jax", engine="inprocess")


def test_adding_a_framework_is_one_entry(tmp_path, monkeypatch):
    """A new framework: a loader function and one registry entry (the adapter here is
    the PyTorch one); open_model, inference and the upload types pick it up."""
    import torch

    from xai_core.adapters.torch import TorchAdapter
    from xai_core.types import ImageSpec

    def open_linear(path, options):
        weights = json.loads(path.read_text())
        layer = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8, 2))
        with torch.no_grad():
            layer[1].weight.copy_(torch.tensor(weights["w"]))
            layer[1].bias.zero_()
        return TorchAdapter(layer, options.overrides.apply(ImageSpec((8, 8), (0.0,), (1.0,), grayscale=True)),
                            ["dark", "light"], name=path.name, device="cpu")

    entry = registry.Framework("linearjson", "Linear JSON", "torch", "xai_core.adapters.torch", open_linear,
                               suffixes=(".linj",), formats="a JSON weight matrix")
    monkeypatch.setattr(registry, "FRAMEWORKS", (*registry.FRAMEWORKS, entry))
    path = tmp_path / "model.linj"
    path.write_text(json.dumps({"w": [[-1.0] * 64, [1.0] * 64]}))
    assert registry.infer_framework(path) == "linearjson"
    assert "linj" in registry.upload_types()
    model = open_model(path, engine="inprocess")
    scores = model.predict(np.ones((1, 8, 8, 1), np.float32))
    assert model.labels == ["dark", "light"] and scores[0].argmax() == 1
