"""The protocol every framework adapter implements.

Images cross this boundary in one canonical layout: float32 arrays N x H x W x C
with values in [0, 1], *before* normalisation. The adapter applies mean/std, the
framework's layout and device, so explainers never see framework details.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..types import Capability, ImageSpec, InputError, UnsupportedError


@dataclass(frozen=True)
class LayerInfo:
    """A layer whose output is a spatial feature map (a Grad-CAM candidate)."""

    name: str
    kind: str
    output_shape: tuple[int, int, int]  # (channels, height, width)

    def describe(self) -> str:
        c, h, w = self.output_shape
        return f"{self.name} ({self.kind}, {c}x{h}x{w})"


ProgressFn = Callable[[int, int], None]
_LOCK_CREATION = threading.Lock()


class LayerRecorder:
    """Output shape and call count of every layer during one probe forward pass.

    :meth:`feature_maps` keeps the Grad-CAM candidates: layers run exactly once
    whose output is a 4-D spatial map bigger than 1 x 1, in the order they finished.
    """

    def __init__(self, channels_last: bool) -> None:
        self.channels_last = channels_last
        self._seen: OrderedDict[str, list] = OrderedDict()

    def record(self, name: str, kind: str, shape: tuple | None) -> None:
        if name in self._seen:
            self._seen[name][1] += 1
            self._seen.move_to_end(name)
        else:
            self._seen[name] = [shape, 1, kind]

    def feature_maps(self) -> list[LayerInfo]:
        found = []
        for name, (shape, calls, kind) in self._seen.items():
            if calls != 1 or shape is None or len(shape) != 4:
                continue
            h, w, c = (shape[1], shape[2], shape[3]) if self.channels_last else (shape[2], shape[3], shape[1])
            if h > 1 and w > 1:
                found.append(LayerInfo(name, kind, (int(c), int(h), int(w))))
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

    def layers(self) -> list[LayerInfo]:
        """Spatial feature-map layers in execution order (Grad-CAM candidates); found
        once by a probe forward pass, and only where layers can be hooked."""
        if not self.supports(Capability.LAYER_GRADIENTS):
            return []
        # one discovery at a time, and no other call on this model while its probe
        # hooks are attached (they would count that call's layers twice)
        with self.model_lock():
            if getattr(self, "_layers", None) is None:
                self._layers = self._find_feature_layers()
        return self._layers

    def model_lock(self) -> threading.RLock:
        """The adapter's re-entrant lock (``self._lock``, created once if missing)."""
        lock = self.__dict__.get("_lock")
        if lock is None:
            with _LOCK_CREATION:
                lock = self.__dict__.setdefault("_lock", threading.RLock())
        return lock

    def _find_feature_layers(self) -> list[LayerInfo]:
        """Run one probe forward pass with a :class:`LayerRecorder` attached."""
        return []

    def default_cam_layer(self) -> str | None:
        """The last layer whose output is a spatial feature map (run once per forward)."""
        found = self.layers()
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
