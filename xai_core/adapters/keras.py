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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from xai_core.adapters.base import ModelAdapter, first_line, random_like
from xai_core.adapters.keras_tokens import token_layouts
from xai_core.adapters.layers import LayerInfo, LayerRecorder
from xai_core.adapters.layouts import LayerLayout, not_a_map, vector_layout
from xai_core.adapters.runtime import SavedModelFunction, check_model_io, import_tensorflow
from xai_core.types import (
    Capability,
    ImageSpec,
    InputError,
    InputSpec,
    ModelLoadError,
    UnsupportedError,
    VectorSpec,
    as_input_specs,
)

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
    """(None, H, W, C) of a Keras model's first input or a SavedModel signature, None where free."""
    if isinstance(model, SavedModelFunction):
        return tuple(model.input_shape)
    return tuple(model.inputs[0].shape)


def model_input_shapes(model) -> list[tuple]:
    """The shape of every input of a Keras model (one for a SavedModel signature)."""
    if isinstance(model, SavedModelFunction):
        return [tuple(model.input_shape)]
    return [tuple(t.shape) for t in model.inputs]


def keras_input_specs(model, spec: InputSpec | Sequence[InputSpec]) -> tuple[InputSpec, ...]:
    """One spec per model input. Given as many specs as inputs, those; given one
    image spec for a model with several inputs, every 4-D input gets it (at its own
    size, same preprocessing) and every 2-D input a feature vector of its width.
    Names come from the model's input tensors."""
    shapes = model_input_shapes(model)
    given = as_input_specs(spec)
    names = [str(getattr(t, "name", f"input_{i}")).split(":")[0] for i, t in
             enumerate(getattr(model, "inputs", None) or [None])] if not isinstance(model, SavedModelFunction) else ["image"]
    if len(given) == len(shapes) and len(shapes) == 1:
        specs = list(given)
        if isinstance(specs[0], VectorSpec) and specs[0].size is None and len(shapes[0]) == 2:
            specs[0] = replace(specs[0], size=shapes[0][1])
        return tuple(specs)
    if len(given) == len(shapes):
        return as_input_specs(given)
    template = next((g for g in given if isinstance(g, ImageSpec)), ImageSpec())
    specs: list[InputSpec] = []
    for name, shape in zip(names, shapes, strict=True):
        if len(shape) == 4:
            h, w = shape[1], shape[2]
            size = (h, w) if h is not None and w is not None else template.size
            specs.append(replace(template, size=size, name=name))
        elif len(shape) == 2:
            specs.append(VectorSpec(size=shape[1], name=name))
        else:
            raise ModelLoadError(f"input {name!r} has shape {shape}; inputs must be images (N x H x W x C) or rows (N x F)")
    return as_input_specs(specs)


class KerasAdapter(ModelAdapter):
    """Wraps a Keras model taking one tensor per input spec: N x H x W x C
    normalised images, N x F feature rows (a list of them for several inputs).

    ``kind`` is 'model' (a Keras model: gradients and layers) or 'savedmodel'
    (a TensorFlow SavedModel signature: gradients, but no layers).
    """

    framework = "keras"
    gradient_registry_lock = GRADIENT_REGISTRY_LOCK

    def __init__(
        self,
        model,
        spec: InputSpec | Sequence[InputSpec],
        labels: list[str] | None = None,
        name: str = "model",
        kind: str = "model",
        device: str = "auto",
        batch_size: int = 16,
        output_kind: str | None = None,
    ) -> None:
        check_device(device)
        if kind not in ("model", "savedmodel"):
            raise ModelLoadError(f"unknown Keras model kind {kind!r}")
        if kind == "model":
            check_model_io(model, name)
        self.kind = kind
        self.name = name
        self.model = model
        self.inputs = keras_input_specs(model, spec)
        self.default_batch_size = batch_size
        self._lock = threading.RLock()
        for s, shape in zip(self.inputs, model_input_shapes(model), strict=True):
            self._check_input(s, shape)
        # numpy, so a traced _forward holds them as constants (the fast path's ONNX export needs that)
        self._norm = {
            i: (s.mean_array().reshape(1, 1, 1, -1), s.std_array().reshape(1, 1, 1, -1))
            for i, s in enumerate(self.inputs) if isinstance(s, ImageSpec)
        }
        self._paths: dict[str, object] | None = None
        self._eager = False
        self._graph_forward = tf.function(self._forward, reduce_retracing=True)
        self.max_batch = self._fixed_batch(model)
        with self._lock:
            probe = np.concatenate([self._call(self._tensors(part)).numpy() for part in self._probe_parts()])
        self._settle_outputs(probe, labels, output_kind)

    def _fixed_batch(self, model) -> int | None:
        """1 for a SavedModel signature traced for one image a call (then every batch is
        run an item at a time), None where the batch is free."""
        batch = model_input_shape(model)[0] if self.kind == "savedmodel" else None
        if batch is None or batch == 1:
            return batch
        raise ModelLoadError(f"{self.name}: its signature takes exactly {batch} items a call; save it with a "
                             "free batch dimension (None) or for one item")

    def _probe_parts(self) -> list[list[np.ndarray]]:
        """The probe pair as one batch, or item by item for a one-item signature."""
        probe = self.probe_batch()
        return [probe] if self.max_batch != 1 else [[p[i : i + 1] for p in probe] for i in range(2)]

    def _check_input(self, spec: InputSpec, shape: tuple) -> None:
        if isinstance(spec, VectorSpec):
            if len(shape) != 2:
                raise ModelLoadError(f"{self.name}: input {spec.name!r} has shape {shape}; feature rows need (batch, features)")
            if shape[1] is not None and spec.size is not None and shape[1] != spec.size:
                raise InputError(f"{self.name} takes {shape[1]} features at {spec.name!r}, not {spec.size}")
            return
        if len(shape) != 4:
            raise ModelLoadError(f"{self.name} takes input of shape {shape}; an image input is N x H x W x C")
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
        if c is not None and c != spec.channels:
            fix = "grayscale on" if c == 1 else "grayscale off"
            raise InputError(
                f"{self.name} takes {c}-channel images but the preprocessing feeds "
                f"{spec.channels}; turn {fix}"
            )
        if h is not None and w is not None and (h, w) != tuple(spec.size):
            raise InputError(
                f"{self.name} takes {h}x{w} images but the input size is set to "
                f"{spec.size[0]}x{spec.size[1]}; use --input-size {h},{w}"
            )

    # -- basic facts -----------------------------------------------------------------
    targets_per_row = True

    def _row_scores(self, out, targets: np.ndarray):
        if isinstance(out, np.ndarray):
            return super()._row_scores(out, targets)
        if self._output_kind == "sigmoid":
            return tf.where(tf.constant(targets == 1), out[:, 0], 1 - out[:, 0])
        return tf.gather(out, tf.constant(targets, tf.int64), axis=1, batch_dims=1)

    @property
    def capabilities(self) -> frozenset[str]:
        caps = {Capability.PREDICT, Capability.INPUT_GRADIENTS}
        if self.kind == "model":
            caps.add(Capability.LAYER_GRADIENTS)
            caps.add(Capability.DEEP_EXPLAINER)
        return frozenset(caps)

    # -- tensors ---------------------------------------------------------------------
    def _tensors(self, parts: list[np.ndarray]) -> list:
        return [tf.convert_to_tensor(np.asarray(p, dtype=np.float32)) for p in parts]

    def _forward(self, xs01):
        """Canonical tensors (a list, one per input) -> raw outputs N x K (float32)."""
        xs = [(x - self._norm[i][0]) / self._norm[i][1] if i in self._norm else x for i, x in enumerate(xs01)]
        feed = xs[0] if len(xs) == 1 else list(xs)
        out = self.model(feed) if self.kind == "savedmodel" else self.model(feed, training=False)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if isinstance(out, dict):
            out = next(iter(out.values()))
        out = tf.cast(out, tf.float32)
        if out.shape.rank == 1:
            out = out[:, None]
        return out

    @contextmanager
    def _without_final_softmax(self):
        """The last layer's softmax activation is swapped for a linear one (a Softmax
        layer passes its input through) while the model runs eagerly."""
        layer = self.model.layers[-1] if self.kind == "model" and self.model.layers else None
        while isinstance(layer, keras.Model) and layer.layers:
            layer = layer.layers[-1]
        activation = getattr(layer, "activation", None)
        if activation is not None and getattr(activation, "__name__", "") == "softmax":
            layer.activation = keras.activations.linear
            restore = lambda: setattr(layer, "activation", activation)  # noqa: E731
        elif isinstance(layer, keras.layers.Softmax):
            layer.call = lambda inputs, *args, **kwargs: inputs
            restore = lambda: delattr(layer, "call")  # noqa: E731
        else:
            raise UnsupportedError(
                f"{self.name} does not end in a softmax layer or activation; explain the probability"
            )
        self._eager = True  # the traced graph holds the softmax
        try:
            yield
        finally:
            restore()
            self._eager = False

    def _call(self, xs01: list, graph: bool = True):
        graph = graph and not self._eager
        try:
            out = self._graph_forward(xs01) if graph else self._forward(xs01)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            shapes = ", ".join(str(tuple(x.shape)) for x in xs01)
            raise InputError(
                f"{self.name} rejected an input of shape {shapes} (N, H, W, C): "
                f"{first_line(exc)}. Check the input size and grayscale settings."
            ) from None
        if out.shape.rank != 2:
            raise UnsupportedError(
                f"{self.name} returned shape {tuple(out.shape)}; a classifier must return N x classes"
            )
        return out

    # -- primitives ------------------------------------------------------------------
    def _run(self, parts: list[np.ndarray]) -> np.ndarray:
        with self._lock:
            return self._call(self._tensors(parts)).numpy()

    def input_gradients(
        self, batch, target: int | None, batch_size: int | None = None,
        return_probs: bool = False,
    ):
        """(gradients shaped like ``batch``, scores N[, probabilities N x classes]);
        ``target=None`` takes the first item's predicted class."""
        parts = self.split(batch)
        grads: list[list[np.ndarray]] = [[] for _ in parts]
        scores, raws = [], []
        with self._lock, GRADIENT_REGISTRY_LOCK:
            for sl in self.iter_batches(len(parts[0]), batch_size):
                xs = self._tensors([p[sl] for p in parts])
                with tf.GradientTape() as tape:
                    for x in xs:
                        tape.watch(x)
                    out = self._call(xs)
                    target = self._pick(out.numpy(), target)
                    score = self._scores(out, target)
                    total = tf.reduce_sum(score)
                gs = tape.gradient(total, xs)
                if all(g is None for g in gs):
                    raise UnsupportedError(f"{self.name}: the output does not depend on the input")
                for i, (g, x) in enumerate(zip(gs, xs, strict=True)):
                    grads[i].append(np.zeros(x.shape, np.float32) if g is None else g.numpy())
                scores.append(score.numpy())
                raws.append(out.numpy())
        result = self.join([np.concatenate(g).astype(np.float32) for g in grads]), np.concatenate(scores)
        return (*result, self.probabilities(np.concatenate(raws))) if return_probs else result

    def layer_activations_and_gradients(
        self, batch, target: int | None, layer: str, return_probs: bool = False
    ):
        """(activations N x C x h x w, or N x units, their gradients, scores N[,
        probabilities]) at ``layer``; ``target=None`` takes the first image's
        predicted class."""
        layout = self.layer_layout(layer)
        if not (layout.is_map or layout.kind == "vector"):
            raise layout.refusal(layer, "a method at a layer", "a map or a vector of units")
        with self._lock, GRADIENT_REGISTRY_LOCK:
            tape, _, out, score, act, _ = self._taped_pass(batch, target, layer)
            g = tape.gradient(score, act)
        if g is None:
            raise UnsupportedError(f"the score of {self.name} does not depend on layer {layer!r}")
        result = (_canonical(act.numpy(), layout), _canonical(g.numpy(), layout), score.numpy())
        return (*result, self.probabilities(out.numpy())) if return_probs else result

    def neuron_gradients(self, batch: np.ndarray, target: int, layer: str, neuron: int):
        with self._lock, GRADIENT_REGISTRY_LOCK:
            tape, xs, _, score, act, unit = self._taped_pass(batch, target, layer, neuron)
            d_score = tape.gradient(score, act)
            d_input = tape.gradient(unit, xs[0])
        if d_score is None or d_input is None:
            raise UnsupportedError(f"the score of {self.name} does not depend on layer {layer!r}")
        d_unit = _canonical(d_score.numpy(), self.layer_layout(layer)).reshape(len(d_score), -1)[:, neuron]
        return d_input.numpy().astype(np.float32), d_unit.astype(np.float32)

    def _taped_pass(self, batch, target: int | None, layer: str, neuron: int | None = None):
        """One eager forward pass under a persistent tape that records ``layer``'s
        output: (tape, input tensors, outputs, target scores N, layer output, the
        ``neuron``-th unit of it (flat, C x h x w order) or None). Gradients of the
        scores and the unit are of their sums over the batch. Call with the locks held."""
        found = self._layer(layer)
        captured: list = []
        unit = None
        xs = self._tensors(self.split(batch))
        with tf.GradientTape(persistent=True) as tape, _recording(found, captured.append):
            for x in xs:
                tape.watch(x)
            out = self._call(xs, graph=False)
            score = self._scores(out, self._pick(out.numpy(), target))
            if not captured:
                raise UnsupportedError(f"layer {layer!r} was not used by the forward pass")
            act = captured[-1]
            if neuron is not None:
                units = _flat_canonical(act, self.layer_layout(layer))
                if not 0 <= neuron < units.shape[1]:
                    raise InputError(f"neuron {neuron} is out of range; layer {layer!r} has "
                                     f"{units.shape[1]} units (0..{units.shape[1] - 1})")
                unit = units[:, neuron]
        return tape, xs, out, score, act, unit

    def dense_weights(self, layer: str) -> np.ndarray:
        found = self._layer(layer)
        kernel = getattr(found, "kernel", None)
        if not isinstance(found, keras.layers.Dense) or kernel is None:
            raise UnsupportedError(f"layer {layer!r} is a {type(found).__name__}, not a Dense layer")
        return np.asarray(kernel.numpy(), np.float32).T

    def deep_explainer_model(self, target: int):
        """A Keras model from canonical inputs ([0, 1] images, raw rows) to the one
        explained score (N x 1): the normalisation as a layer, this model, then the
        target's score (the logit, the probability for softmax models, p or 1 - p for
        a sigmoid output), for shap's DeepExplainer."""
        if self.kind != "model":
            raise UnsupportedError(f"{self.name} is a SavedModel; SHAP DeepExplainer needs a Keras model")
        if not 0 <= target < self._num_classes:
            raise InputError(f"target class {target} is out of range (0..{self._num_classes - 1})")
        inputs, fed = [], []
        for spec in self.inputs:
            if isinstance(spec, ImageSpec):
                x_in = keras.Input(spec.shape, name=f"{spec.name}01")
                mean, std = spec.mean_array(), spec.std_array()
                fed.append(keras.layers.Rescaling(1.0 / std, offset=-mean / std, name=f"normalise_{spec.name}")(x_in))
            else:
                x_in = keras.Input((spec.size,), name=f"{spec.name}_rows")
                fed.append(x_in)
            inputs.append(x_in)
        out = self.model(fed[0] if len(fed) == 1 else fed, training=False)
        sigmoid = self._output_kind == "sigmoid"
        out = _TakeColumn(0 if sigmoid else target, flip=sigmoid and target == 0, name="target_score")(out)
        return keras.Model(inputs[0] if len(inputs) == 1 else inputs, out, name=f"{self.model.name}_target{target}")

    def layer_values(self, batch, layer: str, where: str = "output", return_probs: bool = False):
        found = self._layer(layer)
        parts = self.split(batch)
        outs, raws = [], []
        with self._lock:
            for sl in self.iter_batches(len(parts[0]), None):
                captured: list = []

                def call(original, args, kwargs, _c=captured):
                    if where == "input":
                        _c.append(args[0])
                        return original(*args, **kwargs)
                    out = original(*args, **kwargs)
                    _c.append(out[0] if isinstance(out, (tuple, list)) else out)
                    return out

                with _intercepting(found, call):
                    raw = self._call(self._tensors([p[sl] for p in parts]), graph=False)
                if not captured:
                    raise UnsupportedError(f"layer {layer!r} was not used by the forward pass")
                outs.append(np.asarray(captured[-1], np.float32))
                if return_probs:
                    raws.append(np.asarray(raw, np.float32))
        values = np.concatenate(outs)
        return (values, self.probabilities(np.concatenate(raws))) if return_probs else values

    def layer_gradients_at(self, batch, target: int, layer: str, values: np.ndarray,
                           where: str = "output", batch_size: int | None = None):
        found = self._layer(layer)
        parts = self.split(batch)
        grads, scores = [], []
        with self._lock, GRADIENT_REGISTRY_LOCK:
            for sl in self.iter_batches(len(parts[0]), batch_size):
                v = tf.convert_to_tensor(np.asarray(values[sl], np.float32))

                def call(original, args, kwargs, _v=v):
                    if where == "input":
                        return original(_v, *args[1:], **kwargs)
                    return _v

                with tf.GradientTape() as tape, _intercepting(found, call):
                    tape.watch(v)
                    out = self._call(self._tensors([p[sl] for p in parts]), graph=False)
                    score = self._scores(out, self._pick(out.numpy(), target))
                    total = tf.reduce_sum(score)
                g = tape.gradient(total, v)
                if g is None:
                    raise UnsupportedError(f"the score of {self.name} does not depend on layer {layer!r}")
                grads.append(g.numpy())
                scores.append(score.numpy())
        return np.concatenate(grads).astype(np.float32), np.concatenate(scores)

    def deep_explainer_data(self, batch):
        """Canonical inputs -> what the DeepExplainer model takes (the same arrays)."""
        return batch

    def deep_explainer_values(self, values) -> np.ndarray:
        """shap's values for one output -> canonical N x H x W x C."""
        arr = np.asarray(values[0] if isinstance(values, list) and len(values) == 1 else values, np.float32)
        return arr[..., 0] if arr.ndim == 5 else arr

    # -- randomisation check ---------------------------------------------------------
    def _weight_layers_of(self, model) -> list:
        """Layers with trainable weights, nested models flattened, input side first."""
        found = []
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                found.extend(self._weight_layers_of(layer))
            elif layer.trainable_weights:
                found.append(layer)
        return found

    def weight_layers(self) -> list[str]:
        if self.kind != "model":
            return []
        return [layer.name for layer in self._weight_layers_of(self.model)]

    @property
    def weights_refusal(self) -> str:
        if self.kind == "savedmodel":
            return (f"{self.name} is a TensorFlow SavedModel, which keeps its weights but not which layer "
                    "holds them or which layer is on top, so its layers cannot be randomised from the top; "
                    "save the model as .keras")
        return super().weights_refusal

    def randomized_copy(self, layers_from_top: int, seed: int) -> KerasAdapter:
        if self.kind != "model":
            raise UnsupportedError(self.weights_refusal)
        with self._lock:
            try:
                clone = keras.models.clone_model(self.model)
                clone.set_weights(self.model.get_weights())
            except Exception as exc:  # noqa: BLE001 - custom layers may refuse to clone
                raise UnsupportedError(f"{self.name}: the model cannot be copied to randomise it ({first_line(exc)})") from None
        rng = np.random.default_rng(seed)
        for layer in self._weight_layers_of(clone)[::-1][: max(0, int(layers_from_top))]:
            for variable in layer.trainable_weights:  # moving statistics stay: a random variance could go negative
                variable.assign(random_like(keras.ops.convert_to_numpy(variable), rng))
        return KerasAdapter(clone, self.inputs, self.labels, name=f"{self.name} (randomised)", kind=self.kind,
                            batch_size=self.default_batch_size, output_kind=self._output_kind)

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

        xs = self._tensors([p[:1] for p in self.probe_batch()])
        with self._lock, _recording_many([(layer, record(p, layer)) for p, layer in paths.items()]):
            self._call(xs, graph=False)

        tokens = token_layouts(self.model) if self.kind == "model" else {}

        def layout(name: str, shape: tuple[int, ...]) -> LayerLayout:
            if len(shape) == 3 and name in tokens and tokens[name].raw_shape() == tuple(shape[1:]):
                return tokens[name]
            return _keras_layout(paths.get(name), shape)

        return recorder.found({name: i for i, name in self._layer_indices().items()}, layout)

    def _conv_input_layout(self, shape: tuple[int, ...]) -> LayerLayout:
        return LayerLayout("channels_last", (shape[0], shape[1]), shape[2], source="Keras convolution input")


def _keras_layout(layer, shape: tuple[int, ...]) -> LayerLayout:
    """A Keras layer's output layout by the framework's convention: N x h x w x C for
    image layers (channels-first where the layer says data_format='channels_first'),
    N x units for vectors. Token outputs (N x T x C) are maps only where the graph
    establishes their grid (:mod:`xai_core.adapters.keras_tokens`)."""
    if len(shape) == 2:
        return vector_layout(shape[1], "Keras")
    if len(shape) == 4:
        if getattr(layer, "data_format", "channels_last") == "channels_first":
            return LayerLayout("channels_first", (shape[2], shape[3]), shape[1], source="Keras data_format")
        return LayerLayout("channels_last", (shape[1], shape[2]), shape[3], source="Keras convention (channels last)")
    if len(shape) == 3:
        return not_a_map("tokens (N x T x C) whose patch grid the Keras graph does not establish (a Reshape of "
                         "a channels-last map, then token-wise layers)")
    return not_a_map("axes that are not established")


def _canonical(array: np.ndarray, layout: LayerLayout) -> np.ndarray:
    """A layer's output (or gradient) -> the protocol's N x C x h x w (N x units stays)."""
    return np.asarray(layout.fold(array), np.float32)


def _flat_canonical(tensor, layout: LayerLayout):
    """A layer's output tensor -> N x (C*h*w) in C x h x w order (N x units stays)."""
    if layout.kind == "tokens":
        h, w = layout.grid
        t = tensor.shape[1]
        tensor = tf.reshape(tensor[:, layout.prefix:t - layout.suffix], (-1, h, w, tensor.shape[2]))
    if tensor.shape.rank == 4 and layout.kind != "channels_first":
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

    def __init__(self, column: int, flip: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.column = int(column)
        self.flip = bool(flip)  # 1 - p: a sigmoid output's class 0

    def call(self, x):
        col = x[:, self.column : self.column + 1]
        return 1 - col if self.flip else col

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
def _intercepting(layer, call):
    """Route ``layer``'s call through ``call(original, args, kwargs)`` (eager only)."""
    original = layer.call

    def wrapper(*args, **kwargs):
        return call(original, args, kwargs)

    layer.call = wrapper
    try:
        yield
    finally:
        try:
            del layer.call
        except AttributeError:
            pass


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





