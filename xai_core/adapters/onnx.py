"""ONNX adapter through onnxruntime: predictions only.

An ONNX graph runs without autograd here, so the adapter offers the ``predict``
capability alone: perturbation methods (LIME, SHAP Partition, occlusion, Kernel
SHAP) work, gradient methods are not offered. Every graph input is an image
(layout NCHW or NHWC, size and dtype read from the graph) or feature rows (N x F).
With several outputs (scikit-learn models converted with skl2onnx give a label and
probabilities) the probability output is used: a float tensor, or a ZipMap
sequence of {class: probability} dicts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from xai_core.adapters.base import ModelAdapter, first_line, random_like, softmax
from xai_core.adapters.runtime import OnnxInput
from xai_core.types import (
    Capability,
    ImageSpec,
    InputError,
    InputSpec,
    UnsupportedError,
    VectorSpec,
    as_input_specs,
)


def onnx_input_specs(infos: Sequence[OnnxInput], spec: InputSpec | Sequence[InputSpec]) -> tuple[InputSpec, ...]:
    """One spec per graph input: the given specs when there are as many, else the
    first image spec for every image input and a feature vector for every row input."""
    given = as_input_specs(spec)
    if len(given) == len(infos):
        specs = [replace(g, size=i.width) if isinstance(g, VectorSpec) and g.size is None else g
                 for g, i in zip(given, infos, strict=True)]
        if len(infos) > 1:
            specs = [replace(s, name=i.name) if s.name in ("image", "features") else s
                     for s, i in zip(specs, infos, strict=True)]
        return as_input_specs(specs)
    template = next((g for g in given if isinstance(g, ImageSpec)), ImageSpec())
    specs: list[InputSpec] = []
    for info in infos:
        if info.layout == "NF":
            specs.append(VectorSpec(size=info.width, name=info.name))
        else:
            size = (info.height, info.width) if info.height and info.width else template.size
            specs.append(replace(template, size=size, name=info.name))
    return as_input_specs(specs)


class OnnxAdapter(ModelAdapter):
    """Wraps an onnxruntime session over float image and/or feature-row inputs."""

    framework = "onnx"
    kind = "onnx"

    def __init__(
        self,
        session: Any,
        input_info: OnnxInput | Sequence[OnnxInput],
        spec: InputSpec | Sequence[InputSpec],
        labels: list[str] | None = None,
        name: str = "model",
        batch_size: int = 16,
        output_kind: str | None = None,
        class_labels: list[str] | None = None,
    ) -> None:
        self.session = session
        self.input_infos = [input_info] if isinstance(input_info, OnnxInput) else list(input_info)
        self.input = self.input_infos[0]
        self.name = name
        self.inputs = onnx_input_specs(self.input_infos, spec)
        self.default_batch_size = batch_size
        self._lock = threading.RLock()
        self._output_name, self._zipmap = choose_output(session.get_outputs(), name)
        self._zipmap_keys: list | None = None
        for info, s in zip(self.input_infos, self.inputs, strict=True):
            self._check_input(info, s)
        fixed = {i.batch for i in self.input_infos} - {None}
        self.max_batch = None  # fixed batches are padded in _run
        self._fixed_batch = min(fixed) if fixed else None
        with self._lock:
            probe = self._run(self.probe_batch())
        if labels is None:
            found = [str(k) for k in self._zipmap_keys] if self._zipmap_keys is not None else class_labels
            labels = found if found is not None and len(found) == probe.shape[1] else None
        self._settle_outputs(probe, labels, output_kind)

    def _check_input(self, info: OnnxInput, spec: InputSpec) -> None:
        if info.layout == "NF":
            if not isinstance(spec, VectorSpec):
                raise InputError(f"{self.name}: input {info.name!r} takes feature rows, not images")
            if info.width is not None and spec.size is not None and info.width != spec.size:
                raise InputError(f"{self.name} takes {info.width} features at {info.name!r}, not {spec.size}")
            return
        if not isinstance(spec, ImageSpec):
            raise InputError(f"{self.name}: input {info.name!r} takes images, not feature rows")
        if info.channels is not None and info.channels != spec.channels:
            fix = "grayscale on" if info.channels == 1 else "grayscale off"
            raise InputError(
                f"{self.name} takes {info.channels}-channel images but the preprocessing feeds "
                f"{spec.channels}; turn {fix}"
            )
        if info.height is not None and info.width is not None and (info.height, info.width) != tuple(spec.size):
            raise InputError(
                f"{self.name} takes {info.height}x{info.width} images but the input size is set to "
                f"{spec.size[0]}x{spec.size[1]}; use --input-size {info.height},{info.width}"
            )

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({Capability.PREDICT})

    def _feed(self, parts: list[np.ndarray]) -> dict[str, np.ndarray]:
        feed = {}
        for info, spec, part in zip(self.input_infos, self.inputs, parts, strict=True):
            x = np.asarray(part, np.float32)
            if isinstance(spec, ImageSpec):
                x = (x - spec.mean_array().reshape(1, 1, 1, -1)) / spec.std_array().reshape(1, 1, 1, -1)
                if info.layout == "NCHW":
                    x = x.transpose(0, 3, 1, 2)
            feed[info.name] = np.ascontiguousarray(x, dtype=info.dtype)
        return feed

    def _run(self, parts: list[np.ndarray]) -> np.ndarray:
        """Canonical inputs -> raw outputs N x K, honouring a fixed batch size."""
        fixed = self._fixed_batch
        if fixed is None:
            return self._session_run(self._feed(parts))
        outs = []
        n = len(parts[0])
        for start in range(0, n, fixed):
            chunk = [p[start : start + fixed] for p in parts]
            m = len(chunk[0])
            if m < fixed:  # pad a short last chunk to the graph's fixed batch
                chunk = [np.concatenate([c, np.repeat(c[-1:], fixed - m, axis=0)]) for c in chunk]
            outs.append(self._session_run(self._feed(chunk))[:m])
        return np.concatenate(outs)

    def _session_run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        with self._lock:
            try:
                (out,) = self.session.run([self._output_name], feed)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
                shapes = ", ".join(f"{k} {v.shape}" for k, v in feed.items())
                raise InputError(
                    f"{self.name} rejected an input of shape {shapes} ({self.input.layout}): "
                    f"{first_line(exc)}. Check the input size and grayscale settings."
                ) from None
        if self._zipmap:
            if self._zipmap_keys is None:
                self._zipmap_keys = list(out[0].keys()) if len(out) else []
            return np.array([[d[k] for k in self._zipmap_keys] for d in out], np.float32)
        out = np.asarray(out, np.float32)
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2:
            raise UnsupportedError(f"{self.name} returned shape {out.shape}; a classifier must return N x classes")
        return out

    # -- randomisation check ---------------------------------------------------------
    def _graph(self):
        """The session's ONNX graph and, in node order, each node's float weight
        initializers (BatchNormalization statistics left out)."""
        import onnx

        source = getattr(self.session, "_model_bytes", None) or getattr(self.session, "_model_path", None)
        if source is None:
            raise UnsupportedError(f"{self.name}: the ONNX graph behind this session is not available")
        try:
            proto = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
        except OSError as exc:
            raise UnsupportedError(f"{self.name}: the ONNX file behind this model is no longer readable "
                                   f"({first_line(exc)}); open the model again to randomise its weights") from None
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
        return OnnxAdapter(session, self.input_infos, self.inputs, self.labels, name=f"{self.name} (randomised)",
                           batch_size=self.default_batch_size, output_kind=self._output_kind)


def choose_output(outputs, name: str) -> tuple[str, bool]:
    """(output name, is a ZipMap): the only output, else a 2-D float tensor
    (preferring 'prob' in its name), else a ZipMap seq(map)."""
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


def onnx_class_labels(model_bytes: bytes) -> list[str] | None:
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


__all__ = ["OnnxAdapter", "choose_output", "onnx_class_labels", "onnx_input_specs", "softmax"]
