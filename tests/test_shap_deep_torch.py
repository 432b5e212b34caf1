"""shap_deep on a PyTorch module: the values shap's DeepExplainer gives a notebook
user who calls it on the raw model with normalised tensors (DeepLIFT's
multiplier x difference is the same in both input spaces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xai_core import explain, load_image, open_model
from xai_core.inputs.images import preprocess
from xai_core.types import Capability

ROOT = Path(__file__).resolve().parents[1]


def test_shap_deep_on_torch_matches_shap_called_directly():
    import shap

    adapter = open_model("digits_cnn", device="cpu")
    assert adapter.supports(Capability.DEEP_EXPLAINER)
    image = load_image(ROOT / "sample_images" / "digit_9.png")
    result = explain(adapter, image, "shap_deep", {"background": "black", "background_size": 2}, target=9)
    x = preprocess(image, adapter.spec)
    mean, std = adapter.spec.mean_array(), adapter.spec.std_array()
    to_tensor = lambda a: torch.from_numpy(((a - mean) / std).astype(np.float32)).permute(0, 3, 1, 2)  # noqa: E731
    explainer = shap.DeepExplainer(adapter.model, to_tensor(np.zeros((2, *x.shape), np.float32)))
    values = explainer.shap_values(to_tensor(x[None]), check_additivity=True)
    reference = np.asarray(values)[..., 9] if np.asarray(values).ndim == 5 else np.asarray(values[9])
    np.testing.assert_allclose(result.raw, reference[0].transpose(1, 2, 0), atol=1e-5)
    assert abs(result.raw.sum() + result.extras["expected_value"] - float(adapter.outputs(x[None])[0, 9])) < 1e-3
