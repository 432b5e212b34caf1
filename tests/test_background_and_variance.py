"""shap_gradient's background: any size up to 1000 blurs stays quick (each distinct
reference computed once), an oversized noise background is a clear error, and the
variance of the estimate is written beside the attribution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xai_core.cli.main import main
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


def test_user_background_folder_gives_the_known_answer_on_a_linear_model(tmp_path):
    """Expected gradients of f(x) = w . x against one reference B are exactly
    w (x - B), whatever the samples: the user's background is what is used."""
    import torch
    from PIL import Image

    from xai_core import explain
    from xai_core.adapters.torch import TorchAdapter
    from xai_core.inputs.images import preprocess
    from xai_core.types import ImageSpec

    spec = ImageSpec(size=(8, 8), mean=(0.0,), std=(1.0,), grayscale=True)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    adapter = TorchAdapter(net, spec, name="linear", device="cpu")
    rng = np.random.default_rng(0)
    picture = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    reference = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    folder = tmp_path / "bg"
    folder.mkdir()
    Image.fromarray(reference).save(folder / "ref.png")
    result = explain(adapter, picture, "shap_gradient", {"samples": 8, "background_file": str(folder)}, target=1)
    w = net[1].weight[1].detach().numpy().reshape(8, 8)
    expected = w * (preprocess(picture, spec) - preprocess(reference, spec))[..., 0]
    np.testing.assert_allclose(result.attribution, expected, atol=1e-5)
    assert result.extras["background_size"] == 1


def test_user_background_rows_match_shap_kernel_explainer(tmp_path):
    import pandas as pd
    import shap
    from tabular_helpers import known_feature_torch_module, synthetic_csv

    from xai_core.adapters.torch import TorchAdapter
    from xai_core.tabular import explain_row, load_table
    from xai_core.types import VectorSpec

    table = load_table(synthetic_csv(), label_column="y", name="synthetic.csv")
    model = TorchAdapter(known_feature_torch_module(), VectorSpec(), name="known", device="cpu")
    background = table.x[10:30]
    path = tmp_path / "bg.csv"  # the feature columns by name, plus one the table does not have
    pd.DataFrame(background, columns=table.feature_names).assign(extra=1).to_csv(path, index=False)
    params = {"background_file": str(path), "background": "sample", "background_size": 20, "nsamples": 200}
    ours = explain_row(model, table, 0, "kernel_shap", params, target=1, seed=4)
    np.random.seed(4)
    reference = shap.KernelExplainer(lambda x: model.target_scores(x.astype(np.float32), 1),
                                     background.astype(np.float64))
    values = reference.shap_values(table.x[0].astype(np.float64)[None], nsamples=200, l1_reg=False, silent=True)
    np.testing.assert_allclose(list(ours.by_feature().values()), np.ravel(values), atol=1e-6)


def test_page_background_upload_reaches_a_worker_run_model(tmp_path, monkeypatch, digits_files):
    """The dashboard's background box stores the file where every model worker can
    read it (a confined worker has a private /tmp): an uploaded model explained with an
    uploaded .npy background gives the answer of that background, not the default."""
    from xai_core import explain
    from xai_core.inputs.images import load_image
    from xai_core.inputs.uploads import background_dir, store_upload
    from xai_core.loading.models import open_model
    from xai_core.worker.client import RemoteModel, close_all

    monkeypatch.setenv("XAI_UPLOAD_DIR", str(tmp_path / "uploads"))
    model = open_model(str(digits_files["export"]))
    try:
        assert isinstance(model, RemoteModel)
        image = load_image((ROOT / "sample_images" / "digit_9.png").read_bytes())
        stored = store_upload(npy_of(np.full((3, 32, 32, 1), 0.8, np.float32)), "bg.npy", root=background_dir())
        assert stored.is_relative_to(tmp_path / "uploads-backgrounds")
        params = {"samples": 16, "background_size": 3}
        mine = explain(model, image, "shap_gradient", {**params, "background_file": str(stored)}, seed=0)
        default = explain(model, image, "shap_gradient", params, seed=0)
        assert mine.extras["background_size"] == 3
        assert not np.allclose(mine.attribution, default.attribution)
    finally:
        close_all()


def npy_of(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_page_offers_an_upload_box_for_the_background():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "views" / "image.py"), default_timeout=120).run()
    at.selectbox(key="img_zoo_model").set_value("digits_cnn").run()
    at.selectbox(key="img_method").set_value("shap_gradient").run()
    assert not at.exception
    assert not [t for t in at.text_input if t.key == "img_param_shap_gradient_background_file"]
    box = at.get("file_uploader")
    assert any(getattr(b.proto, "label", "").startswith("Background file (.zip, .npy)") for b in box)
