"""Helpers shared by the tabular tests: a synthetic table and models whose output
depends on one known feature only, in every model format."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLE_CSV = ROOT / "sample_data" / "breast_cancer.csv"
N_FEATURES = 6
KNOWN = 2  # the only feature the known-answer models look at
FEATURES = [f"f{i}" for i in range(N_FEATURES)]

# tiny budgets: the suite must stay fast on 2 shared cores
FAST = {
    "lime": {"samples": 400},
    "kernel_shap": {"nsamples": 150, "background_size": 16},
    "integrated_gradients": {"steps": 32},
}


def synthetic_csv(n: int = 120, seed: int = 0) -> bytes:
    """A CSV of N_FEATURES features on different scales plus a label column 'y'."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    scales = np.array([1.0, 10.0, 2.0, 0.5, 100.0, 3.0])
    x = rng.normal(size=(n, N_FEATURES)) * scales + np.arange(N_FEATURES)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame.insert(3, "y", (x[:, KNOWN] > KNOWN).astype(int))
    return frame.to_csv(index=False).encode()


def known_feature_torch_module(mean: float = float(KNOWN), scale: float = 1.5):
    """softmax([0, scale * (x_k - mean)]): two class probabilities driven by feature KNOWN."""
    import torch
    from torch import nn

    class KnownFeature(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pick = nn.Linear(N_FEATURES, 1)
            with torch.no_grad():
                self.pick.weight.zero_()
                self.pick.weight[0, KNOWN] = scale
                self.pick.bias.fill_(-scale * mean)

        def forward(self, x):
            z = self.pick(x)
            return torch.cat([torch.zeros_like(z), z], dim=1).softmax(dim=1)

    return KnownFeature().eval()


def known_feature_onnx(zipmap: bool, mean: float = float(KNOWN), scale: float = 1.5) -> bytes:
    """A scikit-learn LogisticRegression whose only non-zero weight is on feature
    KNOWN, converted with skl2onnx (zipmap on: a list of {class: probability})."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, N_FEATURES)).astype(np.float32)
    clf = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    clf.coef_ = np.zeros((1, N_FEATURES))
    clf.coef_[0, KNOWN] = scale
    clf.intercept_ = np.array([-scale * mean])
    options = {"zipmap": zipmap}
    return to_onnx(clf, x[:1], options=options, target_opset=17).SerializeToString()


def keras_available() -> bool:
    """Without importing it (TensorFlow must load after triton, see import_keras)."""
    import importlib.util

    return importlib.util.find_spec("keras") is not None and importlib.util.find_spec("tensorflow") is not None


def keras():
    from xai_core.adapters.runtime import import_tensorflow

    import_tensorflow()
    import keras as keras_module

    return keras_module
