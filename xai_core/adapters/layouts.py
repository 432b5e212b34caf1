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


def layout_from_probe(small: tuple[int, ...], big: tuple[int, ...], sizes: tuple[tuple[int, int], tuple[int, int]],
                      batches: tuple[int, int]) -> LayerLayout:
    """A layout from a layer's output shapes at two input sizes (batch axis included):
    ``small`` for a batch of ``batches[0]`` images of ``sizes[0]`` (H, W), ``big``
    for ``batches[1]`` images of ``sizes[1]``. An axis that grows with H is the
    map's height, with W its width, with both (H/p)(W/p) + k a token axis with k
    extra tokens; the batch axis must stay the batch."""
    source = "two-size probe"
    (h1, w1), (h2, w2) = sizes
    if len(small) != len(big) or small[0] != batches[0] or big[0] != batches[1]:
        return not_a_map(WINDOWS if len(small) == len(big) else UNTRACED, source)
    rest_s, rest_b = small[1:], big[1:]
    if len(rest_s) == 1:
        if rest_s == rest_b:
            return vector_layout(rest_s[0], source)
        return not_a_map(UNTRACED, source)

    def grows(a: int, b: int, full1: int, full2: int) -> bool:
        # a conv chain of total stride s maps H to about H / s (give or take the rounding)
        return a != b and a > 0 and abs(b - a * full2 / full1) <= 1

    roles = []
    for a, b in zip(rest_s, rest_b, strict=True):
        if a == b:
            roles.append("c")
        elif grows(a, b, h1, h2) and not grows(a, b, w1, w2):
            roles.append("h")
        elif grows(a, b, w1, w2) and not grows(a, b, h1, h2):
            roles.append("w")
        else:
            roles.append("t")
    pattern = "".join(roles)
    if pattern == "chw":
        return LayerLayout("channels_first", (rest_s[1], rest_s[2]), rest_s[0], source=source)
    if pattern == "hwc":
        return LayerLayout("channels_last", (rest_s[0], rest_s[1]), rest_s[2], source=source)
    if pattern == "tc":
        found = _token_grid(rest_s[0], rest_b[0], (h1, w1), (h2, w2))
        if found is None:
            return not_a_map("tokens whose count does not follow a patch grid", source)
        (gh, gw), extra = found
        if extra:  # the counts say how many extra tokens, not where they sit
            return not_a_map(f"tokens with {extra} extra tokens whose place a probe cannot tell", source)
        return LayerLayout("tokens", (gh, gw), rest_s[1], source=source)
    if pattern.count("t") >= 2:
        return not_a_map(ATTENTION_WEIGHTS, source)
    return not_a_map(UNTRACED, source)


def _token_grid(t1: int, t2: int, size1: tuple[int, int], size2: tuple[int, int]) -> tuple[tuple[int, int], int] | None:
    """The patch grid at ``size1`` and the number of extra tokens k with
    t = (H/p)(W/p) + k at both sizes, for the one patch size p that fits."""
    found = []
    for p in range(1, min(*size1, *size2) + 1):
        if any(v % p for v in (*size1, *size2)):
            continue
        g1 = (size1[0] // p, size1[1] // p)
        g2 = (size2[0] // p, size2[1] // p)
        k1, k2 = t1 - g1[0] * g1[1], t2 - g2[0] * g2[1]
        if k1 == k2 and 0 <= k1 <= 16:
            found.append((g1, k1))
    return found[0] if len(found) == 1 else None


__all__ = ["ATTENTION_WEIGHTS", "KINDS", "LayerLayout", "MAP_KINDS", "UNTRACED", "WINDOWS", "layout_from_probe",
           "not_a_map", "vector_layout"]


def cam_signal(acts: np.ndarray, grads: np.ndarray) -> float:
    """How much class signal a canonical map carries: the summed magnitude of its
    Grad-CAM (C x h x w activations and gradients of one item)."""
    weights = np.asarray(grads, np.float64).mean(axis=(1, 2))
    return float(np.abs(np.tensordot(weights, np.asarray(acts, np.float64), axes=(0, 0))).sum())
