"""Several classes in one run: the same numbers as one run per class, perturbation
methods share their model evaluations, and the command line writes __c<class>
files and the image x class grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xai_core import explain, load_image, open_model
from xai_core.cli.main import main
from xai_core.service import explain_classes
from xai_core.types import InputError

ROOT = Path(__file__).resolve().parents[1]
DIGIT = ROOT / "sample_images" / "digit_9.png"


@pytest.fixture(scope="module")
def digits():
    return open_model("digits_cnn", device="cpu")


def test_top_k_matches_one_run_per_class_and_shares_evaluations(digits):
    image = load_image(DIGIT)
    params = {"window": 8, "stride": 8}
    many = explain_classes(digits, image, "occlusion", params, classes="top3", seed=2)
    probs = digits.predict(_batch(digits, image))[0]
    assert [e.target for e in many] == list(np.argsort(-probs)[:3])
    for e in many:
        one = explain(digits, image, "occlusion", params, target=e.target, seed=2)
        np.testing.assert_allclose(e.attribution, one.attribution, atol=1e-7)
    assert many[1].model_evals == 1 < many[0].model_evals  # the perturbed batches were evaluated once


def _batch(adapter, image):
    from xai_core.inputs.images import preprocess

    return preprocess(image, adapter.spec)[None]


def test_class_choices(digits):
    image = load_image(DIGIT)
    assert [e.target for e in explain_classes(digits, image, "saliency", classes=[3, "7"])] == [3, 7]
    assert len(explain_classes(digits, image, "saliency", classes="all")) == 10
    with pytest.raises(InputError, match="k must be between 1 and 10"):
        explain_classes(digits, image, "saliency", classes="top11")


def test_cli_writes_class_files_and_the_grid(tmp_path):
    out = tmp_path / "out"
    assert main(["explain", "--model", "digits_cnn", "--image", str(DIGIT), "--method", "saliency",
                 "--classes", "top2", "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 2
    for r in records:
        assert Path(r["attribution"]).name == f"digit_9__saliency__c{r['target']}.npy"
        assert np.load(r["attribution"]).shape == (32, 32)
    assert (out / "digit_9__saliency.npy").is_file() and (out / "saliency__grid.png").is_file()
    assert main(["explain", "--model", "digits_cnn", "--image", str(DIGIT), "--method", "saliency",
                 "--classes", "top2", "--target", "3", "--out", str(out)]) == 2
