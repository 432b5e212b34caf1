"""Every PyTorch format loads safely and predicts exactly like the original;
every bad model file fails with its own clear message."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from xai_core.inputs.labels import read_labels
from xai_core.loading.models import SpecOverrides, open_model
from xai_core.loading.torch import load_torch_file, sniff_torch_format
from xai_core.types import InputError, ModelLoadError

DIGITS = SpecOverrides(size=(32, 32), mean=(0.5,), std=(0.5,), grayscale=True)


@pytest.mark.parametrize("kind", ["torchscript", "export", "state_dict", "pickle"])
def test_each_format_round_trips(kind, digits_files, digits_module):
    path = digits_files[kind]
    module, loaded_kind = load_torch_file(path, arch="digits_cnn", trust_pickle=True)
    assert loaded_kind == {"torchscript": "torchscript", "export": "export"}.get(kind, "module")
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(module(x).numpy(), digits_module(x).numpy(), rtol=1e-5, atol=1e-5)


def test_sidecar_gives_preprocessing_and_labels(digits_files, digit_image):
    from xai_core.service import predict_image

    adapter = open_model(digits_files["export"])
    assert adapter.spec.size == (32, 32) and adapter.spec.grayscale
    assert predict_image(adapter, digit_image)[0].label == "7"


def test_sniffing_reads_content_not_suffix(digits_files, tmp_path):
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(digits_files["export"].read_bytes())
    assert sniff_torch_format(renamed) == "export"
    assert sniff_torch_format(digits_files["torchscript"]) == "torchscript"
    assert sniff_torch_format(digits_files["state_dict"]) == "torch_save"


def test_pickled_module_needs_trust(digits_files):
    with pytest.raises(ModelLoadError, match="fully pickled.*--trust-code"):
        load_torch_file(digits_files["pickle"])


def test_pickle_payload_never_runs_without_trust(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, path)
    with pytest.raises(ModelLoadError, match="fully pickled"):
        load_torch_file(path)
    assert not marker.exists()


def test_state_dict_needs_an_architecture(digits_files):
    with pytest.raises(ModelLoadError, match="state_dict.*--arch"):
        load_torch_file(digits_files["state_dict"])


def test_state_dict_with_the_wrong_architecture(digits_files):
    with pytest.raises(ModelLoadError, match="do not fit architecture 'resnet18'"):
        load_torch_file(digits_files["state_dict"], arch="resnet18")


def test_unknown_architecture(digits_files):
    with pytest.raises(ModelLoadError, match="unknown architecture 'resnet9000'"):
        load_torch_file(digits_files["state_dict"], arch="resnet9000")


def test_torchvision_state_dict_with_class_count_inferred(tmp_path, cat_image):
    from torchvision.models import mobilenet_v3_small

    from xai_core.service import explain

    model = mobilenet_v3_small(num_classes=3).eval()
    path = tmp_path / "mnv3.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    adapter = open_model(path, arch="mobilenet_v3_small", overrides=SpecOverrides(size=(96, 96)))
    assert adapter.num_classes == 3
    e = explain(adapter, cat_image, "grad_cam")
    assert e.layer and e.attribution.shape == (96, 96)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"this is not a model at all", "not a PyTorch model file"),
        (b"PK\x03\x04 truncated zip", "not a PyTorch model file"),
    ],
)
def test_garbage_files(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message):
        load_torch_file(path)


@pytest.mark.parametrize("kind", ["torchscript", "export", "state_dict"])
def test_truncated_files(tmp_path, digits_files, kind):
    data = digits_files[kind].read_bytes()
    path = tmp_path / digits_files[kind].name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError):
        load_torch_file(path, arch="digits_cnn")


def test_keras_file_given_as_torch_says_so(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ModelLoadError, match="Keras or ONNX"):
        load_torch_file(path)


def test_missing_model_and_unknown_zoo_name():
    with pytest.raises(InputError, match="neither a model file nor a zoo model"):
        open_model("no_such_model_anywhere")


def test_wrong_preprocessing_is_a_clear_error(digits_files):
    with pytest.raises(InputError, match="rejected an input of shape"):
        open_model(digits_files["export"], overrides=SpecOverrides(grayscale=False))


def test_torchvision_weights_offline_names_the_path(tmp_path, monkeypatch):
    import model_zoo.pretrained as pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*_a, **_k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(ModelLoadError) as info:
        pretrained.torchvision_pretrained("resnet18")
    text = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in text
    assert "download.pytorch.org" in text


def test_torchvision_weights_from_the_local_cache(tmp_path, monkeypatch):
    """With the file in the hub cache, the real loading path runs offline."""
    from torchvision.models import ResNet18_Weights, resnet18

    import model_zoo.pretrained as pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = tmp_path / "hub" / "checkpoints" / ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[1]
    target.parent.mkdir(parents=True)
    reference = resnet18(num_classes=1000).eval()
    torch.save(reference.state_dict(), target)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("no download expected"))
    model = pretrained.torchvision_pretrained("resnet18").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), reference(x).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cat\ndog\n", ["cat", "dog"]),
        ('["cat", "dog"]', ["cat", "dog"]),
        ('{"1": "dog", "0": "cat"}', ["cat", "dog"]),
        ('{"0": ["n01", "cat"], "1": ["n02", "dog"]}', ["cat", "dog"]),
    ],
)
def test_label_files(text, expected):
    assert read_labels(text.encode()) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("[1, 2", "invalid JSON"), ('{"a": "cat"}', "class indices"), ('{"0": "a", "2": "b"}', "without gaps")],
)
def test_bad_label_files(text, message):
    with pytest.raises(InputError, match=message):
        read_labels(text.encode())


def test_label_count_must_match(digits_files):
    with pytest.raises(InputError, match="3 labels but the model outputs 10"):
        open_model(digits_files["export"], labels=["a", "b", "c"])


def test_sidecar_json_must_be_valid(tmp_path, digits_files):
    path = tmp_path / "m.pt2"
    path.write_bytes(digits_files["export"].read_bytes())
    path.with_suffix(".json").write_text("{broken")
    with pytest.raises(InputError, match="invalid JSON sidecar"):
        open_model(path)
    path.with_suffix(".json").write_text(json.dumps([1, 2]))
    with pytest.raises(InputError, match="must be a JSON object"):
        open_model(path)
