"""shap_gradient's background: any size up to 1000 blurs stays quick (each distinct
reference computed once), an oversized noise background is a clear error, and the
variance of the estimate is written beside the attribution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xai_core.cli import main
from xai_core.explainers.shap_gradient import background_references, background_set
from xai_core.types import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_a_thousand_blurred_references_are_a_handful_of_blurs():
    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    refs, index = background_references(image, "blur_black", 1000, np.random.default_rng(0))
    assert index.shape == (1000,) and len(refs) <= 12
    # the first levels are the blurs the small backgrounds always used; the strongest is the image mean
    small = background_set(image, "blur_black", 6, np.random.default_rng(0))
    np.testing.assert_array_equal(refs[index[:6]], small)
    np.testing.assert_allclose(refs[index[-2]], np.broadcast_to(image.mean((0, 1)), image.shape), atol=1e-6)


def test_oversized_noise_background_is_an_input_error():
    image = np.zeros((1024, 1024, 3), np.float32)
    with pytest.raises(InputError, match="lower background_size or use a blur background"):
        background_references(image, "noise", 1000, np.random.default_rng(0))


def test_cli_writes_the_variance(tmp_path):
    out = tmp_path / "out"
    code = main(["explain", "--model", "digits_cnn", "--image", str(ROOT / "sample_images" / "digit_9.png"),
                 "--method", "shap_gradient", "--param", "samples=16", "background_size=1000", "--out", str(out)])
    assert code == 0
    variance = np.load(out / "digit_9__shap_gradient__variance.npy")
    attribution = np.load(out / "digit_9__shap_gradient.npy")
    assert variance.shape == attribution.shape and variance.min() >= 0 and variance.max() > 0
    (record,) = json.loads((out / "results.json").read_text())
    assert record["variance"].endswith("digit_9__shap_gradient__variance.npy")
    assert record["extras"]["background_size"] == 1000
    assert len(record["probabilities"]) == 10 and abs(sum(record["probabilities"]) - 1) < 1e-4
