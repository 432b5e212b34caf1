"""The confined model worker: hostile files leave no trace, limits stop runaway
models with one clear line, results cross as JSON + arrays, and the next request
is served. Tests that need a kernel feature skip with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import attack_files as attack
import numpy as np
import pytest

from xai_core.loading.models import SpecOverrides, open_model
from xai_core.types import Explanation, ModelLoadError, Prediction, XaiError
from xai_core.worker import sandbox, wire
from xai_core.worker.client import RemoteModel, WorkerError, close_all, tree_rss

ROOT = Path(__file__).resolve().parents[1]
CONFINED = sandbox.detect().confined
needs_confinement = pytest.mark.skipif(
    not CONFINED, reason="no kernel confinement here (neither bubblewrap nor Landlock works)")
TINY = SpecOverrides(size=(8, 8), mean=(0.5,), std=(0.5,))


@pytest.fixture
def marker():
    """A path outside /tmp (the bubblewrap worker has a private /tmp) that a payload
    would create; it must not exist afterwards."""
    folder = Path("/var/tmp") / f"xai-marker-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    yield folder / "pwned"
    for item in folder.iterdir():
        item.unlink()
    folder.rmdir()


@pytest.fixture(autouse=True)
def _fresh_workers():
    yield
    close_all()


def _forced(mechanism: str, monkeypatch) -> None:
    monkeypatch.setenv("XAI_SANDBOX", mechanism)
    sandbox.detect.cache_clear()


@pytest.fixture
def restore_detection():
    yield
    sandbox.detect.cache_clear()


# -- the wire --------------------------------------------------------------------------
def test_explanation_crosses_generically():
    exp = Explanation(
        method="m", target=1, target_label="b", attribution=np.arange(6, dtype=np.float32).reshape(2, 3),
        predictions=[Prediction(1, "b", 0.75)], params={"steps": 3, "pair": (1, 2)}, seed=0,
        model_evals=2, elapsed_s=0.1, raw=None,
        extras={"segments": np.ones((2, 2), np.int64), "list": [np.zeros(2), {"k": np.float32(2.5)}], 3: "int key"},
    )
    arrays: list[bytes] = []
    back = wire.decode(wire.encode(exp, arrays), arrays)
    assert isinstance(back, Explanation) and back.predictions == exp.predictions
    np.testing.assert_array_equal(back.attribution, exp.attribution)
    assert back.extras["segments"].dtype == np.int64 and back.extras[3] == "int key"
    assert back.params["pair"] == (1, 2) and back.extras["list"][1]["k"] == 2.5
    assert all(not blob.startswith(b"\x80") for blob in arrays)  # .npy, never a pickle


def test_metric_results_cross_with_their_enumerations():
    from xai_core.metrics.base import Direction, MetricResult

    result = MetricResult("deletion", "Deletion", 0.25, Direction.LOWER, baseline=0.5, curve=([0.0, 1.0], [0.9, 0.1]))
    arrays: list[bytes] = []
    back = wire.decode(wire.encode({"digit": {"deletion": result}}, arrays), arrays)["digit"]["deletion"]
    assert back == result and back.direction is Direction.LOWER and back.passed is True
    with pytest.raises(wire.WireError, match="only xai_core"):
        wire.decode({"__enum__": "signal:Signals", "value": 9}, [])
    with pytest.raises(wire.WireError, match="not an enumeration"):
        wire.decode({"__enum__": "xai_core.metrics.base:MetricResult", "value": 1}, [])


def test_wire_refuses_objects_and_foreign_types():
    with pytest.raises(wire.WireError, match="objects"):
        wire.encode(np.array([object()]), [])
    with pytest.raises(wire.WireError, match="cannot cross"):
        wire.encode(Path("/"), [])
    forged = {"__dc__": "os:system", "fields": {}}
    with pytest.raises(wire.WireError, match="only xai_core"):
        wire.decode(forged, [])
    with pytest.raises(wire.WireError, match="private"):
        wire.resolve("xai_core.worker.wire:_read")


# -- the honest path -------------------------------------------------------------------
def test_file_model_runs_in_worker_like_in_process(digits_files, digit_image):
    from xai_core.service import explain

    options = dict(overrides=SpecOverrides(size=(32, 32), mean=(0.5,), std=(0.5,), grayscale=True))
    remote = open_model(digits_files["export"], **options)
    local = open_model(digits_files["export"], engine="inprocess", trust_pickle=True, **options)
    assert isinstance(remote, RemoteModel) and not isinstance(local, RemoteModel)
    assert remote.labels == local.labels and remote.spec == local.spec and remote.kind == "export"
    assert remote.capabilities == local.capabilities and remote.num_classes == 10
    assert [info.name for info in remote.layers()] == [info.name for info in local.layers()]
    seen: list[float] = []
    got = explain(remote, digit_image, "integrated_gradients", {"steps": 16}, seed=3,
                  progress=lambda f, _t: seen.append(f))
    want = explain(local, digit_image, "integrated_gradients", {"steps": 16}, seed=3)
    assert seen, "progress must stream from the worker"
    assert got.target == want.target and got.model_evals == want.model_evals
    np.testing.assert_allclose(got.attribution, want.attribution, rtol=1e-5, atol=1e-6)
    # the primitives are generic calls, for code written against adapters
    batch = np.random.default_rng(0).random((3, 32, 32, 1), dtype=np.float32)
    np.testing.assert_allclose(remote.predict(batch), local.predict(batch), rtol=1e-5, atol=1e-6)
    g_remote, s_remote = remote.input_gradients(batch, 4)
    g_local, _ = local.input_gradients(batch, 4)
    np.testing.assert_allclose(g_remote, g_local, rtol=1e-4, atol=1e-6)
    assert s_remote.shape == (3,)
    # the same file and options reuse the worker
    assert open_model(digits_files["export"], **options)._worker is remote._worker


# -- attacks ---------------------------------------------------------------------------
@needs_confinement
def test_torchscript_cannot_write_outside(tmp_path, marker):
    path = attack.torchscript_writer(tmp_path / "evil.pt", marker)
    with pytest.raises(XaiError) as info:
        open_model(path, overrides=TINY)
    assert "\n" not in str(info.value) and "evil.pt" in str(info.value)
    assert not marker.exists()


def test_torchscript_payload_is_real(tmp_path, marker):
    """The same file does write the marker when loaded in-process with trust."""
    path = attack.torchscript_writer(tmp_path / "evil.pt", marker)
    open_model(path, overrides=TINY, engine="inprocess", trust_pickle=True)
    assert marker.exists()


@needs_confinement
def test_pickled_module_cannot_write_outside(tmp_path, marker):
    path = attack.pickled_payload(tmp_path / "evil.pt", marker)
    with pytest.raises(ModelLoadError, match="evil.pt"):
        open_model(path, overrides=TINY)
    assert not marker.exists()


def test_pt2_with_pickled_member_is_refused_before_unpickling(tmp_path, marker):
    path = attack.pt2_with_pickled_member(tmp_path / "evil.pt2", marker)
    for engine, trust in (("worker", False), ("inprocess", True)):
        with pytest.raises(ModelLoadError, match="evil.pt2: refused.*sample_inputs"):
            open_model(path, overrides=TINY, engine=engine, trust_pickle=trust)
        assert not marker.exists()


@needs_confinement
def test_savedmodel_graph_cannot_write_outside(tmp_path, marker):
    pytest.importorskip("tensorflow")
    folder = attack.savedmodel_writer(tmp_path / "evil_saved", marker)
    with pytest.raises(XaiError):
        open_model(folder, overrides=SpecOverrides(mean=(0.5,), std=(0.5,)))
    assert not marker.exists()


def test_without_confinement_code_needs_consent(tmp_path, monkeypatch, restore_detection):
    _forced("none", monkeypatch)
    path = tmp_path / "model.pt"
    import torch

    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3))), str(path))
    with pytest.raises(ModelLoadError, match="model.pt is a TorchScript program.*--trust-code"):
        open_model(path, overrides=TINY)
    assert open_model(path, overrides=TINY, trust_pickle=True).num_classes == 3


def test_landlock_alone_confines(tmp_path, marker, monkeypatch, restore_detection):
    if sandbox.landlock_abi() < 1:
        pytest.skip("this kernel has no Landlock")
    _forced("landlock", monkeypatch)
    assert sandbox.detect().mechanism == "landlock"
    path = attack.pickled_payload(tmp_path / "evil.pt", marker)
    with pytest.raises(ModelLoadError):
        open_model(path, overrides=TINY)
    assert not marker.exists()
    ts = attack.torchscript_writer(tmp_path / "evil_ts.pt", marker)
    with pytest.raises(XaiError):
        open_model(ts, overrides=TINY)
    assert not marker.exists()


def test_worker_has_no_network_and_read_only_home(monkeypatch):
    """Checked from inside the worker's own sandbox: the same command line."""
    if not sandbox.bwrap_works():
        pytest.skip("bubblewrap does not work here")
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"xai-scratch-{uuid.uuid4().hex[:6]}"
    scratch.mkdir()
    probe = (
        "import socket, pathlib, sys\n"
        "s = socket.socket(); s.settimeout(2)\n"
        "try:\n    s.connect(('1.1.1.1', 80)); print('net-open')\nexcept OSError: print('net-closed')\n"
        f"for p in [{str(Path(sys.prefix))!r}, {str(Path.home())!r}, {str(ROOT)!r}]:\n"
        "    try:\n        (pathlib.Path(p) / 'xai-probe').write_text('x'); print('writable', p)\n"
        "    except OSError: print('read-only')\n"
        f"(pathlib.Path({str(scratch)!r}) / 'ok').write_text('x'); print('scratch-ok')\n"
    )
    cmd = sandbox.wrap_command([sys.executable, "-c", probe], scratch, [], sandbox.Protection("bubblewrap", ""))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.split("\n")
    (scratch / "ok").unlink(missing_ok=True)
    scratch.rmdir()
    assert out[:5] == ["net-closed", "read-only", "read-only", "read-only", "scratch-ok"], out


# -- limits ----------------------------------------------------------------------------
def test_endless_onnx_loop_hits_the_deadline(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.setenv("XAI_WORKER_DEADLINE", "4")
    path = attack.onnx_endless_loop(tmp_path / "loop.onnx")
    with pytest.raises(WorkerError) as info:
        open_model(path)
    text = str(info.value)
    assert "loop.onnx" in text and "load the model within its 4 s load deadline" in text and "\n" not in text
    honest = open_model(attack.honest_onnx(tmp_path / "fine.onnx"))
    assert honest.predict(np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 3)


def test_memory_bomb_is_stopped(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.setenv("XAI_WORKER_MEMORY_MB", "1200")
    path = attack.onnx_memory_bomb(tmp_path / "bomb.onnx", gigabytes=3.0)
    with pytest.raises(WorkerError, match="bomb.onnx.*more than 1200 MB"):
        open_model(path)


def test_worker_killed_mid_run_then_serves_again(digits_files, digit_image):
    from xai_core.service import explain

    model = open_model(digits_files["export"],
                       overrides=SpecOverrides(size=(32, 32), mean=(0.5,), std=(0.5,), grayscale=True))
    pid = model._worker._proc.pid

    def kill_once(_fraction, _text):
        if model._worker._proc is not None and model._worker._proc.pid == pid:
            os.killpg(pid, signal.SIGKILL)

    with pytest.raises(WorkerError, match="digits.pt2: the model worker was killed.*fresh one"):
        explain(model, digit_image, "integrated_gradients", {"steps": 400}, progress=kill_once)
    assert tree_rss(pid) == 0
    again = explain(model, digit_image, "grad_cam")  # a new worker, same proxy
    assert again.target == 7 and model._worker.starts == 2


def test_six_sessions_share_one_worker(digits_files, digit_image):
    from xai_core.service import explain

    options = dict(overrides=SpecOverrides(size=(32, 32), mean=(0.5,), std=(0.5,), grayscale=True))
    results, errors = [], []

    def session(i: int) -> None:
        try:
            model = open_model(digits_files["export"], **options)
            method = ["grad_cam", "saliency", "integrated_gradients"][i % 3]
            results.append((method, explain(model, digit_image, method, {"steps": 8} if i % 3 == 2 else {})))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 6
    assert {r.target for _, r in results} == {7}
    by_method: dict[str, np.ndarray] = {}
    for method, r in results:
        if method in by_method:
            np.testing.assert_array_equal(by_method[method], r.attribution)
        by_method[method] = r.attribution


def test_a_callback_that_stops_the_run_leaves_the_worker_usable(digits_files, digit_image):
    """The page's Stop button raises inside the progress callback."""
    from xai_core.service import explain

    model = open_model(digits_files["export"],
                       overrides=SpecOverrides(size=(32, 32), mean=(0.5,), std=(0.5,), grayscale=True))

    class Stop(BaseException):
        pass

    def stop(_fraction, _text):
        raise Stop

    with pytest.raises(Stop):
        explain(model, digit_image, "integrated_gradients", {"steps": 400}, progress=stop)
    assert explain(model, digit_image, "saliency").target == 7


def test_safetensors_with_an_architecture_loads_everywhere(tmp_path, digits_module, digit_image, unconfined):
    """Data only: no consent needed even where nothing confines the worker."""
    from safetensors.torch import save_file

    from xai_core.loading.torch import sniff_torch_format
    from xai_core.service import predict_image

    path = tmp_path / "digits.safetensors"
    save_file({k: v.contiguous() for k, v in digits_module.state_dict().items()}, str(path))
    assert sniff_torch_format(path) == "safetensors"
    options = dict(overrides=SpecOverrides(size=(32, 32), mean=(0.5,), std=(0.5,), grayscale=True))
    with pytest.raises(ModelLoadError, match="digits.safetensors holds weights only.*--arch"):
        open_model(path, **options)
    model = open_model(path, arch="digits_cnn", **options)
    assert predict_image(model, digit_image)[0].index == 7
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ModelLoadError, match="cut.safetensors: corrupt or truncated"):
        open_model(truncated, arch="digits_cnn", **options)


@needs_confinement
def test_dashboard_upload_of_a_hostile_torchscript_then_the_next_request(tmp_path, marker):
    """Through the upload box: one clear error on the page, no marker, and the same
    session then explains with a zoo model."""
    from test_dashboard import assert_clean, click_explain, errors, image_page, use_digits_model

    path = attack.torchscript_writer(tmp_path / "evil.pt", marker)
    at = image_page()
    at.radio(key="img_source").set_value("Upload a model file").run()
    at.file_uploader(key="img_model_file_torch").set_value(("evil.pt", path.read_bytes(), "application/octet-stream")).run()
    at.number_input(key="img_height").set_value(8)
    at.number_input(key="img_width").set_value(8).run()
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and "evil.pt" in shown[0], shown
    assert not marker.exists()
    assert any("confined worker" in c.value for c in at.caption)
    at.radio(key="img_source").set_value("Model zoo").run()
    use_digits_model(at)
    click_explain(at)
    assert_clean(at)


def test_worker_outlives_the_session_thread_that_started_it(digits_files, digit_image):
    """A dashboard session runs in a thread that ends; the shared worker must not die
    with it (bubblewrap's --die-with-parent follows the forking thread)."""
    from xai_core.service import explain

    holder: list = []
    opener = threading.Thread(target=lambda: holder.append(open_model(
        digits_files["export"], overrides=SpecOverrides(size=(32, 32), mean=(0.5,), std=(0.5,), grayscale=True))))
    opener.start()
    opener.join(120)
    model = holder[0]
    import time

    time.sleep(1.0)
    assert model._worker.alive
    assert explain(model, digit_image, "saliency").target == 7 and model._worker.starts == 1


def test_a_checkout_and_venv_under_tmp_stay_importable_in_the_sandbox(tmp_path, monkeypatch):
    """bubblewrap gives the worker a private /tmp; a project or virtual environment that
    lives under /tmp (a CI clone, say) must be bound back in read-only, or the worker
    cannot even start Python."""
    venv = tmp_path / "venv"
    venv.mkdir()
    monkeypatch.setattr(sys, "prefix", str(venv))
    hidden = sandbox.hidden_code_paths()
    assert venv.resolve() in hidden
    assert Path("/tmp") not in hidden and all(len(p.parts) > 2 for p in hidden)
    cmd = sandbox.wrap_command(["python"], tmp_path / "scratch", [], sandbox.Protection("bubblewrap", ""))
    i = cmd.index(str(venv.resolve()))
    assert cmd[i - 1] == "--ro-bind" and cmd.index("--tmpfs") < i


def test_many_rows_of_an_uploaded_table_model_cross_back(tmp_path):
    """explain_rows on a worker-run ONNX file (the tabular page's "Explain rows"): one
    Explanation per row comes back and the summary's tables are built here."""
    from tabular_helpers import FEATURES, KNOWN, known_feature_onnx, synthetic_csv

    from xai_core.tabular import explain_rows, load_table, open_tabular_model

    path = tmp_path / "known.onnx"
    path.write_bytes(known_feature_onnx(zipmap=False))
    csv = tmp_path / "known.csv"
    csv.write_bytes(synthetic_csv())
    model = open_tabular_model(str(path))
    assert isinstance(model, RemoteModel)
    data = load_table(csv, label_column="y", n_features=model.n_features)
    summary = explain_rows(model, data, [0, 5, 7], "kernel_shap", {"nsamples": 100, "background_size": 10},
                           target=1)
    assert [type(e) for e in summary.explanations] == [Explanation] * 3
    assert summary.rows == [0, 5, 7] and summary.mean_abs.index[0] == FEATURES[KNOWN]
    assert list(summary.table().columns[:4]) == ["row", "label", "output", "base_value"]


def test_layers_by_index_and_the_default_layer_come_from_the_worker():
    """--layer 6 on a worker-run .keras file (the README's CAM example) was refused with
    "offers no layers to choose by index", and the default CAM layer was the last
    layer listed (a dense one) instead of the model's own rule."""
    path = ROOT / "model_zoo" / "weights" / "keras_digits_gap200.keras"
    remote = open_model(str(path))
    local = open_model(str(path), engine="inprocess")
    assert isinstance(remote, RemoteModel) and not isinstance(local, RemoteModel)
    for layer in ("6", "-1", "conv4", None):
        assert remote.resolve_layer(layer) == local.resolve_layer(layer)
    assert remote.resolve_layer("6") == "conv4"
    assert remote.default_cam_layer() == local.default_cam_layer() == "conv4"
    with pytest.raises(XaiError, match="no layer with index 99"):
        remote.resolve_layer("99")
