"""Faithfulness and sanity metrics: known answers on models whose answer we know,
agreement with the field's reference code (Quantus, pytorch-grad-cam's ROAD), and
the adapters' randomised copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# pytorch-grad-cam (through torchvision) loads triton, which crashes when TensorFlow
# (imported by quantus) is already loaded: import it first
from pytorch_grad_cam.metrics.perturbation_confidence import (
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)
from pytorch_grad_cam.metrics.road import NoisyLinearImputer, ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

from tests.test_known_answer import GREEN, RED, ColorNet, region_mask
from tests.test_reference_agreement import Normalised
from xai_core.adapters.torch import TorchAdapter
from xai_core.inputs.images import preprocess
from xai_core.metrics import Modality
from xai_core.metrics.base import MetricInput
from xai_core.metrics.road import impute
from xai_core.metrics.service import evaluate_image, run_metrics
from xai_core.service import explain
from xai_core.types import ImageSpec


@pytest.fixture(scope="module")
def color_adapter():
    return TorchAdapter(ColorNet(), ImageSpec((64, 64), (0.0,), (1.0,)), ["red", "green"], name="colornet")


def _squares():
    rng = np.random.default_rng(0)
    img = np.empty((64, 64, 3), np.float32)
    img[:] = (0.2, 0.2, 0.8)
    img += rng.uniform(-0.03, 0.03, img.shape).astype(np.float32)
    img[RED] = (0.9, 0.1, 0.1)
    img[GREEN] = (0.1, 0.75, 0.1)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def task_for(adapter, x, attribution, target, **kwargs):
    return MetricInput(x=x, attribution=attribution, target=target,
                       predict=lambda b: adapter.predict(b), modality=Modality.IMAGE, **kwargs)


# -- known answers -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_right_map_beats_random_and_wrong_maps(method, color_adapter):
    image = _squares()
    x = preprocess(image, color_adapter.spec)
    params = {"integrated_gradients": {"steps": 16}, "occlusion": {"window": 8, "stride": 4}}[method]
    exp = explain(color_adapter, image, method, params, target=0, seed=0)
    maps = {
        "right": exp.attribution,
        "random": np.random.default_rng(1).random((64, 64)),
        "wrong": region_mask(GREEN).astype(np.float64) + 0.01 * np.random.default_rng(2).random((64, 64)),
    }
    scores = {}
    for kind, attribution in maps.items():
        got = run_metrics(task_for(color_adapter, x, attribution, 0), ["deletion", "insertion"])
        scores[kind] = {name: r.value for name, r in got.items()}
        if kind == "right":
            assert got["deletion"].passed and got["insertion"].passed  # beats its own random-order baseline
    for other in ("random", "wrong"):
        assert scores["right"]["deletion"] < scores[other]["deletion"] - 0.05, scores
        assert scores["right"]["insertion"] > scores[other]["insertion"] + 0.05, scores


def test_road_and_correlation_rank_the_right_map_first(color_adapter):
    x = preprocess(_squares(), color_adapter.spec)
    right = region_mask(RED, pad=0).astype(np.float64) + 0.01 * np.random.default_rng(3).random((64, 64))
    wrong = region_mask(GREEN, pad=0).astype(np.float64) + 0.01 * np.random.default_rng(3).random((64, 64))
    got = {k: run_metrics(task_for(color_adapter, x, m, 0), ["road", "correlation"])
           for k, m in (("right", right), ("wrong", wrong))}
    assert got["right"]["road"].value > 0.05 > got["wrong"]["road"].value
    assert got["right"]["correlation"].value > 0.5 > got["wrong"]["correlation"].value


def sobel_edges(x: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    gray = x.mean(-1)
    return np.hypot(ndimage.sobel(gray, 0), ndimage.sobel(gray, 1))


@pytest.mark.parametrize("name", ["input", "edges"])
def test_model_independent_map_fails_randomization(name, digits_adapter, digit_image):
    x = preprocess(digit_image, digits_adapter.spec)
    fn = {"input": lambda v: v.mean(-1), "edges": sobel_edges}[name]
    task = task_for(digits_adapter, x, fn(x), 7, explain=lambda v, model: (fn(v), 0),
                    randomized=digits_adapter.randomized_copy, layers=len(digits_adapter.weight_layers()))
    result = run_metrics(task, ["randomization"])["randomization"]
    assert result.value > 0.99 and result.passed is False
    assert "survives randomising" in result.warning
    assert result.record()["warning"] == result.warning


def test_gradient_map_passes_randomization(digits_adapter, digit_image):
    exp = explain(digits_adapter, digit_image, "grad_cam", seed=0)
    x = preprocess(digit_image, digits_adapter.spec)
    result = evaluate_image(digits_adapter, x, exp, ["randomization"])["randomization"]
    assert result.warning is None and result.passed
    assert result.value < 0.5
    assert result.details["layers_randomized"][-1] == len(digits_adapter.weight_layers())
    # one gradient pass per randomised model: grad_cam takes its probabilities from that pass
    assert result.model_evals == len(result.details["layers_randomized"])


def test_sensitivity_known_answer(digits_adapter, digit_image):
    """The input as its own map moves by exactly the noise: max ||d|| / ||x||."""
    x = preprocess(digit_image, digits_adapter.spec)
    task = task_for(digits_adapter, x, x.mean(-1), 7, explain=lambda v, model: (v.mean(-1), 0), seed=5)
    result = run_metrics(task, ["sensitivity"], {"sensitivity": {"samples": 3, "radius": 0.05}})["sensitivity"]
    rng = np.random.default_rng(5)
    expected = max(
        np.linalg.norm(np.clip(x + rng.uniform(-0.05, 0.05, x.shape).astype(np.float32), 0, 1).mean(-1) - x.mean(-1))
        for _ in range(3)
    ) / np.linalg.norm(x.mean(-1))
    assert result.value == pytest.approx(expected, rel=1e-5)
    assert 0 < result.value < 0.2


# -- agreement with the references ------------------------------------------------------
@pytest.fixture(scope="module")
def digits_reference(digits_adapter, digit_image):
    x = preprocess(digit_image, digits_adapter.spec)
    wrapped = Normalised(digits_adapter.model, [0.5], [0.5]).eval()
    attribution = explain(digits_adapter, digit_image, "saliency", seed=0).attribution.astype(np.float64)
    return wrapped, x, attribution, int(digits_adapter.predict(x[None])[0].argmax())


def test_deletion_equals_quantus_pixel_flipping(digits_adapter, digits_reference):
    import quantus

    wrapped, x, attribution, target = digits_reference
    steps = 64  # 1024 pixels, 16 per step
    ours = run_metrics(task_for(digits_adapter, x, attribution, target), ["deletion"],
                       {"deletion": {"steps": steps}})["deletion"]
    metric = quantus.PixelFlipping(features_in_step=1024 // steps, perturb_baseline=0.0, normalise=False,
                                   disable_warnings=True, return_auc_per_sample=False)
    theirs = metric(model=wrapped, x_batch=np.transpose(x, (2, 0, 1))[None], y_batch=np.array([target]),
                    a_batch=attribution[None, None].astype(np.float32), device="cpu", softmax=True)[0]
    np.testing.assert_allclose(ours.curve[1][1:], theirs, atol=1e-5)  # Quantus records no point before step 1
    # Quantus' AUC (return_auc_per_sample) calls np.trapz, gone in NumPy 2.4; it is the
    # trapezoid rule with unit spacing over these points, ours over the fraction 0..1.


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_road_equals_pytorch_grad_cam(noise, digits_adapter, digits_reference):
    wrapped, x, attribution, target = digits_reference
    tensor = torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()
    cams = attribution[None].astype(np.float32)
    targets = [ClassifierOutputSoftmaxTarget(target)]
    ours = run_metrics(task_for(digits_adapter, x, attribution, target), ["road"],
                       {"road": {"steps": 9, "noise": noise}})["road"]
    if noise == 0.0:  # deterministic imputation: every point must match
        for i, p in enumerate(range(10, 100, 10)):
            morf = PerturbationConfidenceMetric(RemoveMostRelevantFirst(p, NoisyLinearImputer(noise=0.0)))
            lerf = PerturbationConfidenceMetric(RemoveLeastRelevantFirst(p, NoisyLinearImputer(noise=0.0)))
            assert ours.curve[1][i] == pytest.approx(
                float(morf(tensor, cams, targets, wrapped, return_diff=False)[0]), abs=1e-5)
            assert ours.baseline_curve[1][i] == pytest.approx(
                float(lerf(tensor, cams, targets, wrapped, return_diff=False)[0]), abs=1e-5)
    else:  # the reference's default (noise 0.01, torch's RNG): the same value within the noise
        torch.manual_seed(0)
        theirs = float(ROADCombined(percentiles=list(range(10, 100, 10)))(tensor, cams, targets, wrapped)[0])
        assert ours.value == pytest.approx(theirs, abs=0.02)


def test_imputation_is_the_neighbour_mean():
    """A removed pixel inside a linear ramp gets the ramp's value back."""
    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))[..., None]
    removed = np.zeros((16, 16), bool)
    removed[5:9, 5:9] = True
    out = impute(ramp, removed, 0.0, np.random.default_rng(0))
    np.testing.assert_allclose(out, ramp, atol=1e-5)


# -- the adapters' randomised copies ------------------------------------------------------
def test_torch_randomized_copy_leaves_the_original(digits_adapter, digit_image):
    x = preprocess(digit_image, digits_adapter.spec)[None]
    before = digits_adapter.predict(x)
    layers = digits_adapter.weight_layers()
    top = digits_adapter.randomized_copy(1, seed=0)
    every = digits_adapter.randomized_copy(len(layers), seed=0)
    np.testing.assert_array_equal(digits_adapter.predict(x), before)
    assert not np.allclose(top.predict(x), before, atol=1e-4)
    same = digits_adapter.randomized_copy(1, seed=0)
    np.testing.assert_allclose(same.predict(x), top.predict(x), atol=1e-6)  # seeded
    top_params = dict(top.model.named_parameters())
    for name, p in digits_adapter.model.named_parameters():
        changed = not torch.equal(p, top_params[name])
        assert changed == (name.rpartition(".")[0] == layers[-1]), name
    assert not np.allclose(every.predict(x), top.predict(x))


# -- command line -----------------------------------------------------------------------
def test_cli_writes_metrics_to_results_json(tmp_path, capsys):
    import json

    from tests.conftest import SAMPLES
    from xai_core.cli.main import main

    rc = main(["explain", "--model", "digits_cnn", "--image", str(SAMPLES / "digit_9.png"), "--method", "grad_cam",
               "--metrics", "deletion,insertion", "road", "--metric-param", "deletion.steps=8", "--out", str(tmp_path)])
    assert rc == 0
    record = json.loads((tmp_path / "results.json").read_text())[0]
    assert list(record["metrics"]) == ["deletion", "insertion", "road"]
    deletion = record["metrics"]["deletion"]
    assert deletion["params"]["steps"] == 8 and len(deletion["curve"]["y"]) == 9
    assert deletion["model_evals"] == 18 and deletion["baseline"] is not None
    assert "deletion" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--metrics", "deletoin"], "unknown metric 'deletoin'"),
    (["--metrics", "road", "--metric-param", "road.steps=0"], "road: parameter steps must be between"),
    (["--metrics", "road", "--metric-param", "deletion.steps=4"], "not in --metrics"),
])
def test_cli_bad_metric_flags_exit_2(argv, message, tmp_path, capsys):
    from tests.conftest import SAMPLES
    from xai_core.cli.main import main

    rc = main(["explain", "--model", "digits_cnn", "--image", str(SAMPLES / "digit_9.png"), "--method", "saliency",
               "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_tabular_metrics_on_a_linear_model(tmp_path):
    """A linear model explained exactly (w * (x - mean)): faithfulness correlation is 1 and the
    deletion curve follows the map's order."""
    import pandas as pd

    from xai_core.inputs.tables import load_table
    from xai_core.metrics.service import evaluate_row
    from xai_core.types import Explanation

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(50, 6)), columns=[f"f{i}" for i in range(6)])
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    data = load_table(csv)
    w = np.array([3.0, -2.0, 1.0, 0.5, 0.0, -0.25])

    class Linear:
        def explained_scores(self, x, batch_size=None):
            return (np.asarray(x, np.float64).reshape(-1, 6) @ w)[:, None]

        def weight_layers(self):
            return []

        randomized_copy = None

    row = 3
    attribution = w * (data.x[row] - data.x.mean(0))
    exp = Explanation("integrated_gradients", 0, "score", attribution.astype(np.float32), [], {}, 0, 0, 0.0,
                      output_kind="score", input_kinds=["vector"], feature_names=list(data.feature_names), row=row)
    got = evaluate_row(Linear(), data, exp, ["correlation", "deletion"])
    assert got["correlation"].value == pytest.approx(1.0, abs=1e-6)
    assert got["correlation"].baseline < 0.9
    # deletion of w*(x - mean) in its order: the score falls by the sorted attributions
    expected = data.x[row] @ w - np.concatenate([[0], np.cumsum(np.sort(attribution)[::-1])])
    np.testing.assert_allclose(got["deletion"].curve[1], expected, atol=1e-4)


def test_random_baseline_orders_whole_squares():
    from xai_core.metrics.curves import random_orders

    (order,) = random_orders((32, 32), 1, seed=0, block=8)
    assert sorted(order) == list(range(1024))
    rows, cols = np.divmod(order, 32)
    cells = (rows // 8) * 4 + cols // 8
    for start in range(0, 1024, 64):  # each run of 64 pixels is one 8 x 8 square
        assert len(set(cells[start:start + 64])) == 1
    assert len(set(cells[::64])) == 16


@pytest.fixture(scope="module")
def onnx_digits(tmp_path_factory, digits_adapter):
    import warnings

    from xai_core.loading.models import SpecOverrides, open_model

    path = tmp_path_factory.mktemp("onnx") / "digits.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(digits_adapter.model, (torch.zeros(1, 1, 32, 32),), str(path), input_names=["image"],
                          output_names=["scores"], dynamic_axes={"image": {0: "b"}, "scores": {0: "b"}}, dynamo=False)
    # run in the confined worker, which makes and holds the randomised copies
    return open_model(str(path), overrides=SpecOverrides(size=(32, 32), mean=(0.5,), std=(0.5,), grayscale=True))


@pytest.mark.parametrize("framework", ["keras", "onnx"])
def test_keras_and_onnx_randomized_copies(framework, request, digit_image):
    from xai_core.loading.models import open_model

    adapter = open_model("keras_digits_cnn") if framework == "keras" else request.getfixturevalue("onnx_digits")
    x = preprocess(digit_image, adapter.spec)
    layers = adapter.weight_layers()
    assert len(layers) >= 3, layers
    before = adapter.predict(x[None])
    top = adapter.randomized_copy(1, seed=0)
    assert not np.allclose(top.predict(x[None]), before, atol=1e-4)
    np.testing.assert_array_equal(adapter.predict(x[None]), before)  # the original is untouched
    np.testing.assert_allclose(adapter.randomized_copy(1, seed=0).predict(x[None]), top.predict(x[None]), atol=1e-6)
    # the full check through the service: the input as its own map survives and is flagged
    task = task_for(adapter, x, x.mean(-1), 7, explain=lambda v, model: (v.mean(-1), 0),
                    randomized=adapter.randomized_copy, layers=len(layers))
    assert run_metrics(task, ["randomization"])["randomization"].warning
    method, params = ("grad_cam", {}) if framework == "keras" else ("occlusion", {"window": 8, "stride": 8})
    exp = explain(adapter, digit_image, method, params, seed=0)
    result = evaluate_image(adapter, x, exp, ["randomization"], {"randomization": {"steps": 2}})["randomization"]
    assert np.isfinite(result.value) and result.details["layers_randomized"][-1] == len(layers)


@pytest.mark.parametrize("kind", ["pt2", "keras"])
def test_worker_run_upload_gets_the_randomization_check(kind, digits_files, digit_image, tmp_path):
    """An upload run in the confined worker: its randomised copy is made and held in
    the worker (the weights never cross), and the check gives what it gives in-process."""
    import json

    from xai_core.loading.models import open_model
    from xai_core.types import UnsupportedError
    from xai_core.worker.client import RemoteModel, close_all

    if kind == "pt2":
        path = digits_files["export"]
    else:
        path = tmp_path / "digits.keras"
        open_model("keras_digits_cnn").model.save(path)
        path.with_suffix(".json").write_text(json.dumps({"size": [32, 32], "mean": [0.5], "std": [0.5],
                                                         "grayscale": True}))
    try:
        remote = open_model(str(path))
        local = open_model(str(path), engine="inprocess", trust_pickle=True)
        assert isinstance(remote, RemoteModel) and not isinstance(local, RemoteModel)
        assert remote.weight_layers() == local.weight_layers() and len(local.weight_layers()) >= 3
        x = preprocess(digit_image, remote.spec)
        before = remote.predict(x[None])
        top = remote.randomized_copy(1, seed=0)
        assert isinstance(top, RemoteModel) and top.num_classes == 10
        np.testing.assert_allclose(top.predict(x[None]), local.randomized_copy(1, seed=0).predict(x[None]), atol=1e-5)
        assert not np.allclose(top.predict(x[None]), before, atol=1e-4)
        np.testing.assert_array_equal(remote.predict(x[None]), before)  # the model itself is untouched
        remote.randomized_copy(2, seed=0), remote.randomized_copy(3, seed=0)  # the worker holds the 2 newest
        with pytest.raises(UnsupportedError, match="randomised copy of the model is gone"):
            top.predict(x[None])
        exp = explain(remote, digit_image, "saliency", seed=0)
        got = evaluate_image(remote, x, exp, ["randomization"], {"randomization": {"steps": 2}})["randomization"]
        want = evaluate_image(local, x, explain(local, digit_image, "saliency", seed=0), ["randomization"],
                              {"randomization": {"steps": 2}})["randomization"]
        assert got.details["layers_randomized"] == want.details["layers_randomized"]
        np.testing.assert_allclose(got.curve[1], want.curve[1], atol=1e-4)  # rank correlation per step
    finally:
        close_all()


def test_worker_run_table_model_gets_the_randomization_check(tmp_path):
    """Row metrics drive the model through its adapter primitives: a worker-run
    upload's randomised copy is a handle on a copy held in the worker."""
    import shutil

    from model_zoo.tabular import TABULAR_ZOO
    from xai_core.loading.tables import open_tabular_model
    from xai_core.metrics.service import evaluate_row
    from xai_core.tabular import explain_row, load_table
    from xai_core.worker.client import RemoteModel, close_all

    entry = TABULAR_ZOO["breast_cancer_keras"]
    for source in (entry.path, entry.path.with_suffix(".json")):
        if source.exists():
            shutil.copy(source, tmp_path / source.name)
    try:
        results = []
        for engine in (None, "inprocess"):
            model = open_tabular_model(tmp_path / entry.path.name, engine=engine)
            assert isinstance(model, RemoteModel) == (engine is None)
            data = load_table(entry.csv_path, label_column=entry.label_column, n_features=model.n_features)
            exp = explain_row(model, data, 0, "integrated_gradients", {"steps": 16}, seed=0)
            results.append(evaluate_row(model, data, exp, ["randomization"])["randomization"])
        remote, local = results
        assert remote.details["layers_randomized"] == local.details["layers_randomized"] == [1, 2, 3]
        np.testing.assert_allclose(remote.curve[1], local.curve[1], atol=1e-4)
        np.testing.assert_allclose(remote.baseline_curve[1], local.baseline_curve[1], atol=1e-4)
    finally:
        close_all()


def test_sensitivity_agrees_with_quantus_max_sensitivity(digits_adapter, digits_reference):
    """Same definition (max over uniform noise of ||e(x+d) - e(x)|| / ||e(x)||) with an
    explanation whose answer is known (the input itself); the noise draws differ, so the
    values agree within the spread of the maximum."""
    import quantus

    wrapped, x, _, target = digits_reference
    x = (0.2 + 0.6 * x).astype(np.float32)  # inside [0, 1] by more than the radius: no clipping on our side
    task = task_for(digits_adapter, x, x.mean(-1), target, explain=lambda v, model: (v.mean(-1), 0), seed=0)
    ours = run_metrics(task, ["sensitivity"], {"sensitivity": {"samples": 20, "radius": 0.05}})["sensitivity"]
    metric = quantus.MaxSensitivity(nr_samples=20, lower_bound=0.05, normalise=False, disable_warnings=True)
    theirs = metric(model=wrapped, x_batch=np.transpose(x, (2, 0, 1))[None], y_batch=np.array([target]),
                    a_batch=np.transpose(x, (2, 0, 1))[None].copy(), device="cpu",
                    explain_func=lambda model, inputs, targets, **kw: np.asarray(inputs).mean(axis=1, keepdims=True))[0]
    assert ours.value == pytest.approx(theirs, rel=0.05)  # measured: within 0.2-2.1% on two digits, two radii


def test_rows_randomization_on_the_zoo_mlp():
    """Rows run the same check on the one adapter: Integrated Gradients changes with the
    weights; the row's own deviation from the mean (a model-independent map) does not."""
    from model_zoo.tabular import TABULAR_ZOO
    from xai_core.metrics.base import Modality as M
    from xai_core.metrics.service import evaluate_row
    from xai_core.tabular import explain_row, load_table, open_tabular_model

    model = open_tabular_model("breast_cancer_mlp")
    entry = TABULAR_ZOO["breast_cancer_mlp"]
    data = load_table(entry.csv_path, label_column=entry.label_column, n_features=model.n_features)
    exp = explain_row(model, data, 0, "integrated_gradients", {"steps": 32}, seed=0)
    ig = evaluate_row(model, data, exp, ["randomization"])["randomization"]
    assert ig.passed and ig.value < 0.5 and ig.details["total_layers"] == len(model.weight_layers())
    x, mean = data.x[0], data.x.mean(0)
    task = MetricInput(x=x, attribution=x - mean, target=exp.target, predict=model.explained_scores,
                       modality=M.ROWS, explain=lambda v, m: (v - mean, 0), randomized=model.randomized_copy,
                       layers=len(model.weight_layers()))
    assert run_metrics(task, ["randomization"])["randomization"].warning
