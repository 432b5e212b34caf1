"""What an adapter knows of its model's layers.

:class:`LayerInfo` describes one layer (name, kind, output shape, index, layout);
:class:`LayerRecorder` records every layer's output during the probe forward pass
an adapter runs to find them; :class:`LayerCatalogue`, a base of
:class:`~xai_core.adapters.base.ModelAdapter`, lists the layers, resolves a layer
given by name or index, gives each layer's layout, and picks the default layer of
the class-activation methods. The framework adapters supply the probe
(``_find_layers``), the names and indices (``_layer_indices``, ``_layer_name``)
and the class signal (``_class_signal``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from xai_core.adapters.layouts import LayerLayout, not_a_map, vector_layout
from xai_core.types import Capability, InputError, UnsupportedError

_INDEX = re.compile(r"-?\d+(/\d+)*")

# kinds of layer that only move, drop or pad values: never the default CAM layer
PASSIVE_KINDS = ("pool", "dropout", "padding", "flatten", "reshape", "upsampl", "resiz", "crop",
                 "identity", "permute")
DENSE_KINDS = ("Linear", "Dense")


@dataclass(frozen=True)
class LayerInfo:
    """A layer with one output per forward pass, and what that output's axes mean.

    ``layout`` (:class:`~xai_core.adapters.layouts.LayerLayout`) is established
    from the model; ``output_shape`` is the canonical shape for one input: (C, h, w)
    for a map (whatever the layer's own layout), (units,) for a vector, the layer's
    own shape for an output that is not a map. ``index`` is how users point at the
    layer by number, see :meth:`ModelAdapter.resolve_layer`; None for layers that
    have none (PyTorch containers). ``passive`` marks pooling, dropout, padding and
    reshaping layers, and containers whose output is such a layer's output.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    index: str | None = None
    passive: bool = False
    layout: LayerLayout | None = None

    @property
    def spatial(self) -> bool:
        """A map over the image (channels-first, channels-last or tokens on a grid)."""
        return self.layout.is_map if self.layout is not None else len(self.output_shape) == 3

    @property
    def vector(self) -> bool:
        return self.layout.kind == "vector" if self.layout is not None else len(self.output_shape) == 1

    @property
    def dense(self) -> bool:
        """A fully connected layer (its weights are :meth:`ModelAdapter.dense_weights`)."""
        return self.kind in DENSE_KINDS and self.vector

    @property
    def feature_map(self) -> bool:
        """A spatial map that is not pooling or reshaping: a Grad-CAM / CAM candidate."""
        return self.spatial and not self.passive

    def describe(self) -> str:
        shape = "x".join(str(v) for v in self.output_shape)
        where = f"[{self.index}] " if self.index is not None else ""
        return f"{where}{self.name} ({self.kind}, {shape})"


class LayerRecorder:
    """Output shape and call count of every layer during one probe forward pass.

    :meth:`found` keeps the layers run exactly once, in the order they finished,
    with the layout the adapter established for each (``layouts``: name and raw
    output shape -> :class:`LayerLayout`). A layer whose output is the very tensor
    the layer before it returned (a container ending in that layer) inherits its
    ``passive`` mark and its layout.
    """

    def __init__(self, channels_last: bool) -> None:
        self.channels_last = channels_last
        self._seen: OrderedDict[str, list] = OrderedDict()
        self._last: tuple[str, object] | None = None
        self.same_as: dict[str, str] = {}  # layer -> the layer whose output tensor it returned

    def record(self, name: str, kind: str, out: object) -> None:
        shape = tuple(int(v) for v in out.shape) if hasattr(out, "shape") else None
        passive = any(word in kind.lower() for word in PASSIVE_KINDS)
        if self._last is not None and out is self._last[1]:
            self.same_as[name] = self.same_as.get(self._last[0], self._last[0])
            if not passive:
                passive = self._seen[self._last[0]][3]
        if name in self._seen:
            self._seen[name][1] += 1
            self._seen.move_to_end(name)
        else:
            self._seen[name] = [shape, 1, kind, passive]
        self._last = (name, out)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The raw output shape (batch axis included) of every layer run once."""
        return {name: shape for name, (shape, calls, _, _) in self._seen.items() if calls == 1 and shape is not None}

    def found(self, indices: dict[str, str] | None = None,
              layouts: Callable[[str, tuple[int, ...]], LayerLayout] | None = None) -> list[LayerInfo]:
        """The listed layers; ``indices`` maps a layer name to its index."""
        self._last = None
        indices = indices or {}
        found = []
        for name, (shape, calls, kind, passive) in self._seen.items():
            if calls != 1 or shape is None or len(shape) < 2:
                continue
            layout = layouts(name, shape) if layouts is not None else self._convention(shape)
            if layout.is_map:
                if min(layout.grid) <= 1:
                    continue
                out = layout.canonical_shape
            elif layout.kind == "vector":
                if len(shape) != 2:
                    continue
                out = layout.canonical_shape
            elif len(shape) in (3, 4, 5):
                out = tuple(int(v) for v in shape[1:])
            else:
                continue
            found.append(LayerInfo(name, kind, out, indices.get(name), passive, layout))
        return found

    def _convention(self, shape: tuple[int, ...]) -> LayerLayout:
        """Without an adapter's layouts: N x units is a vector, anything else untraced."""
        if len(shape) == 2:
            return vector_layout(shape[1], "shape")
        return not_a_map("axes that were not established", "")


class LayerCatalogue:
    """The layer methods of :class:`~xai_core.adapters.base.ModelAdapter`."""

    def layers(self) -> list[LayerInfo]:
        """Feature-map and vector (dense) layers in execution order, each with its
        index; found once by a probe forward pass, and only where layers can be hooked."""
        if not self.supports(Capability.LAYER_GRADIENTS):
            return []
        # one discovery at a time, and no other call on this model while its probe
        # hooks are attached (they would count that call's layers twice)
        with self.model_lock():
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

    def layer_info(self, layer: str) -> LayerInfo:
        """The listed layer called ``layer``; one line saying why when it is not listed."""
        infos = {info.name: info for info in self.layers()}
        if layer in infos:
            return infos[layer]
        # the framework's own word first (no such layer, no hooks here...); a bare name
        # inside a nested model resolves to its path
        resolved = self.resolve_layer(layer)
        if resolved in infos:
            return infos[resolved]
        raise UnsupportedError(
            f"layer {layer!r} of {self.name} has no single output per forward pass (it runs more than once, "
            "or gives no tensor), so what its axes mean is not established; pick a listed layer "
            "(python -m xai_core layers)"
        )

    def layer_layout(self, layer: str) -> LayerLayout:
        """The layout of ``layer``'s output (see :mod:`xai_core.adapters.layouts`)."""
        info = self.layer_info(layer)
        if info.layout is None:
            return not_a_map("axes that were not established")
        return info.layout

    def map_layer(self, layer: str, method: str) -> LayerLayout:
        """``layer``'s layout when its output is a map; else the one-line refusal."""
        layout = self.layer_layout(layer)
        if not layout.is_map:
            raise layout.refusal(layer, method)
        return layout

    def unit_layout(self, layer: str, where: str, shape: tuple[int, ...]) -> LayerLayout:
        """The layout of the values :meth:`layer_values` gives at ``layer``'s output
        (or input, ``where='input'``), ``shape`` one item's; one line saying why
        when those values are neither a map nor a vector of units."""
        if where == "input":
            if len(shape) == 1:
                return vector_layout(shape[0], "shape of a layer input")
            kind = self.layer_info(layer).kind.lower()
            if len(shape) == 3 and "conv" in kind:
                return self._conv_input_layout(shape)
            raise UnsupportedError(
                f"the input of layer {layer!r} ({'x'.join(map(str, shape))}) has no established layout; "
                "attribute to the output of the layer before it instead"
            )
        layout = self.layer_layout(layer)
        if not (layout.is_map or layout.kind == "vector"):
            raise layout.refusal(layer, "a method at a layer", "a map or a vector of units")
        if layout.raw_shape() != tuple(shape):
            raise UnsupportedError(f"layer {layer!r} gave {'x'.join(map(str, shape))} values, not the "
                                   f"{layout.describe()} it was probed with; pick another layer")
        return layout

    def _conv_input_layout(self, shape: tuple[int, ...]) -> LayerLayout:
        """The layout of a convolution's input (one item's shape), by the framework's rule."""
        return LayerLayout("channels_first", (shape[1], shape[2]), shape[0], source="convolution input")

    def default_cam_layer(self) -> str | None:
        """The default layer of the class-activation methods, see :meth:`default_cam_choice`."""
        return self.default_cam_choice()[0]

    def default_cam_choice(self) -> tuple[str | None, str]:
        """(the default CAM layer, why it was picked): a map whose values carry the
        class signal (a probe pass: the target's gradient x activation there is not
        ~0 next to the strongest layer's). Among transformer token maps, the last
        such norm (for a ViT with a class token the last block's first norm, as
        pytorch-grad-cam recommends: later layers no longer reach the class token
        from the patch tokens); otherwise the last convolution-like map (never
        pooling, dropout, padding or reshaping) run once per forward pass."""
        if "_cam_choice" not in self.__dict__:
            self._cam_choice = self._pick_cam_layer()
        return self._cam_choice

    def _pick_cam_layer(self) -> tuple[str | None, str]:
        layers = self.layers()
        maps = [info for info in layers if info.feature_map]
        if not maps:
            return None, "no layer gives a spatial map"
        later = [info for info in layers if not info.vector]
        if later and not later[-1].spatial and not later[-1].passive:
            # the model goes on past its maps through layers whose axes are not established
            # (a transformer whose tokens could not be folded): its last map is not its representation
            return None, (f"the last layers (e.g. {later[-1].name!r}: {later[-1].layout.describe() if later[-1].layout else '?'}) "
                          "are not maps, so no earlier map can stand for the model; choose a layer")
        try:
            signal = self._class_signal([info.name for info in maps])
        except Exception:  # noqa: BLE001 - no probe: the order of the layers decides
            signal = {}
        strongest = max(signal.values(), default=0.0)
        carrying = [info for info in maps if not signal or signal.get(info.name, 0.0) > 1e-3 * strongest]
        last = maps.index(carrying[-1]) if carrying else -1
        dropped = len(maps) - 1 - last
        note = f"; {dropped} later map(s) left out: their maps are ~0 for the class" if dropped and signal else ""
        if any(info.layout is not None and info.layout.kind == "tokens" for info in carrying):
            norms = [info for info in carrying if info.layout.kind == "tokens" and "norm" in info.kind.lower()]
            if norms:
                return norms[-1].name, ("the last transformer norm whose patch tokens still carry the class signal "
                                        "(for a ViT the last block's first norm, as pytorch-grad-cam recommends)" + note)
        if not carrying:
            return maps[-1].name, "the last spatial map"
        return carrying[-1].name, "the last spatial map that carries the class signal" + note

    def _class_signal(self, layers: list[str]) -> dict[str, float]:
        """For each layer: sum over the map of |Grad-CAM| of the probe image's predicted
        class (gradient-averaged channels x activations). {} where no probe runs."""
        return {}


__all__ = ["DENSE_KINDS", "PASSIVE_KINDS", "LayerCatalogue", "LayerInfo", "LayerRecorder"]
