"""Shared fixtures: real zoo models, real photos, and small synthetic models with
known answers. Everything runs on the CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLES = ROOT / "sample_images"

def torch_image_methods() -> list[str]:
    """Image explainers a PyTorch module can serve (shap_deep is checked on its own)."""
    from xai_core.explainers import REGISTRY
    from xai_core.types import Capability

    torch_caps = {Capability.PREDICT, Capability.INPUT_GRADIENTS, Capability.LAYER_GRADIENTS}
    return [n for n, e in REGISTRY.items() if e.input_kind == "image" and e.requires <= torch_caps]


# small budgets so every method runs fast in the contract suite
FAST_PARAMS = {
    "smoothgrad": {"samples": 6},
    "integrated_gradients": {"steps": 16},
    "occlusion": {"window": 8, "stride": 8},
    "lime": {"samples": 120, "segments": 16},
    "shap_partition": {"max_evals": 120},
    "shap_gradient": {"samples": 8, "background_size": 4},
    "layer_conductance": {"steps": 8},
    # unit (15, 5, 2) of the default layer: active on the digits (unit 0, a corner, is dead)
    "neuron_conductance": {"steps": 8, "neuron": 1002},
    "score_cam": {"channels": 16},
    "ablation_cam": {"channels": 8},
    "rise": {"masks": 100, "grid": 6},
}


@pytest.fixture(scope="session")
def digits_adapter():
    from xai_core.loading.models import open_model

    return open_model("digits_cnn", device="cpu")


@pytest.fixture(scope="session")
def lite0_adapter():
    from xai_core.loading.models import open_model

    return open_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def cat_image() -> np.ndarray:
    from xai_core.inputs.images import load_image

    return load_image(SAMPLES / "chelsea_cat.jpg")


@pytest.fixture(scope="session")
def digit_image() -> np.ndarray:
    from xai_core.inputs.images import load_image

    return load_image(SAMPLES / "digit_7.png")


@pytest.fixture(scope="session")
def digits_module():
    from model_zoo.pretrained import own_model

    return own_model("digits_cnn").eval()


@pytest.fixture(scope="session")
def digits_files(tmp_path_factory, digits_module):
    """The digits CNN saved in every supported PyTorch format, with a sidecar each."""
    import json
    import warnings

    import torch

    out = tmp_path_factory.mktemp("digits_models")
    x = torch.zeros(1, 1, 32, 32)
    files = {
        "torchscript": out / "digits_ts.pt",
        "export": out / "digits.pt2",
        "state_dict": out / "digits_sd.pth",
        "pickle": out / "digits_pickled.pt",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(digits_module, x), files["torchscript"])
    torch.export.save(torch.export.export(digits_module, (x,)), files["export"])
    torch.save(digits_module.state_dict(), files["state_dict"])
    torch.save(digits_module, files["pickle"])
    sidecar = {"size": [32, 32], "mean": [0.5], "std": [0.5], "grayscale": True,
               "labels": [str(i) for i in range(10)]}
    for path in files.values():
        path.with_suffix(".json").write_text(json.dumps(sidecar))
    return files


@pytest.fixture
def unconfined(monkeypatch):
    """As on a machine where neither bubblewrap nor Landlock works: files that carry
    code need the user's explicit trust."""
    from xai_core.worker import sandbox

    monkeypatch.setenv("XAI_SANDBOX", "none")
    sandbox.detect.cache_clear()
    yield
    monkeypatch.delenv("XAI_SANDBOX")
    sandbox.detect.cache_clear()
