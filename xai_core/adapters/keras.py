"""Keras / TensorFlow adapter: Keras 3 models (functional, Sequential, nested) and
SavedModel signatures.

Only imported when a Keras model is used, so ``import xai_core`` stays light.
Keras works channels-last, like our canonical N x H x W x C images, so no
transposition is needed on the way in; layer activations are transposed to the
protocol's N x C x h x w on the way out.

Layer access works like PyTorch forward hooks: a layer's ``call`` is wrapped for
the duration of one eager forward pass under a ``GradientTape``, which records the
layer's output so the tape can differentiate the class score with respect to it.
This reaches layers inside nested models (a ``keras.applications`` base inside a
Sequential) without rebuilding any graph.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from ..loading_keras import SavedModelFunction, check_single_image_model, import_tensorflow
from ..types import Capability, ImageSpec, InputError, ModelLoadError, UnsupportedError
from .base import LayerInfo, LayerRecorder, ModelAdapter, first_line, fit_labels, is_probability

tf = import_tensorflow()
import keras  # noqa: E402 - after TensorFlow's quiet import

# shap's DeepExplainer swaps entries of TensorFlow's process-wide gradient registry
# while it runs; every gradient computation here takes this lock so none of them
# can see DeepLIFT's rules instead of the true gradients.
GRADIENT_REGISTRY_LOCK = threading.RLock()


def check_device(device: str | None) -> None:
    """'auto' and 'cpu' always work; 'cuda' needs a GPU that TensorFlow can see."""
    if device in (None, "", "auto", "cpu"):
        return
    if not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda")
    if not tf.config.list_physical_devices("GPU"):
        raise InputError(
            "--device cuda was asked for, but TensorFlow sees no GPU here (tensorflow-cpu "
            "is installed); use --device cpu for Keras models"
        )


def model_input_shape(model) -> tuple:
    """(None, H, W, C) of a Keras model or SavedModel signature, None where free."""
    if isinstance(model, SavedModelFunction):
        return tuple(model.input_shape)
    return tuple(model.inputs[0].shape)


class KerasAdapter(ModelAdapter):
    """Wraps a Keras classifier taking N x H x W x C normalised tensors.

    ``kind`` is 'model' (a Keras model: gradients and layers) or 'savedmodel'
    (a TensorFlow SavedModel signature: gradients, but no layers).
    """

    framework = "keras"
    gradient_registry_lock = GRADIENT_REGISTRY_LOCK

    def __init__(
        self,
        model,
        spec: ImageSpec,
        labels: list[str] | None = None,
        name: str = "model",
        kind: str = "model",
        device: str = "auto",
        batch_size: int = 16,
    ) -> None:
        check_device(device)
        if kind not in ("model", "savedmodel"):
            raise ModelLoadError(f"unknown Keras model kind {kind!r}")
        if kind == "model":
            check_single_image_model(model, name)
        self.kind = kind
        self.name = name
        self.spec = spec
        self.model = model
        self.default_batch_size = batch_size
        self._lock = threading.RLock()
        self._check_input(model_input_shape(model))
        self._mean = tf.constant(spec.mean_array().reshape(1, 1, 1, -1))
        self._std = tf.constant(spec.std_array().reshape(1, 1, 1, -1))
        self._paths: dict[str, object] | None = None
        self._graph_forward = tf.function(self._forward, reduce_retracing=True)
        probe = self._probe_output()
        self._num_classes = int(probe.shape[1])
        self._output_kind = "probability" if is_probability(probe) else "logit"
        self.labels = fit_labels(labels, self._num_classes)

    def _check_input(self, shape: tuple) -> None:
        _, h, w, c = shape
        if c is not None and c not in (1, 3) and shape[1] in (1, 3):
            raise ModelLoadError(
                f"{self.name} takes channels-first input {shape}; only channels-last "
                "(N x H x W x C) Keras models are supported"
            )
        if c is not None and c not in (1, 3):
            raise ModelLoadError(
                f"{self.name} takes {c}-channel images; only 1 (grayscale) or 3 (RGB) channels are supported"
            )
        if c is not None and c != self.spec.channels:
            fix = "grayscale on" if c == 1 else "grayscale off"
            raise InputError(
                f"{self.name} takes {c}-channel images but the preprocessing feeds "
                f"{self.spec.channels}; turn {fix}"
            )
        if h is not None and w is not None and (h, w) != tuple(self.spec.size):
            raise InputError(
                f"{self.name} takes {h}x{w} images but the input size is set to "
                f"{self.spec.size[0]}x{self.spec.size[1]}; use --input-size {h},{w}"
            )

    # -- basic facts -----------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[str]:
        caps = {Capability.PREDICT, Capability.INPUT_GRADIENTS}
        if self.kind == "model":
            caps.add(Capability.LAYER_GRADIENTS)
            caps.add(Capability.DEEP_EXPLAINER)
        return frozenset(caps)

    # -- tensors ---------------------------------------------------------------------
    def _to_input(self, batch: np.ndarray):
        if batch.ndim != 4 or batch.shape[-1] != self.spec.channels:
            raise InputError(
                f"expected images N x H x W x {self.spec.channels}, got shape {batch.shape}"
            )
        return tf.convert_to_tensor(np.asarray(batch, dtype=np.float32))

    def _forward(self, x01):
        """[0, 1] images -> raw outputs N x classes (float32)."""
        x = (x01 - self._mean) / self._std
        if self.kind == "savedmodel":
            out = self.model(x)
        else:
            out = self.model(x, training=False)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return tf.cast(out, tf.float32)

    def _call(self, x01, graph: bool = True):
        try:
            out = self._graph_forward(x01) if graph else self._forward(x01)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise InputError(
                f"{self.name} rejected an input of shape {tuple(x01.shape)} (N, H, W, C): "
                f"{first_line(exc)}. Check the input size and grayscale settings."
            ) from None
        if out.shape.rank != 2:
            raise UnsupportedError(
                f"{self.name} returned shape {tuple(out.shape)}; an image classifier must return N x classes"
            )
        return out

    def _pick(self, out, target: int | None) -> int:
        """None -> the first image's predicted class (one pass gives target and gradients)."""
        if target is None:
            return int(np.argmax(out[0].numpy()))
        if not 0 <= target < out.shape[1]:
            raise InputError(f"target class {target} is out of range (0..{out.shape[1] - 1})")
        return int(target)

    def _scores(self, out, target: int):
        """The explained score: the target's logit, or its probability for softmax models."""
        return out[:, target]

    def _probs(self, out):
        return out if self._output_kind == "probability" else tf.nn.softmax(out, axis=1)

    def _probe_output(self) -> np.ndarray:
        h, w = self.spec.size
        rng = np.random.default_rng(0)
        noise = rng.random((1, h, w, self.spec.channels), dtype=np.float32)
        batch = np.concatenate([np.full_like(noise, 0.5), noise])
        with self._lock:
            return self._call(self._to_input(batch)).numpy()

    # -- primitives ------------------------------------------------------------------
    def predict(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        outs = []
        with self._lock:
            for sl in self.iter_batches(len(batch), batch_size):
                outs.append(self._probs(self._call(self._to_input(batch[sl]))).numpy())
        if not outs:
            return np.zeros((0, self._num_classes), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)

    def logits_or_probs(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Raw model outputs (the scores gradients are taken of)."""
        with self._lock:
            outs = [self._call(self._to_input(batch[sl])).numpy()
                    for sl in self.iter_batches(len(batch), batch_size)]
        return np.concatenate(outs).astype(np.float32, copy=False)

    def input_gradients(
        self, batch: np.ndarray, target: int | None, batch_size: int | None = None,
        return_probs: bool = False,
    ):
        """(gradients N x H x W x C, scores N[, probabilities N x classes]);
        ``target=None`` takes the first image's predicted class."""
        grads, scores, probs = [], [], []
        with self._lock, GRADIENT_REGISTRY_LOCK:
            for sl in self.iter_batches(len(batch), batch_size):
                x = self._to_input(batch[sl])
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    out = self._call(x)
                    target = self._pick(out, target)
                    score = self._scores(out, target)
                    total = tf.reduce_sum(score)
                g = tape.gradient(total, x)
                if g is None:
                    raise UnsupportedError(f"{self.name}: the output does not depend on the input")
                grads.append(g.numpy())
                scores.append(score.numpy())
                if return_probs:
                    probs.append(self._probs(out).numpy())
        result = np.concatenate(grads).astype(np.float32), np.concatenate(scores)
        return (*result, np.concatenate(probs)) if return_probs else result

    def layer_activations_and_gradients(
        self, batch: np.ndarray, target: int | None, layer: str, return_probs: bool = False
    ):
        """(activations N x C x h x w, or N x units, their gradients, scores N[,
        probabilities]) at ``layer``; ``target=None`` takes the first image's
        predicted class."""
        with self._lock, GRADIENT_REGISTRY_LOCK:
            tape, _, out, score, act, _ = self._taped_pass(batch, target, layer)
            g = tape.gradient(score, act)
        if g is None:
            raise UnsupportedError(f"the score of {self.name} does not depend on layer {layer!r}")
        result = (_channels_first(act.numpy(), layer), _channels_first(g.numpy(), layer), score.numpy())
        return (*result, self._probs(out).numpy()) if return_probs else result

    def neuron_gradients(self, batch: np.ndarray, target: int, layer: str, neuron: int):
        with self._lock, GRADIENT_REGISTRY_LOCK:
            tape, x, _, score, act, unit = self._taped_pass(batch, target, layer, neuron)
            d_score = tape.gradient(score, act)
            d_input = tape.gradient(unit, x)
        if d_score is None or d_input is None:
            raise UnsupportedError(f"the score of {self.name} does not depend on layer {layer!r}")
        d_unit = _channels_first(d_score.numpy(), layer).reshape(len(batch), -1)[:, neuron]
        return d_input.numpy().astype(np.float32), d_unit.astype(np.float32)

    def _taped_pass(self, batch: np.ndarray, target: int | None, layer: str, neuron: int | None = None):
        """One eager forward pass under a persistent tape that records ``layer``'s
        output: (tape, input, outputs, target scores N, layer output, the
        ``neuron``-th unit of it (flat, C x h x w order) or None). Gradients of the
        scores and the unit are of their sums over the batch. Call with the locks held."""
        found = self._layer(layer)
        captured: list = []
        unit = None
        x = self._to_input(batch)
        with tf.GradientTape(persistent=True) as tape, _recording(found, captured.append):
            tape.watch(x)
            out = self._call(x, graph=False)
            score = self._scores(out, self._pick(out, target))
            if not captured:
                raise UnsupportedError(f"layer {layer!r} was not used by the forward pass")
            act = captured[-1]
            if neuron is not None:
                units = _flat_channels_first(act)
                if not 0 <= neuron < units.shape[1]:
                    raise InputError(f"neuron {neuron} is out of range; layer {layer!r} has "
                                     f"{units.shape[1]} units (0..{units.shape[1] - 1})")
                unit = units[:, neuron]
        return tape, x, out, score, act, unit

    def dense_weights(self, layer: str) -> np.ndarray:
        found = self._layer(layer)
        kernel = getattr(found, "kernel", None)
        if not isinstance(found, keras.layers.Dense) or kernel is None:
            raise UnsupportedError(f"layer {layer!r} is a {type(found).__name__}, not a Dense layer")
        return np.asarray(kernel.numpy(), np.float32).T

    def deep_explainer_model(self, target: int):
        """A Keras model from [0, 1] images to the one explained score (N x 1): the
        normalisation as a layer, this model, then the target's column (the logit, or
        the probability for softmax models), for shap's DeepExplainer."""
        if self.kind != "model":
            raise UnsupportedError(f"{self.name} is a SavedModel; SHAP DeepExplainer needs a Keras model")
        if not 0 <= target < self._num_classes:
            raise InputError(f"target class {target} is out of range (0..{self._num_classes - 1})")
        h, w = self.spec.size
        inputs = keras.Input((h, w, self.spec.channels), name="image01")
        mean, std = self.spec.mean_array(), self.spec.std_array()
        x = keras.layers.Rescaling(1.0 / std, offset=-mean / std, name="normalise")(inputs)
        out = _TakeColumn(target, name="target_score")(self.model(x, training=False))
        return keras.Model(inputs, out, name=f"{self.model.name}_target{target}")

    # -- layers ----------------------------------------------------------------------
    def _all_layers(self) -> dict[str, object]:
        """Every layer by path ('outer/inner' inside nested models), in definition order."""
        if self._paths is None:
            self._paths = OrderedDict(_walk(self.model, "")) if self.kind == "model" else OrderedDict()
        return self._paths

    def _layer(self, layer: str):
        return self._all_layers()[self._layer_name(layer)]

    def _layer_name(self, layer: str) -> str:
        if self.kind == "savedmodel":
            raise UnsupportedError(
                f"{self.name} is a TensorFlow SavedModel, whose layers are not visible; save "
                "the model as a .keras file to use Grad-CAM"
            )
        paths = self._all_layers()
        if layer in paths:
            return layer
        # a bare layer name is enough when it is unique across nested models
        matches = [p for p in paths if p.rsplit("/", 1)[-1] == layer]
        if len(matches) == 1:
            return matches[0]
        if any(p == layer for p in self._layer_indices().values()):
            raise InputError(f"layer {layer!r} of {self.name} is its input layer; choose a later one")
        names = ", ".join(info.name for info in self.layers()[-8:])
        raise InputError(f"no layer named {layer!r} in {self.name}; candidates: {names}")

    def _layer_indices(self) -> dict[str, str]:
        """'i' -> the layer ``model.layers[i]`` (input layers included, as Keras
        counts them); 'i/j' -> layer j of the nested model at i."""
        if self.kind != "model":
            return {}
        return dict(_indexed(self.model, "", ""))

    def _find_layers(self) -> list[LayerInfo]:
        recorder = LayerRecorder(channels_last=True)
        paths = self._all_layers()

        def record(path: str, layer):
            def on_output(out):
                recorder.record(path, type(layer).__name__, out)

            return on_output

        h, w = self.spec.size
        x = tf.fill((1, h, w, self.spec.channels), 0.5)
        with self._lock, _recording_many([(layer, record(p, layer)) for p, layer in paths.items()]):
            self._call(x, graph=False)
        return recorder.found({name: i for i, name in self._layer_indices().items()})


def _channels_first(array: np.ndarray, layer: str) -> np.ndarray:
    """N x h x w x C -> N x C x h x w (the protocol's layout); N x units stays."""
    if array.ndim == 4:
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2), dtype=np.float32)
    if array.ndim == 2:
        return np.asarray(array, np.float32)
    raise UnsupportedError(
        f"layer {layer!r} outputs shape {array.shape}; a spatial map or a vector of units is needed"
    )


def _flat_channels_first(tensor):
    """N x h x w x C -> N x (C*h*w) in C x h x w order; N x units stays."""
    if tensor.shape.rank == 4:
        tensor = tf.transpose(tensor, (0, 3, 1, 2))
    return tf.reshape(tensor, (tf.shape(tensor)[0], -1))


def _indexed(model, prefix: str, path: str) -> Iterator[tuple[str, str]]:
    for i, layer in enumerate(getattr(model, "layers", [])):
        yield f"{prefix}{i}", f"{path}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from _indexed(layer, f"{prefix}{i}/", f"{path}{layer.name}/")


class _TakeColumn(keras.layers.Layer):
    """N x classes -> N x 1, the ``column``-th class. A layer (not a slice op) so that
    shap's DeepExplainer, which reads ``model.layers[-1].output``, sees one output."""

    def __init__(self, column: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.column = int(column)

    def call(self, x):
        return x[:, self.column : self.column + 1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def _walk(model, prefix: str) -> Iterator[tuple[str, object]]:
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = f"{prefix}{layer.name}"
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer, path + "/")


@contextmanager
def _recording(layer, on_output):
    with _recording_many([(layer, on_output)]):
        yield


@contextmanager
def _recording_many(pairs):
    """Wrap each layer's ``call`` so that ``on_output`` sees its output (eager only)."""
    patched = []
    try:
        for layer, on_output in pairs:
            original = layer.call

            def wrapper(*args, _original=original, _on=on_output, **kwargs):
                out = _original(*args, **kwargs)
                first = out[0] if isinstance(out, (tuple, list)) and out else out
                _on(first)
                return out

            layer.call = wrapper
            patched.append(layer)
        yield
    finally:
        for layer in patched:
            try:
                del layer.call
            except AttributeError:
                pass





