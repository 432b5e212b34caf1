"""The fast forward path (xai_core/adapters/fast_forward.py): every zoo model's
gradient-free explanations are the same with and without it, its engine is
recorded, and every failure falls back to the model itself with a note."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import SAMPLES

import model_zoo
from xai_core.adapters import fast_forward
from xai_core.inputs.images import load_image, preprocess
from xai_core.loading.models import open_model
from xai_core.service import explain
from xai_core.types import XaiError

BUDGETS = {
    "lime": {"samples": 60, "segments": 16},
    "shap_partition": {"max_evals": 60},
    "occlusion": {"window": 0, "stride": 0},  # 1/8 of the input, half-window stride
}


@pytest.fixture(autouse=True)
def engine_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_ENGINE_CACHE", str(tmp_path / "engines"))
    monkeypatch.delenv("XAI_FAST_FORWARD", raising=False)
    fast_forward._BUILT.clear()  # each test builds its engines afresh, into its own folder
    yield tmp_path / "engines"
    fast_forward._BUILT.clear()


def zoo_image(adapter) -> np.ndarray:
    return load_image(SAMPLES / ("digit_9.png" if adapter.spec.grayscale else "chelsea_cat.jpg"))


@pytest.mark.parametrize("name", list(model_zoo.ZOO))
def test_every_zoo_model_explains_the_same_on_the_fast_path(name, monkeypatch):
    try:
        adapter = open_model(name, device="cpu")
    except XaiError as exc:  # zoo models whose weights file is not on this machine
        pytest.skip(f"{name} not available offline: {exc}")
    image = zoo_image(adapter)
    for method, params in BUDGETS.items():
        fast = explain(adapter, image, method, params, seed=3)
        assert fast.engine in ("onnxruntime", "openvino"), fast.engine_note
        assert fast.record()["engine"] == fast.engine
        monkeypatch.setenv("XAI_FAST_FORWARD", "0")
        slow = explain(adapter, image, method, params, seed=3)
        monkeypatch.delenv("XAI_FAST_FORWARD")
        assert slow.engine == adapter.framework and "turned off" in slow.engine_note
        assert fast.target == slow.target and fast.model_evals == slow.model_evals
        scale = float(np.abs(slow.attribution).max())
        assert scale > 0
        np.testing.assert_allclose(fast.attribution, slow.attribution, atol=1e-3 * scale, err_msg=method)
        np.testing.assert_allclose(fast.predictions[0].probability, slow.predictions[0].probability, atol=1e-4)


def test_gradient_methods_stay_on_the_framework(digits_adapter, digit_image):
    result = explain(digits_adapter, digit_image, "saliency", seed=0)
    assert result.engine == "torch"
    assert digits_adapter.fast_forward is None or result.engine_note.startswith("gradients")


def test_engine_is_built_once_and_cached_on_disk(digits_adapter, digit_image, engine_cache):
    first = explain(digits_adapter, digit_image, "occlusion", seed=0)
    assert "exported to" in first.engine_note
    files = sorted(p.suffix for p in engine_cache.iterdir())
    assert files == [".json", ".onnx"]
    choice = json.loads(next(engine_cache.glob("*.json")).read_text())
    assert choice["engine"] == first.engine and "torch" in choice["ms_per_image"]
    fast_forward._BUILT.clear()  # a new process: the export and the choice come from the folder
    again = explain(digits_adapter, digit_image, "occlusion", seed=0)
    assert "cached in" in again.engine_note and again.engine == first.engine


def test_read_only_cache_folder_builds_in_memory(digits_adapter, digit_image, tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")  # a folder beneath a file can never be created
    monkeypatch.setenv("XAI_ENGINE_CACHE", str(blocked / "engines"))
    result = explain(digits_adapter, digit_image, "occlusion", seed=0)
    assert result.engine in ("onnxruntime", "openvino")
    assert "not writable" in result.engine_note


def test_failed_export_falls_back_with_a_note(digits_adapter, digit_image, monkeypatch):
    def broken(adapter):
        raise RuntimeError("unsupported operator FancyOp")

    monkeypatch.setattr(fast_forward, "export_onnx", broken)
    result = explain(digits_adapter, digit_image, "lime", {"samples": 20, "segments": 8}, seed=0)
    assert result.engine == "torch" and "FancyOp" in result.engine_note
    assert digits_adapter.fast_forward is None


def test_disagreeing_engine_is_refused(digits_adapter, digit_image, monkeypatch):
    def off_by_a_little(onnx_bytes, threads):
        run = fast_forward.onnxruntime_runner(onnx_bytes, threads)
        return lambda x: run(x) + 1e-2  # well above 1e-4 of the largest logit

    monkeypatch.setattr(fast_forward, "CANDIDATES", {"onnxruntime": off_by_a_little})
    result = explain(digits_adapter, digit_image, "occlusion", seed=0)
    assert result.engine == "torch" and "disagrees" in result.engine_note
    assert digits_adapter.fast_forward is None


def test_check_images_are_the_image_and_perturbed_copies(digit_image, digits_adapter):
    x = preprocess(digit_image, digits_adapter.spec)
    batch = fast_forward.check_images(x)
    assert batch.shape == (4, *x.shape) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], x)
    assert all(np.abs(batch[i] - x).max() > 0.05 for i in (1, 2, 3))


def test_content_hash_is_kept_until_a_weight_changes(digits_adapter):
    """The weights are hashed once per model state: a write to a weight, in place
    under no_grad (the version counter) or through ``.data`` (which the counter does
    not see), gives a new hash, so a changed model never meets an engine exported
    from the old one."""
    import torch

    from xai_core.adapters.torch import TorchAdapter

    model = TorchAdapter(copy.deepcopy(digits_adapter.model), digits_adapter.spec,
                         digits_adapter.labels, name="copy")
    first = fast_forward.content_hash(model)
    assert fast_forward.content_hash(model) == first == model._content_hash[1]
    weight = next(model.model.parameters())
    weight.data.mul_(1.5)
    second = fast_forward.content_hash(model)
    with torch.no_grad():
        weight.add_(0.25)
    third = fast_forward.content_hash(model)
    assert len({first, second, third}) == 3
    assert third == fast_forward._content_hash(model)  # what hashing every weight gives


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_blas_takes_one_thread_while_an_engine_runs_the_explanation(digits_adapter, digit_image, monkeypatch):
    """OpenBLAS's idle threads spin after each call and took the cores from the
    engine's threads: while a method runs on ONNX Runtime / OpenVINO, numpy's BLAS
    has one thread, and its own count again afterwards."""
    from xai_core.explainers.rise import Rise

    before = _blas_threads()
    seen = []
    original = Rise.run

    def spy(self, ctx, params):
        seen.append(_blas_threads())
        return original(self, ctx, params)

    monkeypatch.setattr(Rise, "run", spy)
    e = explain(digits_adapter, digit_image, "rise", {"masks": 50}, target=1)
    assert seen == [{1} if e.engine in fast_forward.CANDIDATES else before]
    assert _blas_threads() == before
    with fast_forward.engine_has_the_cores("torch"):
        assert _blas_threads() == before


def test_masked_images_are_the_broadcast_expression_bit_for_bit():
    from xai_core.explainers.base import masked_images

    rng = np.random.default_rng(0)
    masks = rng.random((5, 9, 7)).astype(np.float32)
    image = rng.random((9, 7, 3)).astype(np.float32)
    for base in (np.array([0.485, 0.456, 0.406], np.float32), rng.random((9, 7, 3)).astype(np.float32)):
        want = base + masks[..., None] * (image - base)
        got = masked_images(masks, image - base, base, np.empty((5, 9, 7, 3), np.float32))
        assert got.dtype == np.float32 and np.array_equal(got, want)


def test_overlapping_engine_runs_give_blas_its_threads_back_when_the_last_ends():
    before = _blas_threads()
    first, second = fast_forward.engine_has_the_cores("openvino"), fast_forward.engine_has_the_cores("onnxruntime")
    first.__enter__()
    second.__enter__()
    assert _blas_threads() == {1}
    first.__exit__(None, None, None)  # the first ends while the second still runs
    assert _blas_threads() == {1}
    second.__exit__(None, None, None)
    assert _blas_threads() == before
