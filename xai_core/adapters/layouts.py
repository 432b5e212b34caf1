"""What a layer's output axes mean: its layout.

Every layer an adapter offers carries a :class:`LayerLayout`, established from the
model (its graph, the framework's conventions, a probe), never guessed from a
shape:

* ``channels_first``: N x C x h x w, a feature map (PyTorch convolutions);
* ``channels_last``: N x h x w x C, a feature map (Keras; timm ConvNeXt blocks and
  Swin stages);
* ``tokens``: N x T x C, patch tokens over an h x w grid in row-major order, with
  ``prefix`` extra tokens before them (class, distillation, register tokens) and
  ``suffix`` after (Vision Transformers);
* ``vector``: N x units (a dense layer);
* ``not_a_map``: anything else (attention weights N x heads x T x T, windows that
  mix the batch with image positions, axes that could not be traced), with the
  reason why.

The class-activation methods and every method that draws a layer over the image
work on the *canonical map* N x C x h x w: :meth:`LayerLayout.fold` turns a layer's
output (or its gradient) into it: channels-last is transposed, tokens lose their
extra tokens and are folded back into their grid. A layer without a map layout is
refused with :meth:`LayerLayout.refusal`, one line naming the layer and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xai_core.types import UnsupportedError

MAP_KINDS = ("channels_first", "channels_last", "tokens")
KINDS = (*MAP_KINDS, "vector", "not_a_map")


@dataclass(frozen=True)
class LayerLayout:
    """The meaning of a layer's output axes (batch axis first, not counted).

    ``grid`` is (h, w) of the map (for tokens, the patch grid), ``channels`` its
    channel count (units for a vector); ``prefix`` / ``suffix`` are the extra
    tokens before / after the patch tokens; ``source`` says how the layout was
    established (the graph, a two-size probe, the framework's convention), and for
    ``not_a_map`` ``reason`` says why the output is not a map.
    """

    kind: str
    grid: tuple[int, int] | None = None
    channels: int | None = None
    prefix: int = 0
    suffix: int = 0
    source: str = ""
    reason: str = ""

    @property
    def is_map(self) -> bool:
        return self.kind in MAP_KINDS

    @property
    def canonical_shape(self) -> tuple[int, ...] | None:
        """(C, h, w) for a map, (units,) for a vector, None otherwise."""
        if self.is_map:
            return (int(self.channels), int(self.grid[0]), int(self.grid[1]))
        if self.kind == "vector":
            return (int(self.channels),)
        return None

    def raw_shape(self) -> tuple[int, ...] | None:
        """The layer's own output shape for one item, from the layout."""
        if self.kind == "channels_first" or self.kind == "vector":
            return self.canonical_shape
        if self.kind == "channels_last":
            return (self.grid[0], self.grid[1], self.channels)
        if self.kind == "tokens":
            return (self.prefix + self.grid[0] * self.grid[1] + self.suffix, self.channels)
        return None

    def describe(self) -> str:
        """A short phrase: 'channels-first map 64x7x7', 'tokens 1+4x4 x 192'..."""
        if self.kind == "channels_first":
            return f"channels-first map {self.channels}x{self.grid[0]}x{self.grid[1]}"
        if self.kind == "channels_last":
            return f"channels-last map {self.grid[0]}x{self.grid[1]}x{self.channels}"
        if self.kind == "tokens":
            extra = []
            if self.prefix:
                extra.append(f"{self.prefix} extra token{'s' if self.prefix > 1 else ''} first")
            if self.suffix:
                extra.append(f"{self.suffix} extra token{'s' if self.suffix > 1 else ''} last")
            more = f" ({', '.join(extra)})" if extra else ""
            return f"tokens on a {self.grid[0]}x{self.grid[1]} grid x {self.channels}{more}"
        if self.kind == "vector":
            return f"vector of {self.channels} units"
        return f"not a map: {self.reason}" if self.reason else "not a map"

    # -- canonical maps ----------------------------------------------------------------
    def fold(self, values: np.ndarray, batched: bool = True) -> np.ndarray:
        """The layer's output (or its gradient) -> the canonical map N x C x h x w
        (C x h x w when ``batched`` is False); a vector stays N x units."""
        arr = np.asarray(values)
        if not batched:
            return self.fold(arr[None])[0]
        if self.kind in ("channels_first", "vector"):
            return arr
        if self.kind == "channels_last":
            return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
        if self.kind == "tokens":
            n, t, c = arr.shape
            h, w = self.grid
            patches = arr[:, self.prefix : t - self.suffix]
            return np.ascontiguousarray(patches.reshape(n, h, w, c).transpose(0, 3, 1, 2))
        raise UnsupportedError(f"a layer whose output is not a map cannot be drawn as one ({self.reason})")

    def unfold(self, maps: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`fold`: canonical N x C x h x w maps -> the layer's own
        layout, the extra tokens taken from ``raw`` (one item's own output, or N)."""
        maps = np.asarray(maps)
        if self.kind in ("channels_first", "vector"):
            return maps
        if self.kind == "channels_last":
            return np.ascontiguousarray(maps.transpose(0, 2, 3, 1))
        if self.kind == "tokens":
            n, c, h, w = maps.shape
            out = np.repeat(np.asarray(raw)[None], n, axis=0) if np.ndim(raw) == 2 else np.array(raw, copy=True)
            out = out.astype(maps.dtype, copy=True)
            out[:, self.prefix : self.prefix + h * w] = maps.transpose(0, 2, 3, 1).reshape(n, h * w, c)
            return out
        raise UnsupportedError(f"a layer whose output is not a map cannot take one ({self.reason})")

    def raw_index(self, neuron: int) -> tuple[int, ...]:
        """A flat index in canonical order (C x h x w; units) -> its position in the
        layer's own output (one item, batch axis left out)."""
        shape = self.canonical_shape
        if shape is None:
            raise UnsupportedError(f"units of a layer that is not a map or a vector have no order ({self.reason})")
        pos = tuple(int(v) for v in np.unravel_index(int(neuron), shape))
        if self.kind in ("channels_first", "vector"):
            return pos
        c, i, j = pos
        if self.kind == "channels_last":
            return (i, j, c)
        return (self.prefix + i * self.grid[1] + j, c)

    def refusal(self, layer: str, method: str, wants: str = "a spatial map") -> UnsupportedError:
        """The one-line refusal of ``method`` at this layer."""
        why = self.reason or self.describe()
        return UnsupportedError(
            f"layer {layer!r} gives {why}, not {wants}; {method} needs {wants}: choose a layer listed as a map "
            "(python -m xai_core layers shows each layer's layout)"
        )


def vector_layout(units: int, source: str) -> LayerLayout:
    return LayerLayout("vector", channels=int(units), source=source)


def not_a_map(reason: str, source: str = "") -> LayerLayout:
    return LayerLayout("not_a_map", source=source, reason=reason)


ATTENTION_WEIGHTS = "attention weights (heads x tokens x tokens)"
WINDOWS = "windows that mix the batch with image positions"
UNTRACED = "axes that could not be traced to the image's height and width"


def layout_from_probe(base: tuple[int, ...], taller: tuple[int, ...], wider: tuple[int, ...],
                      size: tuple[int, int], batches: tuple[int, int]) -> LayerLayout:
    """A layout from a layer's output shapes (batch axis included) for a batch of
    ``batches[0]`` images of ``size`` (H, W), and for ``batches[1]`` images of twice
    the height (``taller``) and of twice the width (``wider``). An axis that changes
    with the height alone is the map's height, with the width alone its width,
    with both a token axis (its growth is the patch grid: T = k + (H/p)(W/p));
    the batch axis must stay the batch. Padding that adds a constant does not
    matter: only which axes change counts."""
    source = "probe at three input sizes"
    if not (len(base) == len(taller) == len(wider)):
        return not_a_map(UNTRACED, source)
    if base[0] != batches[0] or taller[0] != batches[1] or wider[0] != batches[1]:
        return not_a_map(WINDOWS, source)
    roles, rest, kept = [], [], []
    for k, (b0, t, w) in enumerate(zip(base[1:], taller[1:], wider[1:], strict=True)):
        role = {(False, False): "c", (True, False): "h", (False, True): "w", (True, True): "t"}[(t != b0, w != b0)]
        if role == "c" and b0 == 1:
            continue  # a size-1 axis (a pooled map's 1 x 1) carries nothing
        roles.append(role)
        rest.append(b0)
        kept.append(k + 1)
    pattern = "".join(roles)
    taller = tuple(taller[k] for k in kept)
    wider = tuple(wider[k] for k in kept)
    if pattern == "c":
        return vector_layout(rest[0], source)
    if pattern == "chw":
        return LayerLayout("channels_first", (rest[1], rest[2]), rest[0], source=source)
    if pattern == "hwc":
        return LayerLayout("channels_last", (rest[0], rest[1]), rest[2], source=source)
    if pattern == "tc":
        patches = taller[0] - rest[0]
        extra = rest[0] - patches
        if patches <= 0 or wider[0] - rest[0] != patches or extra < 0:
            return not_a_map("tokens whose count does not follow a patch grid", source)
        p = math.sqrt(size[0] * size[1] / patches)
        grid = (round(size[0] / p), round(size[1] / p))
        if abs(p - round(p)) > 1e-6 or grid[0] * grid[1] != patches:
            return not_a_map("tokens whose count does not follow a patch grid", source)
        if extra:  # the counts say how many extra tokens, not where they sit
            return not_a_map(f"tokens with {extra} extra tokens whose place a probe cannot tell", source)
        return LayerLayout("tokens", grid, rest[1], source=source)
    if pattern.count("t") >= 2:
        return not_a_map(ATTENTION_WEIGHTS, source)
    return not_a_map(UNTRACED, source)


def cam_signal(acts: np.ndarray, grads: np.ndarray) -> float:
    """How much class signal a canonical map carries: the summed magnitude of its
    Grad-CAM (C x h x w activations and gradients of one item)."""
    weights = np.asarray(grads, np.float64).mean(axis=(1, 2))
    return float(np.abs(np.tensordot(weights, np.asarray(acts, np.float64), axes=(0, 0))).sum())
