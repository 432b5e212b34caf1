"""Tabular models seen through one protocol, whatever the framework.

A :class:`TabularModel` takes rows of raw feature values (float32, N x F) and
returns N x K outputs: class probabilities, logits, or one score (binary or
regression). ``output_kind`` says which. Gradients of one output column with
respect to the input row exist for PyTorch and Keras models, not for ONNX.

Frameworks are imported lazily inside each adapter, so importing this module loads
neither torch, tensorflow nor onnxruntime.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..types import Capability, InputError, ModelLoadError, UnsupportedError

OUTPUT_KINDS = ("probability", "logit", "score")


class TabularModel(ABC):
    """A model over rows of F numeric features with K outputs."""

    framework: str = "?"
    name: str = "model"
    kind: str = ""
    batch_size: int = 4096
    feature_names: list[str] | None = None  # input columns by name, in order, when known
    label_column: str | None = None  # the label column of the tables it was trained on, when known

    def __init__(self, labels: list[str] | None, output_kind: str | None) -> None:
        self._requested_labels = labels
        self._requested_kind = output_kind
        self.labels: list[str] = []
        self.output_kind = "score"
        self.num_outputs = 0

    # -- to implement ------------------------------------------------------------------
    @property
    @abstractmethod
    def n_features(self) -> int | None:
        """Input width the model expects (None when the file does not say)."""

    @abstractmethod
    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        """float32 B x F -> B x K (or B) outputs."""

    def _gradients_batch(self, x: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
        raise UnsupportedError(f"{self.name}: {self.framework} models give no gradients")

    # -- shared ------------------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({Capability.PREDICT})

    def supports(self, requirement: str) -> bool:
        return requirement in self.capabilities

    @property
    def output_names(self) -> list[str]:
        return list(self.labels)

    def label(self, index: int) -> str:
        return self.labels[index] if 0 <= index < len(self.labels) else f"output {index}"

    def _finish_init(self) -> None:
        """Probe the model with two rows: number of outputs, their kind, labels."""
        n = self.n_features
        if n is None:
            raise ModelLoadError(f"{self.name}: cannot tell how many input features the model takes")
        probe = np.zeros((2, n), np.float32)
        probe[1] = 1.0
        out = self.predict(probe)
        self.num_outputs = int(out.shape[1])
        kind = self._requested_kind or guess_output_kind(out)
        if kind not in OUTPUT_KINDS:
            raise InputError(f"output kind {kind!r} is not one of {', '.join(OUTPUT_KINDS)}")
        self.output_kind = kind
        self.labels = fit_output_names(self._requested_labels, self.num_outputs)

    def check_features(self, count: int) -> None:
        n = self.n_features
        if n is not None and n != count:
            raise InputError(f"the model {self.name} takes {n} features but {count} columns were chosen")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """N x F raw feature rows -> N x K float32 outputs, in batches."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise InputError(f"rows must be a 2-D array (N x F); got shape {x.shape}")
        parts = []
        for start in range(0, len(x), self.batch_size):
            out = np.asarray(self._predict_batch(x[start : start + self.batch_size]), np.float32)
            parts.append(out.reshape(len(out), -1))
        if not parts:
            return np.zeros((0, self.num_outputs), np.float32)
        return np.concatenate(parts)

    def gradients(self, x: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
        """d output[:, target] / d x for N x F rows -> (gradients N x F, outputs N)."""
        if Capability.INPUT_GRADIENTS not in self.capabilities:
            raise UnsupportedError(f"{self.name}: {self.framework} models give no gradients")
        x = np.ascontiguousarray(x, dtype=np.float32)
        grads, scores = [], []
        for start in range(0, len(x), self.batch_size):
            g, s = self._gradients_batch(x[start : start + self.batch_size], target)
            grads.append(np.asarray(g, np.float32).reshape(-1, x.shape[1]))
            scores.append(np.asarray(s, np.float32).reshape(-1))
        return np.concatenate(grads), np.concatenate(scores)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "framework": self.framework,
            "kind": self.kind,
            "features": self.n_features,
            "outputs": self.output_names,
            "output_kind": self.output_kind,
            "capabilities": sorted(self.capabilities),
        }


def guess_output_kind(out: np.ndarray) -> str:
    """'probability' when rows are in [0, 1] and sum to 1 (K >= 2), 'score' for one
    column, else 'logit'."""
    if out.shape[1] == 1:
        return "score"
    if out.min() >= 0 and out.max() <= 1 and np.allclose(out.sum(1), 1.0, atol=1e-3):
        return "probability"
    return "logit"


def fit_output_names(labels: list[str] | None, k: int) -> list[str]:
    if labels is None:
        return ["score"] if k == 1 else [f"class {i}" for i in range(k)]
    labels = [str(v) for v in labels]
    if len(labels) != k:
        raise InputError(f"{len(labels)} output labels were given but the model has {k} outputs")
    return labels


# -- PyTorch -----------------------------------------------------------------------------
class TorchTabularModel(TabularModel):
    """An nn.Module, TorchScript module or unflattened torch.export program on the CPU."""

    framework = "torch"

    def __init__(self, module, name: str = "model", kind: str = "module",
                 labels: list[str] | None = None, output_kind: str | None = None) -> None:
        super().__init__(labels, output_kind)
        import torch

        self.name, self.kind = name, kind
        if hasattr(module, "eval"):
            module.eval()
        self.module = module
        self._torch = torch
        self._n_features = _first_linear_in_features(module)
        self._one_row_only = False
        try:
            self._forward(torch.zeros(2, self._n_features or 1))
        except Exception:  # noqa: BLE001 - a fixed batch size of 1 is common in exports
            self._one_row_only = True
        self._finish_init()

    @property
    def n_features(self) -> int | None:
        return self._n_features

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})

    def _forward(self, x):
        if self._one_row_only and len(x) > 1:
            return self._torch.cat([self._forward(x[i : i + 1]) for i in range(len(x))])
        try:
            out = self.module(x)
        except Exception as exc:  # noqa: BLE001 - any failure is the model's
            raise UnsupportedError(f"{self.name}: the model failed on a batch of {tuple(x.shape)} rows ({_first_line(exc)})") from None
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.reshape(len(x), -1).float()

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self._forward(self._torch.from_numpy(x)).numpy()

    def _gradients_batch(self, x: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
        t = self._torch.from_numpy(x).requires_grad_(True)
        with self._torch.enable_grad():
            scores = self._forward(t)[:, target]
            (grads,) = self._torch.autograd.grad(scores.sum(), t)
        return grads.numpy(), scores.detach().numpy()


def _first_linear_in_features(module) -> int | None:
    for p in module.parameters():
        if p.ndim == 2:
            return int(p.shape[1])
    return None


# -- Keras -------------------------------------------------------------------------------
class KerasTabularModel(TabularModel):
    """A Keras 3 model (``.keras`` loaded with ``safe_mode=True``, or legacy ``.h5``)."""

    framework = "keras"

    def __init__(self, model, name: str = "model", kind: str = "keras",
                 labels: list[str] | None = None, output_kind: str | None = None) -> None:
        super().__init__(labels, output_kind)
        self.model, self.name, self.kind = model, name, kind
        inputs = getattr(model, "inputs", None) or []
        if len(inputs) > 1:
            raise UnsupportedError(f"{name}: the model has {len(inputs)} inputs; tabular rows need one")
        shape = tuple(inputs[0].shape) if inputs else tuple(getattr(model, "input_shape", ()) or ())
        if len(shape) != 2:
            raise UnsupportedError(f"{name}: the model input has shape {shape}; tabular rows need (batch, features)")
        self._n_features = int(shape[1]) if shape[1] is not None else None
        self._finish_init()

    @property
    def n_features(self) -> int | None:
        return self._n_features

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({Capability.PREDICT, Capability.INPUT_GRADIENTS})

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        import keras

        return keras.ops.convert_to_numpy(self.model(x, training=False))

    def _gradients_batch(self, x: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
        import tensorflow as tf

        from ..adapters.keras import GRADIENT_REGISTRY_LOCK

        t = tf.convert_to_tensor(x)
        # the image side's lock: shap_deep swaps TensorFlow's gradient registry while it runs
        with GRADIENT_REGISTRY_LOCK, tf.GradientTape() as tape:
            tape.watch(t)
            out = tf.reshape(self.model(t, training=False), (len(x), -1))
            scores = out[:, target]
        grads = tape.gradient(scores, t)
        return grads.numpy(), scores.numpy()


def import_keras() -> Any:
    """Import Keras (and TensorFlow) safely next to PyTorch.

    When TensorFlow is loaded before triton's native library (which torch.export and
    torch.compile import on first use), that later import crashes the process with a
    segmentation fault (tensorflow-cpu 2.21 + torch 2.14). Importing triton first, when
    it is installed, avoids it.
    """
    import importlib.util
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off stderr
    if "tensorflow" not in sys.modules and importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401
        except Exception:  # noqa: BLE001 - triton is optional; only its load order matters
            pass
    import keras

    return keras


def load_keras_file(path, name: str) -> Any:
    try:
        keras = import_keras()
    except ImportError:
        raise ModelLoadError(f"{name}: Keras models need tensorflow (pip install tensorflow-cpu)") from None
    try:
        return keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except ValueError as exc:
        text = _first_line(exc)
        if "safe_mode" in text or "lambda" in text.lower():
            raise ModelLoadError(
                f"{name}: the model holds Python code (a Lambda layer) that safe mode refuses to load; "
                "rebuild it without Lambda layers"
            ) from None
        raise ModelLoadError(f"{name}: cannot load the Keras model ({text})") from None
    except Exception as exc:  # noqa: BLE001 - any failure is the file's
        raise ModelLoadError(f"{name}: cannot load the Keras model ({_first_line(exc)})") from None


# -- ONNX --------------------------------------------------------------------------------
class OnnxTabularModel(TabularModel):
    """An ONNX graph run by onnxruntime on the CPU (covers scikit-learn models converted
    with skl2onnx). With several outputs the probability output is used: a float
    tensor, or a ZipMap sequence of {class: probability} dicts."""

    framework = "onnx"

    def __init__(self, model_bytes: bytes, name: str = "model",
                 labels: list[str] | None = None, output_kind: str | None = None) -> None:
        super().__init__(labels, output_kind)
        from ..loading_onnx import import_onnxruntime

        ort = import_onnxruntime()
        self.name, self.kind = name, "onnx"
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{name}: not a valid ONNX model ({_first_line(exc)})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise UnsupportedError(f"{name}: the ONNX graph has {len(inputs)} inputs; tabular rows need one")
        inp = inputs[0]
        if len(inp.shape) != 2:
            raise UnsupportedError(f"{name}: the ONNX input has shape {inp.shape}; tabular rows need (batch, features)")
        self._input = inp.name
        self._dtype = np.float64 if inp.type == "tensor(double)" else np.float32
        if inp.type not in ("tensor(float)", "tensor(double)"):
            raise UnsupportedError(f"{name}: the ONNX input is {inp.type}; only float inputs are supported")
        self._n_features = inp.shape[1] if isinstance(inp.shape[1], int) else None
        self._output, self._zipmap = _choose_onnx_output(self.session.get_outputs(), name)
        self._zipmap_keys: list | None = None
        self._finish_init()
        if labels is None:
            found = [str(k) for k in self._zipmap_keys] if self._zipmap_keys is not None else _onnx_class_labels(model_bytes)
            if found is not None and len(found) == self.num_outputs:
                self.labels = found

    @property
    def n_features(self) -> int | None:
        return self._n_features

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        try:
            (out,) = self.session.run([self._output], {self._input: x.astype(self._dtype)})
        except Exception as exc:  # noqa: BLE001
            raise UnsupportedError(f"{self.name}: the ONNX model failed on {x.shape[0]} rows ({_first_line(exc)})") from None
        if self._zipmap:
            if self._zipmap_keys is None:
                self._zipmap_keys = list(out[0].keys()) if len(out) else []
            return np.array([[d[k] for k in self._zipmap_keys] for d in out], np.float32)
        return np.asarray(out, np.float32)


def _choose_onnx_output(outputs, name: str) -> tuple[str, bool]:
    """The probability output: a 2-D float tensor (preferring 'prob' in its name), else
    a ZipMap seq(map); with a single output, that one."""
    if len(outputs) == 1:
        out = outputs[0]
        return out.name, out.type.startswith("seq(map")
    tensors = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)")]
    tensors.sort(key=lambda o: "prob" not in o.name.lower())
    if tensors:
        return tensors[0].name, False
    maps = [o for o in outputs if o.type.startswith("seq(map")]
    if maps:
        return maps[0].name, True
    raise UnsupportedError(f"{name}: no float or probability output among {[o.name for o in outputs]}")


def _onnx_class_labels(model_bytes: bytes) -> list[str] | None:
    """Class labels that skl2onnx stores on its classifier node (classlabels_*)."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        graph = onnx.load_from_string(model_bytes).graph
    except Exception:  # noqa: BLE001 - labels are a nicety; the session already loaded
        return None
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings" and attr.strings:
                return [s.decode() for s in attr.strings]
            if attr.name in ("classlabels_ints", "classlabels_int64s") and attr.ints:
                return [str(i) for i in attr.ints]
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
