"""The protocol every framework adapter implements.

Images cross this boundary in one canonical layout: float32 arrays N x H x W x C
with values in [0, 1], *before* normalisation. The adapter applies mean/std, the
framework's layout and device, so explainers never see framework details.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..types import Capability, ImageSpec, InputError, UnsupportedError

_INDEX = re.compile(r"-?\d+(/\d+)*")

# kinds of layer that only move, drop or pad values: never the default CAM layer
PASSIVE_KINDS = ("pool", "dropout", "padding", "flatten", "reshape", "upsampl", "resiz", "crop",
                 "identity", "permute")
DENSE_KINDS = ("Linear", "Dense")


@dataclass(frozen=True)
class LayerInfo:
    """A layer whose output is a feature map (channels, height, width) or a vector
    of units (units,), e.g. a dense layer.

    ``index`` is how users point at the layer by number, see
    :meth:`ModelAdapter.resolve_layer`; None for layers that have none (PyTorch
    containers). ``passive`` marks pooling, dropout, padding and reshaping layers,
    and containers whose output is such a layer's output.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    index: str | None = None
    passive: bool = False

    @property
    def spatial(self) -> bool:
        return len(self.output_shape) == 3

    @property
    def dense(self) -> bool:
        """A fully connected layer (its weights are :meth:`ModelAdapter.dense_weights`)."""
        return self.kind in DENSE_KINDS

    @property
    def feature_map(self) -> bool:
        """A convolution-like spatial map: a Grad-CAM / CAM candidate."""
        return self.spatial and not self.passive

    def describe(self) -> str:
        shape = "x".join(str(v) for v in self.output_shape)
        where = f"[{self.index}] " if self.index is not None else ""
        return f"{where}{self.name} ({self.kind}, {shape})"


ProgressFn = Callable[[int, int], None]


class LayerRecorder:
    """Output shape and call count of every layer during one probe forward pass.

    :meth:`found` keeps the layers run exactly once whose output is a spatial map
    bigger than 1 x 1 or a vector (N x units), in the order they finished. A layer
    whose output is the very tensor the layer before it returned (a container
    ending in that layer) inherits its ``passive`` mark.
    """

    def __init__(self, channels_last: bool) -> None:
        self.channels_last = channels_last
        self._seen: OrderedDict[str, list] = OrderedDict()
        self._last: tuple[str, object] | None = None

    def record(self, name: str, kind: str, out: object) -> None:
        shape = tuple(out.shape) if hasattr(out, "shape") else None
        passive = any(word in kind.lower() for word in PASSIVE_KINDS)
        if not passive and self._last is not None and out is self._last[1]:
            passive = self._seen[self._last[0]][3]
        if name in self._seen:
            self._seen[name][1] += 1
            self._seen.move_to_end(name)
        else:
            self._seen[name] = [shape, 1, kind, passive]
        self._last = (name, out)

    def found(self, indices: dict[str, str] | None = None) -> list[LayerInfo]:
        """The listed layers; ``indices`` maps a layer name to its index."""
        self._last = None
        indices = indices or {}
        found = []
        for name, (shape, calls, kind, passive) in self._seen.items():
            if calls != 1 or shape is None:
                continue
            if len(shape) == 4:
                h, w, c = (shape[1], shape[2], shape[3]) if self.channels_last else (shape[2], shape[3], shape[1])
                if h <= 1 or w <= 1:
                    continue
                out: tuple[int, ...] = (int(c), int(h), int(w))
            elif len(shape) == 2:
                out = (int(shape[1]),)
            else:
                continue
            found.append(LayerInfo(name, kind, out, indices.get(name), passive))
        return found


def is_probability(out: np.ndarray) -> bool:
    """True when every row is non-negative and sums to 1 (a softmax output)."""
    out = np.asarray(out)
    if out.size == 0 or out.min() < 0 or out.max() > 1:
        return False
    return bool(np.allclose(out.sum(1), 1.0, atol=1e-3))


def fit_labels(labels: list[str] | None, n: int) -> list[str]:
    """The user's labels checked against the model's class count, else 'class i'."""
    if labels is None:
        return [f"class {i}" for i in range(n)]
    if len(labels) != n:
        raise InputError(f"the labels file has {len(labels)} labels but the model outputs {n} classes")
    return list(labels)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, for one-line error messages."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class ModelAdapter(ABC):
    """A classifier seen through framework-neutral primitives."""

    framework: str = "?"
    spec: ImageSpec
    labels: list[str]
    name: str
    default_batch_size: int = 16
    # the most inputs one call may take (programs exported for one image take 1)
    max_batch: int | None = None

    @property
    @abstractmethod
    def capabilities(self) -> frozenset[str]: ...

    # set by each adapter from a probe forward pass at construction
    _num_classes: int
    _output_kind: str = "probability"

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def output_kind(self) -> str:
        """'logit' when the model ends in raw scores, 'probability' when in softmax."""
        return self._output_kind

    @abstractmethod
    def predict(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """N x H x W x C images in [0, 1] -> N x classes probabilities (float32)."""

    def input_gradients(
        self, batch: np.ndarray, target: int | None, batch_size: int | None = None,
        return_probs: bool = False,
    ):
        """Gradient of the target score w.r.t. the [0, 1] input.

        Returns (gradients N x H x W x C, scores N), plus the N x classes
        probabilities of the same forward pass when ``return_probs``. The score is
        the target logit when ``output_kind == 'logit'``, else its probability.
        ``target=None`` takes the first image's predicted class.
        """
        raise UnsupportedError(f"{self.name}: this model gives no gradients")

    def layer_activations_and_gradients(
        self, batch: np.ndarray, target: int | None, layer: str, return_probs: bool = False
    ):
        """(activations N x C x h x w, their gradients, scores N[, probabilities]) at
        ``layer``; ``target=None`` takes the first image's predicted class."""
        raise UnsupportedError(f"{self.name}: this model gives no layer gradients")

    def dense_weights(self, layer: str) -> np.ndarray:
        """The weight matrix (outputs x inputs) of a dense (fully connected) layer."""
        raise UnsupportedError(f"{self.name}: this model gives no layer weights")

    def neuron_gradients(self, batch: np.ndarray, target: int, layer: str, neuron: int):
        """For one unit of ``layer`` (``neuron``: flat index into its output, in the
        protocol's C x h x w order): (d unit / d input N x H x W x C, d score / d unit N)."""
        raise UnsupportedError(f"{self.name}: this model gives no layer gradients")

    def layers(self) -> list[LayerInfo]:
        """Feature-map and vector (dense) layers in execution order, each with its
        index; found once by a probe forward pass, and only where layers can be hooked."""
        if not self.supports(Capability.LAYER_GRADIENTS):
            return []
        if getattr(self, "_layers", None) is None:
            self._layers = self._find_layers()
        return self._layers

    def _find_layers(self) -> list[LayerInfo]:
        """Run one probe forward pass with a :class:`LayerRecorder` attached."""
        return []

    def _layer_indices(self) -> dict[str, str]:
        """Index -> layer name, in index order (see :meth:`resolve_layer`)."""
        return {}

    def _layer_name(self, name: str) -> str:
        """The canonical name of the layer called ``name``; an InputError if none."""
        raise UnsupportedError(f"{self.name}: this model gives no layer access")

    def resolve_layer(self, layer: str | int | None) -> str | None:
        """A layer given by name or by index -> its name (None stays None).

        Indices are what users write in their framework: Keras, the position in
        ``model.layers`` (``model.layers[6]``, ``get_layer(index=6)``; negative
        counts from the end; ``"i/j"`` is layer j of the nested model at i);
        PyTorch, the position among the leaf modules of ``model.named_modules()``
        (modules without children, in definition order). A layer given as a
        whole number is always read as an index; ``python -m xai_core layers``
        prints every layer's index.
        """
        if layer is None or str(layer).strip() == "":
            return None
        text = str(layer).strip()
        if not _INDEX.fullmatch(text):
            return self._layer_name(text)
        indices = self._layer_indices()
        if not indices:
            raise UnsupportedError(f"{self.name} offers no layers to choose by index")
        head, _, rest = text.partition("/")
        top = [key for key in indices if "/" not in key]
        if int(head) < 0 and -int(head) <= len(top):
            head = top[int(head)]
        key = f"{head}/{rest}" if rest else head
        if key not in indices:
            raise InputError(
                f"{self.name} has no layer with index {text} (indices 0..{len(top) - 1}); "
                "see python -m xai_core layers"
            )
        return self._layer_name(indices[key])

    def default_cam_layer(self) -> str | None:
        """The last convolution-like spatial feature map (never pooling, dropout,
        padding or reshaping) run once per forward pass."""
        found = [info for info in self.layers() if info.feature_map]
        return found[-1].name if found else None

    def supports(self, requirement: str) -> bool:
        return requirement in self.capabilities

    def label(self, index: int) -> str:
        if 0 <= index < len(self.labels):
            return self.labels[index]
        return f"class {index}"

    def iter_batches(self, n: int, batch_size: int | None) -> Iterator[slice]:
        size = max(1, int(batch_size or self.default_batch_size))
        for start in range(0, n, size):
            yield slice(start, min(n, start + size))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "framework": self.framework,
            "classes": self.num_classes,
            "output": self.output_kind,
            "capabilities": sorted(self.capabilities),
            "spec": self.spec.to_dict(),
        }


__all__ = ["Capability", "LayerInfo", "ModelAdapter", "ProgressFn"]
