"""ONNX adapter through onnxruntime: predictions only.

An ONNX graph runs without autograd here, so the adapter offers the ``predict``
capability alone: perturbation methods (LIME, SHAP Partition, occlusion) work,
gradient methods are not offered. Layout (NCHW or NHWC), input size and dtype are
read from the graph's input.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..loading_onnx import OnnxInput
from ..types import Capability, ImageSpec, InputError, UnsupportedError
from .base import ModelAdapter, first_line, fit_labels, is_probability, random_like


class OnnxAdapter(ModelAdapter):
    """Wraps an onnxruntime session whose single input is a float image batch."""

    framework = "onnx"
    kind = "onnx"

    def __init__(
        self,
        session: Any,
        input_info: OnnxInput,
        spec: ImageSpec,
        labels: list[str] | None = None,
        name: str = "model",
        batch_size: int = 16,
    ) -> None:
        self.session = session
        self.input = input_info
        self.name = name
        self.spec = spec
        self.default_batch_size = batch_size
        self._lock = threading.RLock()
        self._output_name = session.get_outputs()[0].name
        self._check_input()
        self._mean = spec.mean_array().reshape(1, 1, 1, -1)
        self._std = spec.std_array().reshape(1, 1, 1, -1)
        probe = self._probe_output()
        self._num_classes = int(probe.shape[1])
        self._output_kind = "probability" if is_probability(probe) else "logit"
        self.labels = fit_labels(labels, self._num_classes)

    def _check_input(self) -> None:
        info = self.input
        if info.channels is not None and info.channels != self.spec.channels:
            fix = "grayscale on" if info.channels == 1 else "grayscale off"
            raise InputError(
                f"{self.name} takes {info.channels}-channel images but the preprocessing feeds "
                f"{self.spec.channels}; turn {fix}"
            )
        if info.height is not None and info.width is not None and (info.height, info.width) != tuple(self.spec.size):
            raise InputError(
                f"{self.name} takes {info.height}x{info.width} images but the input size is set to "
                f"{self.spec.size[0]}x{self.spec.size[1]}; use --input-size {info.height},{info.width}"
            )

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({Capability.PREDICT})

    def _run(self, batch01: np.ndarray) -> np.ndarray:
        """[0, 1] NHWC images -> raw outputs N x classes, honouring a fixed batch size."""
        if batch01.ndim != 4 or batch01.shape[-1] != self.spec.channels:
            raise InputError(f"expected images N x H x W x {self.spec.channels}, got shape {batch01.shape}")
        x = (np.asarray(batch01, np.float32) - self._mean) / self._std
        if self.input.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x, dtype=self.input.dtype)
        fixed = self.input.batch
        if fixed is None:
            return self._session_run(x)
        outs = []
        for start in range(0, len(x), fixed):
            chunk = x[start : start + fixed]
            n = len(chunk)
            if n < fixed:  # pad a short last chunk to the graph's fixed batch
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
            outs.append(self._session_run(chunk)[:n])
        return np.concatenate(outs)

    def _session_run(self, x: np.ndarray) -> np.ndarray:
        try:
            (out,) = self.session.run([self._output_name], {self.input.name: x})
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise InputError(
                f"{self.name} rejected an input of shape {x.shape} ({self.input.layout}): "
                f"{first_line(exc)}. Check the input size and grayscale settings."
            ) from None
        out = np.asarray(out, np.float32)
        if out.ndim != 2:
            raise UnsupportedError(f"{self.name} returned shape {out.shape}; an image classifier must return N x classes")
        return out

    def _probe_output(self) -> np.ndarray:
        h, w = self.spec.size
        noise = np.random.default_rng(0).random((1, h, w, self.spec.channels), dtype=np.float32)
        with self._lock:
            return self._run(np.concatenate([np.full_like(noise, 0.5), noise]))

    def predict(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        outs = []
        with self._lock:
            for sl in self.iter_batches(len(batch), batch_size):
                out = self._run(batch[sl])
                outs.append(out if self._output_kind == "probability" else _softmax(out))
        if not outs:
            return np.zeros((0, self._num_classes), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)

    def logits_or_probs(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        with self._lock:
            outs = [self._run(batch[sl]) for sl in self.iter_batches(len(batch), batch_size)]
        return np.concatenate(outs).astype(np.float32, copy=False)

    # -- randomisation check ---------------------------------------------------------
    def _graph(self):
        """The session's ONNX graph and, in node order, each node's float weight
        initializers (BatchNormalization statistics left out)."""
        import onnx

        source = getattr(self.session, "_model_bytes", None) or getattr(self.session, "_model_path", None)
        if source is None:
            raise UnsupportedError(f"{self.name}: the ONNX graph behind this session is not available")
        proto = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
        inits = {t.name: t for t in proto.graph.initializer}
        layers: list[tuple[str, list[str]]] = []
        seen: set[str] = set()
        for i, node in enumerate(proto.graph.node):
            inputs = node.input[1:3] if node.op_type == "BatchNormalization" else node.input
            names = [n for n in inputs if n in inits and n not in seen
                     and inits[n].data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
                     and int(np.prod(inits[n].dims)) > 1]
            if names:
                seen.update(names)
                layers.append((node.name or f"{node.op_type}_{i}", names))
        return proto, layers

    def weight_layers(self) -> list[str]:
        try:
            return [name for name, _ in self._graph()[1]]
        except UnsupportedError:
            return []

    def randomized_copy(self, layers_from_top: int, seed: int) -> OnnxAdapter:
        import onnxruntime as ort
        from onnx import numpy_helper

        proto, layers = self._graph()
        chosen = {n for _, names in layers[::-1][: max(0, int(layers_from_top))] for n in names}
        rng = np.random.default_rng(seed)
        for tensor in proto.graph.initializer:
            if tensor.name in chosen:
                tensor.CopyFrom(numpy_helper.from_array(random_like(numpy_helper.to_array(tensor), rng), tensor.name))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(proto.SerializeToString(), sess_options=options,
                                       providers=["CPUExecutionProvider"])
        return OnnxAdapter(session, self.input, self.spec, self.labels, name=f"{self.name} (randomised)",
                           batch_size=self.default_batch_size)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)





