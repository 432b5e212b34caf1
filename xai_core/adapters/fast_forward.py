"""The fast forward path: gradient-free batched predictions on the fastest engine
that reproduces the model.

Perturbation methods (LIME, SHAP Partition, occlusion, ...) spend almost all their
time in the model's forward pass. For a PyTorch or Keras model on the CPU this
module exports the model once, with its preprocessing (N x H x W x C images in
[0, 1] -> raw outputs), to ONNX (``torch.onnx.export`` / ``tf2onnx``), cached on
disk by the model's content hash, and builds the candidate engines from that one
file: ONNX Runtime and OpenVINO (f32 precision pinned: its default on CPUs with
bf16 units changes the logits), each with an explicit thread count. At first use
a short calibration times every candidate against the model itself on the image
being explained and a few perturbed copies; a candidate counts only when its
outputs agree with the model's within ``TOLERANCE`` x the largest output. The
fastest wins; the choice is cached beside the export. Every later image is
checked the same way (one small batch), and any export failure or disagreement
falls back to the model itself with a note saying why. So does a model whose
engines would not fit the process's memory limit (:func:`memory_reason`,
measured before anything is built).

Gradients never come here: they stay on the framework.

Settings (environment): ``XAI_ENGINE_CACHE`` the cache folder (default
``~/.cache/xai-dashboard/engines``; a folder that cannot be written means the
engines are built in memory each process), ``XAI_FAST_FORWARD=0`` turns the fast
path off, ``XAI_ENGINE_THREADS`` the intra-op threads (default: the CPUs this
process may use).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xai_core.adapters.runtime import memory_limit_bytes, memory_limit_setting, resident_bytes

TOLERANCE = 1e-4  # of the largest absolute output on the checked images
# Exporting and building the engines (one at a time, from the cached file) grows the process
# by at most this many times the model's weights (the export's bytes, the engine's parsed and
# compiled copies): measured 3.9x for a 72 MB Keras model, 2.7x for a 177 MB one, 4.1x and
# 2.8x for PyTorch models of the same sizes, about 3.2x for VGG16 with its run on top.
MEMORY_FACTOR = 5
FORMAT_VERSION = "1"  # bump when the export wrapper changes: old cache entries are ignored

Runner = Callable[[np.ndarray], np.ndarray]  # N x H x W x C in [0, 1] -> N x outputs (raw)


@dataclass
class FastForward:
    """The engine an adapter's gradient-free ``predict`` runs on.

    ``engine`` names it ('onnxruntime', 'openvino', or the framework itself), ``note``
    says why it was chosen or why the fast path fell back, ``ms_per_image`` holds the
    calibration timings of every candidate.
    """

    engine: str
    note: str
    run: Runner | None = None  # None: the adapter's own forward pass
    ms_per_image: dict[str, float] = field(default_factory=dict)
    output_kind: str = ""  # the adapter's output kind the engine reproduces

    def serves(self, adapter) -> bool:
        """False while the adapter runs differently from the exported model (a final
        softmax stripped by ``adapter.explaining('logit')``)."""
        return self.run is not None and adapter._output_kind == self.output_kind

    def outputs(self, adapter, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Same contract as ``ModelAdapter.outputs``: raw outputs N x K (float32)."""
        batch = np.asarray(batch, np.float32)
        outs = [self.run(np.ascontiguousarray(batch[sl])) for sl in adapter.iter_batches(len(batch), batch_size)]
        if not outs:
            return np.zeros((0, adapter._raw_width), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)


def cache_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir or os.environ.get("XAI_ENGINE_CACHE")
                or Path.home() / ".cache" / "xai-dashboard" / "engines")


def engine_threads() -> int:
    env = os.environ.get("XAI_ENGINE_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# -- content hash and export, per framework ---------------------------------------------

def content_hash(adapter) -> str:
    """Hash of everything the exported engine depends on: the model's class, its
    weights and buffers (or Keras config and weights), the preprocessing and the
    library versions. For a PyTorch model the hash is kept on the adapter beside a
    cheap stamp of every tensor (its storage, shape, dtype, PyTorch's in-place
    version counter and its sum, which a write through ``.data`` would change
    without bumping the counter), and taken again without hashing the weights while
    the stamp is unchanged (hashing resnet18's 45 MB took 80 ms of every
    explanation)."""
    stamp = _torch_stamp(adapter)
    kept = adapter.__dict__.get("_content_hash")
    if stamp is not None and kept is not None and kept[0] == stamp:
        return kept[1]
    digest = _content_hash(adapter)
    if stamp is not None:
        adapter.__dict__["_content_hash"] = (stamp, digest)
    return digest


def _torch_stamp(adapter) -> tuple | None:
    """What identifies a PyTorch model's tensors and their contents without reading
    them, with the preprocessing and output kind; None where that is not known (not
    PyTorch, or a tensor without a version counter)."""
    if adapter.framework != "torch":
        return None
    import torch

    try:
        with torch.no_grad():
            tensors = tuple((name, t.data_ptr(), tuple(t.shape), str(t.dtype), t._version,
                             float(t.detach().sum()) if t.is_floating_point() else int(t.sum()))
                            for name, t in adapter.model.state_dict(keep_vars=True).items())
    except Exception:  # noqa: BLE001 - e.g. an inference tensor has no version counter: hash every time
        return None
    return (id(adapter.model), adapter._output_kind, json.dumps(adapter.spec.to_dict()), tensors)


def _content_hash(adapter) -> str:
    h = hashlib.blake2b(digest_size=16)
    # the output kind too: within adapter.explaining('logit') the model runs without its final softmax
    h.update(f"{FORMAT_VERSION}|{adapter.framework}|{adapter.kind}|{adapter._output_kind}|"
             f"{json.dumps(adapter.spec.to_dict())}".encode())
    model = adapter.model
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    if adapter.framework == "torch":
        import torch

        h.update(torch.__version__.encode())
        for name, tensor in model.state_dict().items():
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:
        import keras

        h.update(keras.__version__.encode())
        h.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
        for w in model.weights:
            h.update(np.asarray(w).tobytes())
    return h.hexdigest()


def export_onnx(adapter) -> bytes:
    """The adapter's forward pass, preprocessing included, as an ONNX model with a
    dynamic batch dimension; input 'x' is N x H x W x C in [0, 1]."""
    h, w = adapter.spec.size
    c = adapter.spec.channels
    if adapter.framework == "torch":
        import torch

        class Canonical(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = adapter.model  # registered, so its weights become initializers

            def forward(self, x):
                return adapter._forward([x.permute(0, 3, 1, 2)])

        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Canonical().eval(), torch.rand(2, h, w, c, device=adapter.device), buf, dynamo=False,
                input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                opset_version=17,
            )
        return buf.getvalue()
    return export_keras_onnx(adapter, (None, h, w, c))


def export_keras_onnx(adapter, shape: tuple) -> bytes:
    """The Keras adapter's ``_forward`` traced with the model's variables as graph
    inputs (``keras.StatelessScope``), then bound back as ONNX initializers.

    Traced as it stands, the function closes over the variables and tf2onnx
    freezes them into constants: for a 72 MB model the process grew by 4.7 GB in
    23 s, and VGG16 (528 MB of weights) grew without bound. As inputs, the same
    72 MB model exports in under 3 s with about 3 x its weights on top at the peak
    (VGG16: 28 s and 1.1 GB on a busy 2-core machine)."""
    import keras
    import tensorflow as tf
    import tf2onnx
    from onnx import numpy_helper

    variables = list(adapter.model.variables)

    def forward(x, *values):  # the adapter's own _forward; its mean/std are numpy, so they become constants
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return adapter._forward([x])

    signature = [tf.TensorSpec(shape, tf.float32, name="x")] + [
        tf.TensorSpec(tuple(v.shape), v.dtype, name=f"w{i}") for i, v in enumerate(variables)]
    proto, _ = tf2onnx.convert.from_function(tf.function(forward), input_signature=signature, opset=17)
    graph = proto.graph
    kept = []
    for graph_input in graph.input:
        index = graph_input.name.split(":")[0][1:]
        if graph_input.name.startswith("w") and index.isdigit() and int(index) < len(variables):
            value = keras.ops.convert_to_numpy(variables[int(index)])
            graph.initializer.append(numpy_helper.from_array(value, graph_input.name))
        else:
            kept.append(graph_input)
    del graph.input[:]
    graph.input.extend(kept)
    return proto.SerializeToString()


# -- candidate engines built from the ONNX export -----------------------------------------

def onnxruntime_runner(onnx_bytes: bytes | str, threads: int) -> Runner:
    """``onnx_bytes``: the export, or its file's path."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def openvino_runner(onnx_bytes: bytes | str, threads: int) -> Runner:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(onnx_bytes) if isinstance(onnx_bytes, str) else core.read_model(model=onnx_bytes, weights=b"")
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": "f32",  # its default (bf16 on such CPUs) moved logits by 0.5 here
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    })
    lock = threading.Lock()  # one infer request: calls take turns

    def run(x: np.ndarray) -> np.ndarray:
        with lock:
            return np.array(compiled(x)[0], np.float32)

    return run


CANDIDATES: dict[str, Callable[[bytes, int], Runner]] = {
    "onnxruntime": onnxruntime_runner,
    "openvino": openvino_runner,
}


class _OneBlasThread:
    """Reference-counted: the first of several overlapping explanations (dashboard
    sessions, a set's chunks) sets numpy's BLAS to one thread, the last one out
    gives it its own count back."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.limit = None  # threadpoolctl's limit while users > 0 (None: nothing to restore)
        # threadpoolctl's view of the loaded libraries: reading them takes 4.5 ms, so it is kept
        # while no module has been imported since (scipy.linalg brings a second OpenBLAS)
        self.controller = None
        self.modules = 0

    def enter(self) -> None:
        with self.lock:
            self.users += 1
            if self.users == 1:
                try:
                    if self.controller is None or self.modules != len(sys.modules):
                        from threadpoolctl import ThreadpoolController

                        self.controller, self.modules = ThreadpoolController(), len(sys.modules)
                    self.limit = self.controller.limit(limits=1, user_api="blas")
                except Exception:  # noqa: BLE001 - threadpoolctl missing or a library it cannot drive: as is
                    self.limit = None

    def leave(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.limit is not None:
                self.limit.restore_original_limits()
                self.limit = None


_ONE_BLAS_THREAD = _OneBlasThread()


@contextmanager
def engine_has_the_cores(engine: str) -> Iterator[None]:
    """While an explanation runs on ONNX Runtime or OpenVINO, numpy's BLAS takes one
    thread. OpenBLAS's idle threads spin for a while after each call (a mask product,
    RISE's running sums between two batches) and took the cores from the engine's own
    threads: MobileNetV3 in RISE's loop on 2 cores ran at 4.9 ms per image on
    OpenVINO, 3.6 with BLAS on one thread (3.4 alone). Those products are small, so
    one thread costs them little; the results are the same (BLAS splits the outputs
    between threads, not the sums)."""
    if engine not in CANDIDATES:
        yield
        return
    _ONE_BLAS_THREAD.enter()
    try:
        yield
    finally:
        _ONE_BLAS_THREAD.leave()


# -- choosing and checking ------------------------------------------------------------

def check_images(image: np.ndarray, seed: int = 0) -> np.ndarray:
    """The image and three perturbed copies (hidden blocks, noise, half black):
    4 x H x W x C, the batch every engine is checked and timed on."""
    rng = np.random.default_rng(seed)
    h, w, _ = image.shape
    blocks = rng.random((8, 8)) < 0.5
    hide = np.kron(blocks, np.ones((h // 8 + 1, w // 8 + 1), bool))[:h, :w, None]
    noisy = np.clip(image + rng.normal(0, 0.1, image.shape), 0, 1)
    half = image.copy()
    half[:, : w // 2] = 0
    return np.stack([image, np.where(hide, 0.5, image), noisy, half]).astype(np.float32)


def agrees(candidate: np.ndarray, reference: np.ndarray) -> tuple[bool, float]:
    """(within tolerance, max difference relative to the largest output)."""
    if candidate.shape != reference.shape or not np.all(np.isfinite(candidate)):
        return False, float("inf")
    scale = max(float(np.abs(reference).max()), 1e-12)
    rel = float(np.abs(candidate - reference).max()) / scale
    return rel <= TOLERANCE, rel


def _timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


class _Built:
    """Per model (content hash) and process: the export and the engines built from it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.onnx: bytes | str | None = None  # the export: its file's path once on disk, else its bytes
        self.runners: dict[str, Runner] = {}
        self.failed: dict[str, str] = {}
        self.choice: dict | None = None
        self.verified: dict[str, str] = {}  # image digest -> note, for images the choice agreed on
        self.where = ""


_BUILT: dict[str, _Built] = {}
_BUILT_LOCK = threading.Lock()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _load_or_export(adapter, key: str, folder: Path, built: _Built) -> None:
    onnx_path = folder / f"{key}.onnx"
    choice_path = folder / f"{key}.json"
    try:
        if onnx_path.is_file():
            built.choice = json.loads(choice_path.read_text()) if choice_path.exists() else None
            built.onnx, built.where = str(onnx_path), f"cached in {folder}"
            return
    except (OSError, ValueError):
        pass
    onnx = export_onnx(adapter)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write(onnx_path, onnx)
        # the engines read the file: the bytes (the weights once more) are not held while they build
        built.onnx, built.where = str(onnx_path), f"exported to {folder}"
    except OSError:
        built.onnx, built.where = onnx, f"exported in memory ({folder} is not writable)"


def _save_choice(folder: Path, key: str, choice: dict) -> None:
    try:
        _write(folder / f"{key}.json", json.dumps(choice).encode())
    except OSError:
        pass


def unsupported_reason(adapter) -> str | None:
    """Why this adapter gets no fast path, or None."""
    if os.environ.get("XAI_FAST_FORWARD", "1").strip().lower() in ("0", "false", "no", "off"):
        return "fast forward path turned off (XAI_FAST_FORWARD=0)"
    framework = getattr(adapter, "framework", "?")
    if framework in ("torch", "keras") and (adapter.multi_input or adapter.input_kinds != ["image"]):
        return "the fast path serves models with one image input"
    if framework not in ("torch", "keras"):
        return f"{framework} models already run on their own engine"
    if framework == "torch" and getattr(adapter, "device", None) is not None and adapter.device.type != "cpu":
        return f"the model runs on {adapter.device}; the fast path is for CPUs"
    if framework == "torch" and adapter.kind != "module":
        return f"{adapter.kind} models are not exported (no ONNX export of this format)"
    if framework == "keras" and adapter.kind != "model":
        return "SavedModel signatures are not exported"
    if getattr(adapter, "max_batch", None) == 1:
        return "the model takes one image per call"
    return None


def weight_bytes(adapter) -> int:
    """Bytes of the model's weights (and buffers)."""
    if adapter.framework == "torch":
        return sum(t.numel() * t.element_size() for t in adapter.model.state_dict().values())
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in adapter.model.variables)


def memory_reason(adapter) -> str | None:
    """Why building the engines would not fit the process's memory limit, or None:
    the memory in use plus ``MEMORY_FACTOR`` x the model's weights."""
    weights = weight_bytes(adapter)
    used, limit = resident_bytes(), memory_limit_bytes()
    need = used + MEMORY_FACTOR * weights
    if need <= limit:
        return None
    mb = 2**20
    return (f"not taken: building its engines needs about {need // mb} MB ({used // mb} MB in use + "
            f"{MEMORY_FACTOR} x the model's {weights // mb} MB of weights), more than this process's "
            f"{limit // mb} MB limit ({memory_limit_setting()}); model itself")


def prepare(adapter, image: np.ndarray, cache_dir: str | os.PathLike | None = None) -> FastForward:
    """Give ``adapter`` the fastest engine that reproduces it on ``image`` (H x W x C
    in [0, 1], preprocessed) and three perturbed copies; returns what was chosen,
    also left on ``adapter.fast_forward`` for its ``predict``. Never raises for a
    failed export or engine: the model itself is kept, with a note saying why."""
    own = "onnxruntime" if adapter.framework == "onnx" else adapter.framework
    reason = unsupported_reason(adapter)
    if reason:
        return _attach(adapter, FastForward(own, reason))
    try:
        key = content_hash(adapter)
    except Exception as exc:  # noqa: BLE001 - any failure keeps the model itself
        return _attach(adapter, FastForward(own, f"no content hash ({type(exc).__name__}: {exc}); model itself"))
    with _BUILT_LOCK:
        built = _BUILT.setdefault(key, _Built())
    folder = cache_folder(cache_dir)
    with built.lock:
        if built.onnx is None:
            try:
                reason = memory_reason(adapter)
            except Exception as exc:  # noqa: BLE001
                reason = f"not taken: the model's weights could not be sized ({_short(exc)}); model itself"
            if reason:
                return _attach(adapter, FastForward(own, reason))
            try:
                _load_or_export(adapter, key, folder, built)
            except Exception as exc:  # noqa: BLE001
                return _attach(adapter, FastForward(own, f"ONNX export failed ({_short(exc)}); model itself"))
        if built.choice is not None and built.choice["engine"] == own:
            built.onnx, built.runners = b"", {}  # never run here: let the export and the engines go
            return _attach(adapter, FastForward(own, "model itself: no engine was faster at calibration",
                                                None, built.choice["ms_per_image"]))
        digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest()
        if built.choice is not None and digest in built.verified:
            engine = built.choice["engine"]
            return _attach(adapter, FastForward(engine, built.verified[digest], built.runners[engine],
                                                built.choice["ms_per_image"]))
        batch = check_images(image)
        reference, t_own = _timed(lambda: adapter.outputs(batch, len(batch)))
        timings = {own: 1000 * t_own / len(batch)}
        names = [built.choice["engine"]] if built.choice and built.choice["engine"] in CANDIDATES else list(CANDIDATES)
        ok: dict[str, float] = {}
        notes = []
        calibrating = built.choice is None
        for name in names:
            runner = built.runners.get(name)
            if runner is None and name not in built.failed:
                try:
                    runner = built.runners[name] = CANDIDATES[name](built.onnx, engine_threads())
                except Exception as exc:  # noqa: BLE001 - e.g. openvino missing
                    built.failed[name] = _short(exc)
            if runner is None:
                notes.append(f"{name} unavailable ({built.failed[name]})")
                continue
            try:
                out = runner(batch)  # warm-up, and the check
                good, rel = agrees(np.asarray(out, np.float32), reference)
                if not good:
                    notes.append(f"{name} disagrees with the model by {rel:.1e} of the largest output")
                    continue
                _, t = _timed(lambda runner=runner: runner(batch))
                ok[name] = timings[name] = 1000 * t / len(batch)
            except Exception as exc:  # noqa: BLE001
                notes.append(f"{name} failed ({_short(exc)})")
            finally:
                if calibrating:  # one engine in memory at a time (VGG16: 1.2 GB each); the winner is built again
                    built.runners.pop(name, None)
                    runner = None
        if built.choice is None and (ok or not notes):
            best = min(ok, key=ok.get) if ok else own
            built.choice = {"engine": best if timings[best] < timings[own] else own,
                            "ms_per_image": timings, "threads": engine_threads()}
            _save_choice(folder, key, built.choice)
        if built.choice is not None and built.choice["engine"] == own:
            built.onnx, built.runners = b"", {}
        if built.choice is not None and built.choice["engine"] in ok:
            engine = built.choice["engine"]
            if engine not in built.runners:
                try:
                    built.runners[engine] = CANDIDATES[engine](built.onnx, engine_threads())
                except Exception as exc:  # noqa: BLE001
                    built.failed[engine] = _short(exc)
                    return _attach(adapter, FastForward(own, f"model itself: {engine} failed ({_short(exc)})"))
            built.onnx = b""  # the engine holds what it needs (the file is on disk, or was in memory only)
            note = (f"{engine} with {engine_threads()} threads, agrees within {TOLERANCE:g} on this image; "
                    f"{built.where}")
            built.verified[digest] = note
            return _attach(adapter, FastForward(engine, note, built.runners[engine], built.choice["ms_per_image"]))
        why = "; ".join(notes) or "no engine was faster than the model itself"
        return _attach(adapter, FastForward(own, f"model itself: {why}", None, timings))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _attach(adapter, fast: FastForward) -> FastForward:
    fast.output_kind = adapter._output_kind
    adapter.fast_forward = fast if fast.run is not None else None
    return fast


__all__ = ["FastForward", "MEMORY_FACTOR", "TOLERANCE", "cache_folder", "check_images", "content_hash", "prepare"]
