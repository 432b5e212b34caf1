"""Bad inputs end in exit 2 and one ``error:`` line naming the file or flag and the
fix; outputs never follow planted links; offered CSVs are formula-safe; uploads
and zips stay within their budgets."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import attack_files as attack
import numpy as np
import pytest

from xai_core.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
DIGIT = str(ROOT / "sample_images" / "digit_9.png")
ZOO = ["--model", "digits_cnn", "--image", DIGIT, "--method", "saliency"]


def one_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("flags, needle", [
    (["--seed", "-1"], "--seed must be between 0 and"),
    (["--seed", str(2**70)], "--seed must be between 0 and"),
    (["--std", "nan"], "must be finite"),
    (["--mean", "inf"], "must be finite"),
    (["--batch-size", "100000"], "batch size 100000 is out of range"),
])
def test_bad_flags(flags, needle, tmp_path, capsys):
    one_error(capsys, main(["explain", *ZOO, "--out", str(tmp_path), *flags]), needle)


@pytest.mark.parametrize("sidecar, needle", [
    ({"size": "big"}, "preprocessing must look like"),
    ({"mean": [0.5, "x"]}, "preprocessing must look like"),
    ({"std": [float("nan")]}, "must be finite"),
    ({"grayscale": "yes"}, "preprocessing must look like"),
    ({"labels": "cat"}, '"labels" must be a list'),
])
def test_bad_sidecar_names_the_file(sidecar, needle, tmp_path, capsys, digits_files):
    model = tmp_path / "digits_sd.pth"
    model.write_bytes(digits_files["state_dict"].read_bytes())
    (tmp_path / "digits_sd.json").write_text(json.dumps(sidecar))
    code = main(["explain", "--model", str(model), "--arch", "digits_cnn", "--image", DIGIT,
                 "--method", "saliency", "--out", str(tmp_path / "out")])
    one_error(capsys, code, "digits_sd.json", needle)


def test_nan_outputs_are_refused(tmp_path, capsys):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nan = helper.make_node("Constant", [], ["n"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [float("nan")]))
    path = attack.onnx_model(tmp_path / "nan.onnx", [nan], [], "n")
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(attack.random_image()).save(image)
    code = main(["explain", "--model", str(path), "--image", str(image), "--method", "occlusion",
                 "--out", str(tmp_path / "out")])
    one_error(capsys, code, "NaN or infinite outputs")


def test_outputs_do_not_follow_planted_links(tmp_path, capsys):
    """One policy for every file we write (explain, explain-tabular, explain-set): a
    link planted at an output's name is replaced by the file, its target untouched."""
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    planted = out / "digit_9__saliency.png"
    planted.symlink_to(victim)
    assert main(["explain", *ZOO, "--out", str(out)]) == 0
    assert victim.read_text() == "keep me"
    assert not planted.is_symlink() and planted.read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*.part"))  # no temp file left behind


def test_an_unwritable_output_is_one_error(tmp_path, capsys):
    from xai_core.render.files import write_file
    from xai_core.types import InputError

    with pytest.raises(InputError, match="cannot write"):
        write_file(tmp_path / "missing-folder" / "x.png", b"data")


def test_csv_cells_are_escaped():
    import pandas as pd

    from xai_core.render.files import safe_csv

    frame = pd.DataFrame({"=cmd|' /C calc'!A0": ["=1+1", "+2", "-3", "@SUM(A1)", "plain"], "value": [-1.5, 2, 3, 4, 5]})
    text = safe_csv(frame).decode()
    assert "'=cmd" in text.splitlines()[0]
    cells = [line.split(",")[0] for line in text.splitlines()[1:]]
    assert cells == ["'=1+1", "'+2", "'-3", "'@SUM(A1)", "plain"]
    assert text.splitlines()[1].endswith(",-1.5")  # numbers stay numbers


def _zip(members: dict[str, bytes], **kwargs) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, **kwargs) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_bomb_is_stopped_by_bytes_written(tmp_path):
    from xai_core.loading.keras import unpack_savedmodel_zip
    from xai_core.types import ModelLoadError

    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_zip({"saved_model.pb": b"x", "variables/big": bytes(200 * 2**20)}))
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ModelLoadError, match="bomb.zip: unpacks to more than"):
        unpack_savedmodel_zip(bomb, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_zip_with_unknown_compression_is_one_clear_error(tmp_path):
    from xai_core.loading.keras import unpack_savedmodel_zip
    from xai_core.types import ModelLoadError

    data = bytearray(_zip({"saved_model.pb": b"graph" * 100}))
    # compression method 99 (AES) in both the local and the central header
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.find(sig)
        offset = 8 if sig == b"PK\x03\x04" else 10
        data[at + offset: at + offset + 2] = (99).to_bytes(2, "little")
    path = tmp_path / "odd.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="odd.zip: cannot unpack the archive"):
        unpack_savedmodel_zip(path, tmp_path / "dest")


def test_upload_store_is_bounded_by_size_and_age(tmp_path, monkeypatch):
    from xai_core.inputs import uploads

    monkeypatch.setenv("XAI_UPLOAD_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("XAI_UPLOAD_MAX_MB", "1")
    first = uploads.store_upload(os.urandom(400_000), "a.onnx")
    old = uploads.store_upload(os.urandom(100), "old.onnx")
    past = time.time() - 3 * 86400
    os.utime(old.parent, (past, past))
    second = uploads.store_upload(os.urandom(400_000), "b.onnx")
    assert first.exists() and second.exists() and not old.exists()  # aged out
    third = uploads.store_upload(os.urandom(400_000), "c.onnx")
    assert third.exists() and not first.exists()  # least recently used made room
    with pytest.raises(Exception, match="more than the upload store holds"):
        uploads.store_upload(bytes(2 * 2**20), "huge.onnx")
    link = tmp_path / "store" / "x"
    assert not link.exists()


def test_an_uploaded_description_is_stored_beside_its_model_one_folder_per_pair(tmp_path, monkeypatch):
    from xai_core.inputs import uploads
    from xai_core.loading.models import read_json_sidecar

    monkeypatch.setenv("XAI_UPLOAD_DIR", str(tmp_path / "store"))
    model = os.urandom(1000)
    bare = uploads.store_upload(model, "net.pt2")
    one = uploads.store_upload(model, "net.pt2", b'{"labels": ["a", "b"]}')
    two = uploads.store_upload(model, "net.pt2", b'{"labels": ["c", "d"]}')
    assert len({bare.parent, one.parent, two.parent}) == 3  # a description changes what the model is
    assert read_json_sidecar(bare) == {} and read_json_sidecar(two) == {"labels": ["c", "d"]}
    assert one.read_bytes() == model and read_json_sidecar(one) == {"labels": ["a", "b"]}
    with pytest.raises(Exception, match="a model file cannot be a .json file"):
        uploads.store_upload(b"{}", "net.json", b"{}")


def test_large_photos_are_downscaled_while_reading():
    from PIL import Image

    from xai_core.inputs.images import MAX_SIDE, load_image

    buf = io.BytesIO()
    Image.new("RGB", (9000, 600), (10, 200, 30)).save(buf, "PNG")
    image = load_image(buf.getvalue(), "wide.png")
    assert max(image.shape[:2]) == MAX_SIDE and image[0, 0].tolist() == [10, 200, 30]


def test_tiny_16_bit_image_is_refused_like_8_bit():
    from PIL import Image

    from xai_core.inputs.images import load_image
    from xai_core.types import InputError

    for array in (np.zeros((1, 1), np.uint16), np.zeros((1, 1), np.uint8)):
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, "PNG")
        with pytest.raises(InputError, match="too small"):
            load_image(buf.getvalue(), "dot.png")


def test_truncated_torch_archive_says_so(tmp_path, capsys, digits_files):
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(digits_files["export"].read_bytes()[:5000])
    code = main(["explain", "--model", str(cut), "--image", DIGIT, "--method", "saliency",
                 "--out", str(tmp_path / "out")])
    one_error(capsys, code, "cut.pt2: not a PyTorch model file that can be read: the zip archive is corrupt")


def test_batch_one_torchscript_runs_one_image_a_call(tmp_path):
    import torch

    from xai_core.loading.models import SpecOverrides, open_model

    class One(torch.nn.Module):
        def forward(self, x):
            return torch.softmax(x.reshape(1, 192)[:, :3], 1)  # only a batch of one fits

    path = tmp_path / "one.pt"
    torch.jit.save(torch.jit.script(One()), str(path))
    model = open_model(path, overrides=SpecOverrides(size=(8, 8)), engine="inprocess", trust_pickle=True)
    assert model.max_batch == 1
    assert model.predict(np.full((5, 8, 8, 3), 0.5, np.float32)).shape == (5, 3)


def test_a_sidecar_key_we_do_not_read_is_named(tmp_path, capsys, digits_files):
    """"input_size" instead of "size" used to be ignored silently (the model then met
    224 x 224 inputs); now one line says which key to write."""
    import shutil

    model = tmp_path / "digits.pt2"
    shutil.copy(digits_files["export"], model)
    model.with_suffix(".json").write_text(json.dumps({"input_size": [32, 32], "grayscale": True, "epochs": 3}))
    code = main(["explain", "--model", str(model), "--image", str(ROOT / "sample_images" / "digit_9.png"),
                 "--method", "saliency", "--out", str(tmp_path / "out")])
    one_error(capsys, code, 'digits.json: "input_size" is not a key we read (it would be ignored); write "size"')
