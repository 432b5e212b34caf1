"""Hugging Face image classifiers from a folder or a zip of one: same probabilities
as transformers itself, hostile folders refused with one line before anything is
built or run, Hub names from a local cache offline, and the command line on the
shipped ViT zipped as a user uploads it (through the confined worker)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from xai_core.inputs.images import load_image
from xai_core.loading.models import open_model
from xai_core.types import ModelLoadError, XaiError

ROOT = Path(__file__).resolve().parents[1]
VIT = ROOT / "model_zoo" / "weights" / "digits_vit"
PHOTOS = [ROOT / "sample_images" / "digit_3.png", ROOT / "sample_images" / "chelsea_cat.jpg"]


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in sorted(folder.iterdir()):
            zf.write(item, f"{folder.name}/{item.name}")
    return target


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A random two-block ViT saved with save_pretrained (config + safetensors + processor)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf") / "tiny_vit"
    config = ViTConfig(image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32, num_labels=3, id2label={0: "a", 1: "b", 2: "c"},
                       label2id={"a": 0, "b": 1, "c": 2})
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(folder)
    return folder


def hostile_copy(tiny_folder: Path, tmp_path: Path, **config_changes) -> Path:
    folder = tmp_path / "hostile"
    shutil.copytree(tiny_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(config_changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def refusal(folder: Path, engine: str = "inprocess") -> str:
    with pytest.raises(XaiError) as info:
        open_model(folder, engine=engine)
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# -- agreement with transformers ---------------------------------------------------------------
def test_folder_predicts_what_transformers_predicts():
    """The shipped ViT folder, opened here, against AutoModelForImageClassification +
    AutoImageProcessor (its PIL backend: the same bilinear resize) on the same photos."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = open_model(VIT, engine="inprocess")
    assert model.labels == [str(i) for i in range(10)]
    assert model.spec.size == (32, 32) and model.spec.mean == (0.5, 0.5, 0.5)
    reference = AutoModelForImageClassification.from_pretrained(VIT, local_files_only=True).eval()
    processor = AutoImageProcessor.from_pretrained(VIT, backend="pil")
    for photo in PHOTOS:
        image = load_image(photo)
        with torch.no_grad():
            pixels = processor(images=image, return_tensors="pt")["pixel_values"]
            expected = torch.softmax(reference(pixel_values=pixels).logits, -1).numpy()[0]
        from xai_core.inputs.images import preprocess

        ours = model.predict(preprocess(image, model.spec)[None])[0]
        np.testing.assert_allclose(ours, expected, atol=1e-4)
    assert int(np.argmax(ours)) == int(np.argmax(expected))


def test_shipped_vit_reads_a_digit():
    from xai_core.inputs.images import preprocess

    model = open_model("digits_vit")
    probs = model.predict(preprocess(load_image(PHOTOS[0]), model.spec)[None])[0]
    assert model.labels[int(np.argmax(probs))] == "3"


# -- hostile folders: one line, nothing built or run ---------------------------------------------
def test_custom_code_is_refused_and_never_imported(tiny_folder, tmp_path):
    marker = tmp_path / "ran"
    folder = hostile_copy(tiny_folder, tmp_path, auto_map={"AutoModelForImageClassification": "evil.EvilModel"})
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    text = refusal(folder)
    assert "custom code" in text and "auto_map" in text
    assert not marker.exists()


@pytest.mark.parametrize("key, value", [("num_hidden_layers", 10**6), ("hidden_size", 10**9),
                                        ("intermediate_size", 10**9), ("image_size", 10**6)])
def test_huge_configs_are_refused_before_anything_is_built(tiny_folder, tmp_path, key, value):
    text = refusal(hostile_copy(tiny_folder, tmp_path, **{key: value}))
    assert key in text and "refused" in text


def test_config_larger_than_its_weights_is_refused(tiny_folder, tmp_path):
    """Within the bounds, but the config describes far more weights than the file holds:
    sized on the meta device, refused before anything is allocated."""
    text = refusal(hostile_copy(tiny_folder, tmp_path, hidden_size=1024, intermediate_size=4096,
                                num_attention_heads=8))
    assert "parameters" in text and "do not belong together" in text


def test_unknown_model_type_is_refused(tiny_folder, tmp_path):
    assert "not an image classifier" in refusal(hostile_copy(tiny_folder, tmp_path, model_type="llama"))


def _rewrite_header(folder: Path, change) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    header, new_n = change(header, n)
    raw = json.dumps(header).encode()
    raw += b" " * max(0, n - len(raw))
    path.write_bytes((new_n or len(raw)).to_bytes(8, "little") + raw + body)


def test_lying_safetensors_headers_are_refused(tiny_folder, tmp_path):
    folder = hostile_copy(tiny_folder, tmp_path)
    _rewrite_header(folder, lambda h, n: (h, 10**9))  # a header longer than the file
    assert "claims 1000000000 bytes" in refusal(folder)

    def past_the_end(header, n):
        name = next(k for k in header if k != "__metadata__")
        begin, end = header[name]["data_offsets"]
        header[name]["data_offsets"] = [begin + 10**9, end + 10**9]
        return header, None

    folder = hostile_copy(tiny_folder, tmp_path / "b")
    _rewrite_header(folder, past_the_end)
    assert "truncated or forged" in refusal(folder)

    def wrong_shape(header, n):
        name = next(k for k in header if k != "__metadata__")
        header[name]["shape"] = [10**6, 10**6]
        return header, None

    folder = hostile_copy(tiny_folder, tmp_path / "c")
    _rewrite_header(folder, wrong_shape)
    assert "needs" in refusal(folder)


def test_pytorch_bin_only_is_refused_with_how_to_convert(tiny_folder, tmp_path):
    folder = hostile_copy(tiny_folder, tmp_path)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    text = refusal(folder)
    assert "pytorch_model.bin" in text and "safe_serialization=True" in text


def test_hostile_zip_is_refused_through_the_worker(tiny_folder, tmp_path):
    folder = hostile_copy(tiny_folder, tmp_path, num_hidden_layers=10**6)
    text = refusal(zip_folder(folder, tmp_path / "upload.zip"), engine="worker")
    assert "num_hidden_layers" in text


# -- sharded weights (save_pretrained over max_shard_size) ----------------------------------------
@pytest.fixture(scope="module")
def sharded_folder(tiny_folder, tmp_path_factory) -> Path:
    """The tiny ViT saved again with a small max_shard_size: an index and several shards."""
    from transformers import ViTForImageClassification

    folder = tmp_path_factory.mktemp("hf") / "sharded_vit"
    ViTForImageClassification.from_pretrained(tiny_folder, local_files_only=True).save_pretrained(
        folder, max_shard_size="20KB")
    shutil.copy(tiny_folder / "preprocessor_config.json", folder)
    assert not (folder / "model.safetensors").exists() and len(list(folder.glob("model-*.safetensors"))) > 1
    return folder


def test_sharded_folder_predicts_what_the_single_file_does_through_the_worker(tiny_folder, sharded_folder, tmp_path):
    x = np.random.default_rng(0).random((3, 16, 16, 3), dtype=np.float32)
    want = open_model(tiny_folder, engine="inprocess").predict(x)
    model = open_model(zip_folder(sharded_folder, tmp_path / "sharded.zip"), engine="worker")
    np.testing.assert_allclose(model.predict(x), want, atol=1e-6)


@pytest.mark.parametrize(("case", "words"), [
    ("path", "not plain .safetensors file names"),
    ("absent shard", "lacks"),
    ("wrong shard", "do not hold them"),
])
def test_lying_shard_indexes_are_refused(sharded_folder, tmp_path, case, words):
    folder = tmp_path / "sharded"
    shutil.copytree(sharded_folder, folder)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    weight_map = index["weight_map"]
    first = next(iter(weight_map))
    if case == "path":
        weight_map[first] = "../outside.safetensors"
    elif case == "absent shard":
        weight_map[first] = "model-00099-of-00099.safetensors"
    else:  # a tensor placed in a shard that does not hold it
        weight_map[first] = next(s for s in sorted(set(weight_map.values())) if s != weight_map[first])
    index_path.write_text(json.dumps(index))
    assert words in refusal(folder)


# -- Hub names -------------------------------------------------------------------------------------
def _hub_cache(root: Path, repo: str, folder: Path) -> None:
    """A Hugging Face hub cache holding ``repo`` at one commit (the layout snapshot_download writes)."""
    commit = "0" * 40
    base = root / f"models--{repo.replace('/', '--')}"
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for item in folder.iterdir():
        if item.name in ("config.json", "model.safetensors", "preprocessor_config.json"):
            shutil.copy(item, snapshot / item.name)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)


def test_hub_names_open_from_the_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    _hub_cache(tmp_path, "xai-test/digits-vit", VIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = open_model("hf-hub:xai-test/digits-vit", engine="inprocess")
    assert model.num_classes == 10 and model.spec.size == (32, 32)
    with pytest.raises(ModelLoadError, match=r"not in the local Hugging Face cache.*hf download xai-test/absent"):
        open_model("hf-hub:xai-test/absent", engine="inprocess")


# -- the command line, as a user uploads a zipped folder ------------------------------------------------
def test_cli_explains_the_zipped_vit_through_the_worker(tmp_path):
    archive = zip_folder(VIT, tmp_path / "digits_vit.zip")
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "xai_core", "explain", "--model", str(archive), "--image", str(PHOTOS[0]),
         "--method", "saliency", "integrated_gradients", "lime", "--param", "integrated_gradients.steps=16",
         "--param", "lime.samples=200", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    records = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in records] == ["saliency", "integrated_gradients", "lime"]
    for record in records:
        assert record["predictions"][0]["label"] == "3"
        attribution = np.load(out / record["attribution"])
        assert attribution.shape == (32, 32) and np.isfinite(attribution).all() and np.abs(attribution).max() > 0


# -- the dashboard: a zipped folder uploaded under "Hugging Face" --------------------------------------
def test_dashboard_explains_an_uploaded_zipped_folder(tmp_path):
    from test_dashboard import assert_clean, click_explain, image_page, predictions_frame

    archive = zip_folder(VIT, tmp_path / "digits_vit.zip")
    at = image_page()
    at.selectbox(key="img_framework").set_value("huggingface").run()
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key="img_model_file_huggingface").set_value(
        ("digits_vit.zip", archive.read_bytes(), "application/zip")).run()
    assert_clean(at)
    assert at.number_input(key="img_height").value == 32  # from preprocessor_config.json
    at.selectbox(key="img_sample").set_value("digit_3.png").run()
    at.selectbox(key="img_method").set_value("saliency").run()
    click_explain(at)
    assert_clean(at)
    frame = predictions_frame(at)
    assert str(frame["Label"].iloc[0]) == "3"
