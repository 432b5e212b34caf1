"""The protocol every framework adapter implements.

A model takes one or more inputs, each described by a spec
(:class:`~xai_core.types.ImageSpec`, :class:`~xai_core.types.VectorSpec`). Inputs
cross this boundary in one canonical form: images as float32 N x H x W x C in
[0, 1], *before* normalisation (the adapter applies mean/std, the framework's
layout and device); feature vectors as float32 N x F raw values. A model with one
input takes and returns plain arrays; a model with several takes and returns a
list of arrays, one per input, in the order of :attr:`ModelAdapter.inputs`.

Outputs: ``output_kind`` says what the model's raw output is: 'probability'
(softmax), 'logit', 'sigmoid' (one column p: a binary classifier with the two
classes 1 - p and p) or 'score' (one raw value, a regression or an uncalibrated
score). :meth:`ModelAdapter.predict` returns class probabilities (the score
itself for 'score'); gradients are of the explained score, see :meth:`explained`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from xai_core.adapters.layers import LayerCatalogue, LayerInfo
from xai_core.adapters.layouts import LayerLayout
from xai_core.types import Capability, ImageSpec, InputError, InputSpec, UnsupportedError, VectorSpec

OUTPUT_KINDS = ("probability", "logit", "sigmoid", "score")

# a target meaning "each row's own predicted class" (adapters with targets_per_row)
EACH_PREDICTED = "each predicted"


ProgressFn = Callable[[int, int], None]
_LOCK_CREATION = threading.Lock()


def is_probability(out: np.ndarray) -> bool:
    """True when every row is non-negative and sums to 1 (a softmax output)."""
    out = np.asarray(out)
    if out.size == 0 or out.min() < 0 or out.max() > 1:
        return False
    return bool(np.allclose(out.sum(1), 1.0, atol=1e-3))


def fit_labels(labels: list[str] | None, n: int, output_kind: str = "probability") -> list[str]:
    """The user's labels checked against the model's class count, else 'class i'
    ('score' for a one-value score model)."""
    if labels is None:
        return ["score"] if output_kind == "score" else [f"class {i}" for i in range(n)]
    labels = [str(v) for v in labels]
    if len(labels) != n:
        raise InputError(f"{len(labels)} labels but the model outputs {n} classes; give one label for each of its {n} outputs")
    return labels


def guess_output_kind(out: np.ndarray) -> str:
    """From raw probe outputs (N x K): 'probability' when rows are in [0, 1] and sum to
    1 (K >= 2); for one column 'sigmoid' when every value lies strictly in (0, 1),
    else 'score'; otherwise 'logit'."""
    out = np.asarray(out)
    if out.shape[1] == 1:
        return "sigmoid" if out.size and float(out.min()) > 0 and float(out.max()) < 1 else "score"
    return "probability" if is_probability(out) else "logit"


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def random_like(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Normal noise shaped like ``values`` with the same root-mean-square (zeros stay zeros)."""
    values = np.asarray(values)
    rms = float(np.sqrt(np.mean(np.square(values, dtype=np.float64)))) if values.size else 0.0
    return (rng.standard_normal(values.shape) * rms).astype(values.dtype)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, for one-line error messages."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class ModelAdapter(LayerCatalogue, ABC):
    """A model seen through framework-neutral primitives.

    A framework module sets :attr:`inputs` and implements :meth:`_run` (raw outputs
    of one batch); batching, output kinds, probabilities and target checks live here.
    """

    framework: str = "?"
    inputs: tuple[InputSpec, ...]
    labels: list[str]
    name: str
    kind: str = ""
    default_batch_size: int = 16
    max_batch: int | None = None  # set for exported graphs with a fixed batch size
    label_column: str | None = None  # the label column of the tables it was trained on, when known
    # the engine gradient-free predict() runs on, when adapters.fast_forward.prepare() found one
    fast_forward = None
    # whether input_gradients and layer_activations_and_gradients take one target per
    # row (an int array) or EACH_PREDICTED (every row its own predicted class)
    targets_per_row = False

    @property
    @abstractmethod
    def capabilities(self) -> frozenset[str]: ...

    # set by each adapter from a probe forward pass at construction, see _settle_outputs
    _num_classes: int
    _output_kind: str = "probability"
    _raw_width: int = 0

    # -- inputs ----------------------------------------------------------------------
    @property
    def spec(self) -> InputSpec:
        """The first (for most models the only) input's spec."""
        return self.inputs[0]

    @property
    def multi_input(self) -> bool:
        return len(self.inputs) > 1

    @property
    def input_kinds(self) -> list[str]:
        return [s.kind for s in self.inputs]

    def split(self, batch) -> list[np.ndarray]:
        """A batch in canonical form (an array, or a list of arrays for several inputs)
        -> a list of float32 arrays, one per input, checked against the specs."""
        parts = list(batch) if isinstance(batch, (list, tuple)) else [batch]
        if len(parts) == 1 and len(self.inputs) > 1 and self._row_widths() is not None:
            parts = self.rows_to_inputs(parts[0])
        if len(parts) != len(self.inputs):
            raise InputError(f"{self.name} takes {len(self.inputs)} input(s) "
                             f"({', '.join(s.name for s in self.inputs)}); got {len(parts)}")
        out = []
        for spec, part in zip(self.inputs, parts, strict=True):
            part = np.asarray(part, dtype=np.float32)
            if isinstance(spec, ImageSpec):
                if part.ndim != 4 or part.shape[-1] != spec.channels:
                    raise InputError(f"expected images N x H x W x {spec.channels}, got shape {part.shape}")
            elif part.ndim != 2 or (spec.size is not None and part.shape[1] != spec.size):
                want = spec.size if spec.size is not None else "F"
                raise InputError(f"input {spec.name!r} takes rows N x {want}; got shape {part.shape}")
            out.append(part)
        if len({len(p) for p in out}) > 1:
            raise InputError(f"the inputs of one batch differ in length: {[len(p) for p in out]}")
        return out

    def _row_widths(self) -> list[int] | None:
        """Each input's width when every input is a feature vector of known size."""
        if all(isinstance(s, VectorSpec) and s.size is not None for s in self.inputs):
            return [s.size for s in self.inputs]
        return None

    def rows_to_inputs(self, rows: np.ndarray) -> list[np.ndarray]:
        """N x F table rows -> one N x F_i block per vector input, columns in input
        order (a model with one Input per column reads a table row as they come)."""
        widths = self._row_widths()
        rows = np.asarray(rows, np.float32)
        if widths is None or rows.ndim != 2 or rows.shape[1] != sum(widths):
            return [rows]
        return np.split(rows, np.cumsum(widths)[:-1], axis=1)

    def join(self, parts: list[np.ndarray]):
        """The inverse of :meth:`split`: one array for a one-input model, else the list."""
        return parts[0] if len(parts) == 1 else list(parts)

    def probe_batch(self) -> list[np.ndarray]:
        """Two items per input for the construction probe: mid-grey/0.5 and seeded noise."""
        rng = np.random.default_rng(0)
        parts = []
        for spec in self.inputs:
            shape = spec.shape if isinstance(spec, ImageSpec) else (spec.size or 1,)
            noise = rng.random((1, *shape), dtype=np.float32)
            parts.append(np.concatenate([np.full_like(noise, 0.5), noise]))
        return parts

    # -- outputs ---------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def output_kind(self) -> str:
        """'logit', 'probability' (softmax), 'sigmoid' (one column, two classes) or 'score'."""
        return self._output_kind

    @property
    def explains(self) -> str:
        """What gradients are taken of: 'logit', 'probability' or 'score' (a sigmoid
        model's class probability p or 1 - p)."""
        return {"sigmoid": "probability"}.get(self._output_kind, self._output_kind)

    EXPLAINED_OUTPUTS = ("logit", "probability")

    @contextmanager
    def explaining(self, what: str | None) -> Iterator[None]:
        """Within this block the model is explained as ``what``: 'logit' strips a
        final softmax (as tf-keras-vis does), so gradient methods see the logits;
        'probability' or None keep the model as it is. Predictions stay
        probabilities either way. Holds the adapter's lock throughout."""
        if what in (None, "") or what == self.explains:
            yield
            return
        if what not in self.EXPLAINED_OUTPUTS:
            raise InputError(f"explain the {what!r}? choose logit or probability")
        if what == "probability":
            raise InputError(f"{self.name} outputs {self.explains}s, not probabilities; explain its {self.explains}")
        if self._output_kind != "probability":
            raise InputError(f"{self.name} outputs {self.explains}s; there is no final softmax to strip")
        with self._lock, self._without_final_softmax():
            saved = self._output_kind
            self._output_kind = "logit"
            try:
                yield
            finally:
                self._output_kind = saved

    @contextmanager
    def _without_final_softmax(self) -> Iterator[None]:
        """The framework's way to run the model without its final softmax."""
        raise UnsupportedError(f"{self.name}: {self.framework} models cannot have their final softmax stripped")
        yield  # pragma: no cover

    def _settle_outputs(self, raw: np.ndarray, labels: list[str] | None, output_kind: str | None) -> None:
        """Number of classes, output kind and labels from the raw probe outputs."""
        raw = np.asarray(raw)
        kind = output_kind or guess_output_kind(raw)
        if kind not in OUTPUT_KINDS:
            raise InputError(f"output kind {kind!r} is not one of {', '.join(OUTPUT_KINDS)}")
        if kind in ("sigmoid", "score") and raw.shape[1] != 1:
            raise InputError(f"output kind {kind!r} needs a model with one output; {self.name} has {raw.shape[1]}")
        self._raw_width = int(raw.shape[1])
        self._output_kind = kind
        self._num_classes = 2 if kind == "sigmoid" else self._raw_width
        self.labels = fit_labels(labels, self._num_classes, kind)

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Raw outputs N x K -> N x classes probabilities (the score itself for 'score')."""
        raw = np.asarray(raw, np.float32)
        if self._output_kind == "logit":
            return softmax(raw).astype(np.float32)
        if self._output_kind == "sigmoid":
            return np.concatenate([1 - raw, raw], axis=1)
        return raw

    def _scores(self, out, target: int | np.ndarray):
        """The explained score of a raw output tensor (torch or TensorFlow): the target's
        column; for a sigmoid output p (target 1) or 1 - p (target 0). An array of
        targets (adapters with :attr:`targets_per_row`) takes each row's own column."""
        if isinstance(target, np.ndarray):
            return self._row_scores(out, target)
        if self._output_kind == "sigmoid":
            return out[:, 0] if target == 1 else 1 - out[:, 0]
        return out[:, target]

    def _row_scores(self, out, targets: np.ndarray):
        """Each row's own target's score (a sigmoid output: p for 1, 1 - p for 0), on
        NumPy arrays; adapters override it for their own tensors."""
        out = np.asarray(out)
        if self._output_kind == "sigmoid":
            return np.where(targets == 1, out[:, 0], 1 - out[:, 0])
        return out[np.arange(len(targets)), targets]

    def explained(self, raw: np.ndarray, target: int) -> np.ndarray:
        """NumPy twin of :meth:`_scores`: N raw outputs -> N explained scores (float64)."""
        return np.asarray(self._scores(np.asarray(raw, np.float64), target), np.float64)

    def _pick(self, out, target: int | str | np.ndarray | None) -> int | np.ndarray:
        """None -> the first item's predicted class (one pass gives target and
        gradients); else the target checked against the classes. With
        :attr:`targets_per_row`: an array gives each row its class, and
        :data:`EACH_PREDICTED` each row its own predicted class."""
        if isinstance(target, str) and target == EACH_PREDICTED and self.targets_per_row:
            return np.argmax(self.probabilities(np.asarray(out)), axis=1)
        if isinstance(target, np.ndarray) and self.targets_per_row:
            if len(target) and not (0 <= target.min() and target.max() < self._num_classes):
                raise InputError(f"target classes must lie in 0..{self._num_classes - 1}")
            return target.astype(np.int64)
        if target is None:
            return int(np.argmax(self.probabilities(np.asarray(out[:1]))[0]))
        if not 0 <= target < self._num_classes:
            raise InputError(f"target class {target} is out of range (0..{self._num_classes - 1})")
        return int(target)

    @abstractmethod
    def _run(self, parts: list[np.ndarray]) -> np.ndarray:
        """One batch (a list of canonical arrays, one per input) -> raw outputs N x K."""

    def outputs(self, batch, batch_size: int | None = None) -> np.ndarray:
        """Raw model outputs N x K (the values gradients are taken of)."""
        parts = self.split(batch)
        n = len(parts[0])
        outs = [np.asarray(self._run([p[sl] for p in parts]), np.float32)
                for sl in self.iter_batches(n, batch_size)]
        if not outs:
            return np.zeros((0, self._raw_width), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)

    logits_or_probs = outputs

    def predict(self, batch, batch_size: int | None = None) -> np.ndarray:
        """Canonical inputs -> N x classes probabilities (float32); the score for 'score'."""
        if self._raw_width and len(self.split(batch)[0]) == 0:
            return np.zeros((0, self._num_classes), np.float32)
        fast = self.fast_forward
        if fast is not None and fast.serves(self):
            return self.probabilities(fast.outputs(self, batch, batch_size))
        return self.probabilities(self.outputs(batch, batch_size))

    def explained_scores(self, batch, batch_size: int | None = None) -> np.ndarray:
        """N x classes: every class's explained score (logits for a logit model, else
        the class probabilities; the score itself for 'score')."""
        raw = self.outputs(batch, batch_size)
        return raw if self._output_kind == "logit" else self.probabilities(raw)

    def target_scores(self, batch, target: int, batch_size: int | None = None) -> np.ndarray:
        """N explained scores (float64) of the target class, as the gradient methods see them."""
        return self.explained(self.outputs(batch, batch_size), target)

    # -- feature-vector models (the tabular page) -------------------------------------
    @property
    def n_features(self) -> int | None:
        """Width of a table row for a model over feature vectors: the input's width, or
        the sum over several vector inputs (None when the model does not say)."""
        widths = self._row_widths()
        if widths is not None:
            return sum(widths)
        spec = self.inputs[0]
        return spec.size if isinstance(spec, VectorSpec) and len(self.inputs) == 1 else None

    @property
    def feature_names(self) -> list[str] | None:
        """The input columns by name, in order, when known: a vector's feature names;
        for one Input per column, the inputs' names."""
        if len(self.inputs) > 1 and self._row_widths() is not None:
            return [s.name if s.size == 1 else f"{s.name}[{j}]" for s in self.inputs for j in range(s.size)]
        spec = self.inputs[0]
        return list(spec.feature_names) if isinstance(spec, VectorSpec) and spec.feature_names else None

    @property
    def num_outputs(self) -> int:
        return self._num_classes

    @property
    def output_names(self) -> list[str]:
        return list(self.labels)

    def check_features(self, count: int) -> None:
        n = self.n_features
        if n is not None and n != count:
            raise InputError(f"the model {self.name} takes {n} features but {count} columns were chosen")

    def gradients(self, x: np.ndarray, target: int, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """d score[target] / d input for N x F rows -> (gradients N x F, scores N)
        (the inputs' gradients side by side for a model with one Input per column)."""
        grads, scores = self.input_gradients(x, target, batch_size or 4096)
        if isinstance(grads, list):
            grads = np.concatenate([g.reshape(len(g), -1) for g in grads], axis=1)
        return grads, scores

    def input_gradients(
        self, batch, target: int | None, batch_size: int | None = None,
        return_probs: bool = False,
    ):
        """Gradient of the target score w.r.t. the canonical input(s).

        Returns (gradients shaped like ``batch``: an array, or a list for several
        inputs; scores N), plus the N x classes probabilities of the same forward
        pass when ``return_probs``. The score is the target logit when
        ``output_kind == 'logit'``, else its probability (see :meth:`_scores`).
        ``target=None`` takes the first item's predicted class.
        """
        raise UnsupportedError(f"{self.name}: {self.framework} models give no gradients")

    def layer_activations_and_gradients(
        self, batch: np.ndarray, target: int | None, layer: str, return_probs: bool = False
    ):
        """(activations N x C x h x w, their gradients, scores N[, probabilities]) at
        ``layer``; ``target=None`` takes the first image's predicted class."""
        raise UnsupportedError(f"{self.name}: this model gives no layer gradients")

    def layer_values(self, batch, layer: str, where: str = "output", return_probs: bool = False):
        """The values at ``layer``'s output (or its first input, ``where='input'``) for
        a batch, in the layer's own layout (N x C x h x w for a channels-first conv
        layer, N x units for a dense one); with ``return_probs``, (values, the batch's
        class probabilities from the same pass)."""
        raise UnsupportedError(f"{self.name}: this model gives no layer values")

    def layer_gradients_at(self, batch, target: int, layer: str, values: np.ndarray,
                           where: str = "output", batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run ``batch`` with ``layer``'s output (or input) replaced by ``values`` (shaped
        as :meth:`layer_values` returns them) and return (d score / d values, scores):
        the primitive for attributions at a layer (expected gradients, IG)."""
        raise UnsupportedError(f"{self.name}: this model gives no layer gradients")

    def layer_scores_at(self, batch, target: int, layer: str, values: np.ndarray,
                        where: str = "output", batch_size: int | None = None) -> np.ndarray:
        """The scores of :meth:`layer_gradients_at` alone (N): ``batch`` run with
        ``layer``'s output (or input) replaced by ``values``, for methods that only
        read the scores (Ablation-CAM). ``batch`` has a row per row of ``values``, or
        one row that every row of ``values`` shares (one item under several replaced
        values). An adapter that can skip the backward pass, or compute the shared
        row's layers below ``layer`` once, overrides it."""
        return self.layer_gradients_at(self.rows_for(batch, len(values)), target, layer, values, where,
                                       batch_size)[1]

    def rows_for(self, batch, n: int):
        """``batch`` with ``n`` rows: a one-row batch repeated, any other as it is."""
        parts = self.split(batch)
        if len(parts[0]) == 1 and n != 1:
            parts = [np.repeat(p, n, axis=0) for p in parts]
        return self.join(parts)

    def dense_weights(self, layer: str) -> np.ndarray:
        """The weight matrix (outputs x inputs) of a dense (fully connected) layer."""
        raise UnsupportedError(f"{self.name}: this model gives no layer weights")

    def neuron_gradients(self, batch: np.ndarray, target: int, layer: str, neuron: int):
        """For one unit of ``layer`` (``neuron``: flat index into its output, in the
        protocol's C x h x w order): (d unit / d input N x H x W x C, d score / d unit N)."""
        raise UnsupportedError(f"{self.name}: this model gives no layer gradients")

    def model_lock(self) -> threading.RLock:
        """The adapter's re-entrant lock (``self._lock``, created once if missing)."""
        lock = self.__dict__.get("_lock")
        if lock is None:
            with _LOCK_CREATION:
                lock = self.__dict__.setdefault("_lock", threading.RLock())
        return lock

    # -- the randomisation sanity check (Adebayo et al. 2018) ----------------------
    def weight_layers(self) -> list[str]:
        """Names of the layers that carry weights, input side first ([] when the
        weights cannot be reached)."""
        return []

    @property
    def weights_refusal(self) -> str:
        """Why :meth:`weight_layers` is empty, for a check that needs the weights."""
        return f"{self.name} does not expose its weights ({self.framework})"

    def randomized_copy(self, layers_from_top: int, seed: int) -> ModelAdapter:
        """A new adapter for a copy of the model whose top ``layers_from_top``
        weight layers are random (normal, each tensor keeping its RMS); this
        adapter's model is left as it was."""
        raise UnsupportedError(f"{self.name}: the weights of this model cannot be randomised")

    def supports(self, requirement: str) -> bool:
        return requirement in self.capabilities

    def label(self, index: int) -> str:
        if 0 <= index < len(self.labels):
            return self.labels[index]
        return f"class {index}"

    def iter_batches(self, n: int, batch_size: int | None) -> Iterator[slice]:
        size = max(1, int(batch_size or self.default_batch_size))
        size = min(size, self.max_batch or size)
        for start in range(0, n, size):
            yield slice(start, min(n, start + size))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "framework": self.framework,
            "classes": self.num_classes,
            "output": self.output_kind,
            "outputs": self.output_names,
            "output_kind": self.output_kind,
            "kind": self.kind,
            "features": self.n_features,
            "capabilities": sorted(self.capabilities),
            "spec": self.spec.to_dict(),
            "inputs": [s.to_dict() | {"kind": s.kind, "name": s.name} for s in self.inputs],
        }


__all__ = ["OUTPUT_KINDS", "Capability", "LayerInfo", "LayerLayout", "ModelAdapter", "ProgressFn", "guess_output_kind", "softmax"]
