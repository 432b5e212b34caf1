"""Layer layouts of a PyTorch model, read from its ATen graph.

The graph is a ``torch.export`` program: the one a ``.pt2`` file holds (walked
module by module through its unflattened form), or, for an ``nn.Module``, one
exported here from a probe input. Every tensor axis is traced back to the image:
each axis is a product of *atoms*, pieces of the input's batch (N), height (H) or
width (W) axes, or of channel-like axes (C). Convolutions and pools make a new
H x W grid; views split and merge atoms; permutes reorder axes; ``cat`` with a
class token adds extra tokens to a token axis. A layer's output whose axes are
(C, H, W), (H, W, C) or (H.W tokens, C) is a map; two token axes are attention
weights; an axis that mixes the batch with positions (Swin windows), an
operation the tracer does not know, a roll, a pad or a crop make the axis
untraced, and the layer is not offered as a map. No shape is guessed: a layer is
a map only where its axes come from the image's height and width.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch

from xai_core.adapters.layouts import (
    ATTENTION_WEIGHTS,
    UNTRACED,
    WINDOWS,
    LayerLayout,
    not_a_map,
    vector_layout,
)

SOURCE = "model graph"


@dataclass(frozen=True)
class Atom:
    """A piece of an input axis: ``label`` N, H, W (of grid ``grid``) or C; a piece
    of ``size`` values, ``stride`` apart within the whole axis of ``full`` values."""

    label: str
    size: int
    stride: int = 1
    full: int = 0
    grid: int = 0

    @property
    def outer(self) -> bool:
        """The outermost piece of its axis (what survives as a coarser grid)."""
        return self.size * self.stride == self.full


@dataclass
class Axis:
    atoms: tuple[Atom, ...] = ()
    prefix: int = 0  # extra tokens before the patch tokens of a token axis
    suffix: int = 0
    known: bool = True

    @property
    def labelled(self) -> bool:
        return bool(self.atoms) or self.prefix > 0 or self.suffix > 0 or not self.known


UNKNOWN = Axis(known=False)


@dataclass
class Tracer:
    """Traces axes through one graph; ``grids`` counts the grids made so far."""

    grids: list[int] = field(default_factory=lambda: [0])
    symbols: dict = field(default_factory=dict)

    def size(self, value) -> int:
        """A concrete int for a size; a symbolic size (a dynamic batch) gets a large
        prime of its own so that it matches nothing by accident."""
        if isinstance(value, int):
            return value
        if not isinstance(value, torch.SymInt):
            return int(value)
        # never int() a symbolic size: that would specialise the program's shape (a guard)
        expr = value.node.expr
        if not expr.free_symbols:
            return int(expr)
        subs = {}
        for sym in expr.free_symbols:
            subs[sym] = self.symbols.setdefault(sym, [10007, 10009, 10037, 10039, 10061][len(self.symbols) % 5])
        return int(expr.subs(subs))

    def shape(self, val) -> tuple[int, ...] | None:
        if isinstance(val, torch.Tensor):
            return tuple(self.size(v) for v in val.shape)
        return None

    def new_grid(self) -> int:
        self.grids[0] += 1
        return self.grids[0]

    def image(self, shape: tuple[int, ...]) -> list[Axis]:
        """The model input N x C x H x W."""
        n, c, h, w = shape
        g = self.new_grid()
        return [Axis((Atom("N", n, 1, n),)), Axis((Atom("C", c, 1, c),)),
                Axis((Atom("H", h, 1, h, g),)), Axis((Atom("W", w, 1, w, g),))]

    @staticmethod
    def const(shape: tuple[int, ...]) -> list[Axis]:
        return [Axis((Atom("C", s, 1, s),) if s != 1 else ()) for s in shape]


def role(axis: Axis) -> tuple[str, object]:
    """('N'|'H'|'W'|'T'|'C'|'?', detail) for one axis."""
    if not axis.known:
        return "?", None
    atoms = [a for a in axis.atoms if a.size != 1 or a.label == "N"]  # a batch of one is still the batch
    labels = [a.label for a in atoms]
    if "N" in labels:
        return ("N", None) if labels == ["N"] else ("mixed", None)
    spatial = [a for a in atoms if a.label in "HW"]
    if not spatial:
        return ("C", None) if axis.prefix == 0 and axis.suffix == 0 else ("?", None)
    # a run of H pieces from the outermost down is a (coarser) height; inner
    # pieces without the outermost are folded into channels (space to depth)
    runs = _runs([a for a in atoms if a.label != "N"])
    if runs is None:
        return "?", None
    if all(label == "C" for label, _ in runs):
        return "C", None
    if len(runs) == 1 and runs[0][0] in "HW" and axis.prefix == 0 and axis.suffix == 0:
        return runs[0][0], runs[0][1]
    if len(runs) == 2 and runs[0][0] == "H" and runs[1][0] == "W":
        (_, (gh, hsize)), (_, (gw, wsize)) = runs
        if gh == gw:
            return "T", (hsize, wsize, axis.prefix, axis.suffix)
    return "?", None


def _runs(atoms: list[Atom]) -> list[tuple[str, object]] | None:
    """Group an axis's atoms into runs: ('H'|'W', (grid, size)) for an outer run of
    one spatial axis, ('C', None) for channels and inner spatial pieces."""
    runs: list[tuple[str, object]] = []
    i = 0
    while i < len(atoms):
        a = atoms[i]
        if a.label in "HW" and a.outer:
            size, stride, j = a.size, a.stride, i + 1
            while j < len(atoms) and atoms[j].label == a.label and atoms[j].grid == a.grid \
                    and atoms[j].size * atoms[j].stride == stride:
                size, stride = size * atoms[j].size, atoms[j].stride
                j += 1
            runs.append((a.label, (a.grid, size)))
            i = j
        else:
            if a.label == "N":
                return None
            runs.append(("C", None))
            i += 1
    merged: list[tuple[str, object]] = []
    for r in runs:
        if r[0] == "C" and merged and merged[-1][0] == "C":
            continue
        merged.append(r)
    return merged


def layout_of(axes: list[Axis] | None, shape: tuple[int, ...]) -> LayerLayout:
    """The layout of a tensor whose axes were traced (batch axis first)."""
    if axes is None or len(axes) != len(shape) or not axes:
        return not_a_map(UNTRACED, SOURCE)
    roles = [role(a) for a in axes]
    if roles[0][0] != "N":
        return not_a_map(WINDOWS if any(r[0] == "mixed" for r in roles) else UNTRACED, SOURCE)
    rest = [(r, s) for r, s in zip(roles[1:], shape[1:], strict=True) if not (r[0] == "C" and s == 1)]
    kinds = "".join(r[0][0] if r[0][0] != "mixed" else "m" for r, _ in rest)
    if "m" in kinds:
        return not_a_map(WINDOWS, SOURCE)
    if kinds.count("T") >= 2:
        return not_a_map(ATTENTION_WEIGHTS, SOURCE)
    if "?" in kinds:
        return not_a_map(UNTRACED, SOURCE)
    sizes = [s for _, s in rest]
    details = [r[1] for r, _ in rest]
    if kinds == "C":
        return vector_layout(sizes[0], SOURCE)
    if kinds == "CHW" and details[1][0] == details[2][0]:
        return LayerLayout("channels_first", (sizes[1], sizes[2]), sizes[0], source=SOURCE)
    if kinds == "HWC" and details[0][0] == details[1][0]:
        return LayerLayout("channels_last", (sizes[0], sizes[1]), sizes[2], source=SOURCE)
    if kinds == "TC":
        h, w, pre, post = details[0]
        return LayerLayout("tokens", (h, w), sizes[1], prefix=pre, suffix=post, source=SOURCE)
    if kinds == "CT":
        return not_a_map("tokens with the channels first (N x C x tokens)", SOURCE)
    return not_a_map(UNTRACED, SOURCE)


# -- the operations ------------------------------------------------------------------
IDENTITY = {
    "clone", "contiguous", "dropout", "alias", "detach", "_to_copy", "to", "type_as", "lift_fresh_copy",
    "feature_dropout", "alpha_dropout", "softmax", "_softmax", "log_softmax", "_log_softmax", "layer_norm",
    "native_layer_norm", "batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
    "_native_batch_norm_legit_functional", "native_batch_norm", "cudnn_batch_norm", "group_norm",
    "native_group_norm", "instance_norm", "rms_norm", "_fused_rms_norm", "native_dropout", "copy", "hardtanh",
    "gelu", "relu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "leaky_relu", "elu", "mish",
    "_assert_tensor_metadata", "dequantize", "_unsafe_index_put", "fill", "zeros_like", "ones_like",
}
RESHAPE = {"view", "reshape", "_unsafe_view", "view_copy", "flatten", "unflatten", "squeeze", "unsqueeze",
           "squeeze_copy", "unsqueeze_copy", "_reshape_alias", "expand", "expand_copy"}
CONV = {"conv2d", "convolution", "_convolution", "conv_transpose2d", "cudnn_convolution", "mkldnn_convolution"}
POOL = {"max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d",
        "adaptive_max_pool2d", "upsample_nearest2d", "upsample_bilinear2d", "upsample_bicubic2d",
        "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa", "_upsample_nearest_exact2d"}
REDUCE = {"mean", "sum", "amax", "amin", "max", "min", "var", "std", "logsumexp", "norm", "linalg_vector_norm"}


def _name(target) -> str:
    packet = getattr(target, "_overloadpacket", None)
    if packet is not None:
        return packet.__name__
    return getattr(target, "__name__", str(target))


def _pointwise(target) -> bool:
    tags = getattr(target, "tags", ())
    return torch.Tag.pointwise in tags


def reshape(axes: list[Axis], out: tuple[int, ...]) -> list[Axis] | None:
    """Axes after a view to ``out``: atoms are split and merged in order. A token
    axis with extra tokens, or an untraced axis, is one piece that cannot be split:
    it survives only as a whole axis."""
    whole: dict[str, Axis] = {}
    flat: list[list[Atom]] = []
    for axis in axes:
        if not axis.known or axis.prefix or axis.suffix:
            key = f"X{len(whole)}"
            whole[key] = axis
            flat.append([Atom(key, _size(axis) if axis.known else -1, 1, 0)])
        else:
            flat.append(list(axis.atoms))
    if any(a.size < 0 for atoms in flat for a in atoms):
        return _carry_whole(axes, out)
    keep_batch = bool(axes) and bool(out) and [a.label for a in flat[0]] == ["N"] and flat[0][0].size == out[0]
    start = 1 if keep_batch else 0
    pieces = [atom for atoms in flat[start:] for atom in atoms if atom.size != 1]
    result = [axes[0]] if keep_batch else []
    for size in out[start:]:
        got: list[Atom] = []
        need = size
        while need > 1:
            if not pieces:
                return None
            atom = pieces[0]
            if atom.size <= need and need % atom.size == 0:
                got.append(atom)
                pieces.pop(0)
                need //= atom.size
            elif atom.size % need == 0 and not atom.label.startswith("X"):  # split: its outer part here
                inner = atom.size // need
                got.append(Atom(atom.label, need, atom.stride * inner, atom.full, atom.grid))
                pieces[0] = Atom(atom.label, inner, atom.stride, atom.full, atom.grid)
                need = 1
            else:
                return None
        opaque = [a for a in got if a.label.startswith("X")]
        if opaque:
            result.append(whole[opaque[0].label] if len(got) == 1 else UNKNOWN)
        else:
            result.append(Axis(tuple(got)))
    if pieces:
        return None
    return result


def _carry_whole(axes: list[Axis], out: tuple[int, ...]) -> list[Axis]:
    """A view of a tensor with untraced axes: axes of the same size in the same
    order are carried; the others are untraced."""
    result = []
    shapes = [_size(a) for a in axes]
    i = 0
    for size in out:
        while i < len(axes) and shapes[i] == 1 and size != 1:
            i += 1
        if i < len(axes) and shapes[i] == size:
            result.append(axes[i])
            i += 1
        elif size == 1:
            result.append(Axis())
        else:
            return [UNKNOWN if s != 1 else Axis() for s in out]
    return result


def _size(axis: Axis) -> int:
    if not axis.known:
        return -1
    n = math.prod(a.size for a in axis.atoms) if axis.atoms else 1
    return n + axis.prefix + axis.suffix


def broadcast(operands: list[list[Axis]], shapes: list[tuple[int, ...]], out: tuple[int, ...]) -> list[Axis]:
    """Axes of an elementwise result: each axis from an operand that spans it,
    preferring one traced to the image."""
    result = []
    for i in range(1, len(out) + 1):
        size = out[-i]
        choices = [ax[-i] for ax, sh in zip(operands, shapes, strict=True) if len(sh) >= i and sh[-i] == size]
        labelled = [a for a in choices if a.known and a.labelled]
        if labelled:
            result.append(labelled[0])
        elif any(not a.known for a in choices):
            result.append(UNKNOWN)
        else:
            result.append(Axis((Atom("C", size, 1, size),)) if size != 1 else Axis())
    return result[::-1]


class GraphTracer(Tracer):
    """Walks an FX graph of ATen operations, axes per value."""

    def __init__(self) -> None:
        super().__init__()
        self.modules: dict[str, list[Axis] | None] = {}
        self._env: dict = {}

    def run(self, graph, inputs: list, root=None, prefix: str = ""):
        """Trace ``graph``; ``inputs`` gives the axes of its placeholders in order
        (None: a constant, traced from its shape). Returns the output's axes (a tuple
        for several outputs). For an unflattened program, ``call_module`` nodes are
        traced inside ``root``'s submodules and their outputs recorded in
        :attr:`modules` by name."""
        saved = self._env
        self._env = {}
        try:
            return self._run(graph, inputs, root, prefix, self._env)
        finally:
            self._env = saved

    def _run(self, graph, inputs, root, prefix, env):
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        for node, given in zip(placeholders, list(inputs) + [None] * (len(placeholders) - len(inputs)), strict=False):
            env[node] = given if given is not None else self._const(node)
        result = None
        for node in graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "get_attr":
                env[node] = self._const(node)
            elif node.op == "output":
                result = self._arg(env, node.args[0])
            elif node.op == "call_module" and root is not None:
                sub = root.get_submodule(node.target)
                name = f"{prefix}{node.target}"
                args = [self._arg(env, a) for a in node.args]
                sub_graph = getattr(sub, "graph", None)
                out = None
                if sub_graph is not None:
                    out = self.run(sub_graph, [a if isinstance(a, list) else None for a in args], sub, name + ".")
                env[node] = out
                first = out[0] if isinstance(out, tuple) and out and not isinstance(out[0], Axis) else out
                self.modules[name] = first if isinstance(first, list) else None
            elif node.op == "call_function":
                try:
                    env[node] = self.call(node, env)
                except Exception:  # noqa: BLE001 - an operation the tracer cannot follow: untraced
                    env[node] = None
            else:
                env[node] = None
        return result

    def _const(self, node):
        shape = self.shape(node.meta.get("val"))
        return self.const(shape) if shape is not None else None

    def _arg(self, env, a):
        if isinstance(a, (list, tuple)):
            return tuple(self._arg(env, v) for v in a)
        if isinstance(a, torch.fx.Node):
            return env.get(a)
        return None

    def call(self, node, env):
        name = _name(node.target)
        out_val = node.meta.get("val")
        out = self.shape(out_val)
        args = node.args

        def axes(i: int):
            a = args[i] if i < len(args) else None
            return env.get(a) if isinstance(a, torch.fx.Node) else None

        def shape_of(i: int):
            a = args[i]
            return self.shape(a.meta.get("val")) if isinstance(a, torch.fx.Node) else None

        if node.target is operator.getitem:
            src = axes(0)
            return src[args[1]] if isinstance(src, (tuple, list)) and src and isinstance(src[0], (list, type(None))) \
                and not isinstance(src[0], Axis) else src
        x = axes(0)
        if name in ("sym_size", "sym_numel", "sym_stride", "_assert_async", "_assert_scalar"):
            return None
        if isinstance(out_val, (tuple, list)):  # several outputs: the first traced, the rest untraced
            if name in ("unbind",):
                dim = args[1] if len(args) > 1 else 0
                piece = None if x is None else [a for k, a in enumerate(x) if k != dim % len(x)]
                return tuple(piece for _ in out_val)
            if name in ("split", "split_with_sizes", "chunk", "tensor_split", "unsafe_split"):
                dim = (args[2] if len(args) > 2 else 0)
                if x is None:
                    return tuple(None for _ in out_val)
                dim %= len(x)
                kept = role(x[dim])[0] == "C"
                return tuple(
                    None if not kept else [a if k != dim else Axis((Atom("C", self.shape(v)[k], 1, self.shape(v)[k]),))
                                           for k, a in enumerate(x)]
                    for v in out_val)
            first = self._single(name, node, x, axes, shape_of, self.shape(out_val[0]))
            return tuple([first] + [None] * (len(out_val) - 1))
        return self._single(name, node, x, axes, shape_of, out)

    def _single(self, name, node, x, axes, shape_of, out):
        args = node.args
        if out is None:
            return None
        if x is None and name not in ("cat", "scaled_dot_product_attention") and not _pointwise(node.target):
            if isinstance(args[0] if args else None, torch.fx.Node) or name in ("linear", "addmm", "mm"):
                return None
            return self.const(out)
        if name in IDENTITY:
            return list(x) if len(x) == len(out) else None
        if _pointwise(node.target) or name in ("where", "masked_fill", "lerp", "addcmul", "addcdiv", "clamp"):
            ops = [(env_axes, sh) for env_axes, sh in self._tensor_args(node, axes, shape_of)]
            if not ops:
                return self.const(out)
            if any(a is None for a, _ in ops):
                ops = [(a if a is not None else [UNKNOWN] * len(sh), sh) for a, sh in ops]
            return broadcast([a for a, _ in ops], [sh for _, sh in ops], out)
        if name in ("permute", "permute_copy"):
            return [x[d] for d in args[1]]
        if name in ("transpose", "transpose_copy", "swapaxes"):
            a, b = args[1] % len(x), args[2] % len(x)
            y = list(x)
            y[a], y[b] = y[b], y[a]
            return y
        if name in ("t", "numpy_T"):
            return list(reversed(x))
        if name in RESHAPE:
            if name in ("expand", "expand_copy"):
                src = shape_of(0)
                pad = len(out) - len(src)
                y = [Axis()] * pad + list(x)
                return [ax if _size(ax) == s or not ax.known else Axis((Atom("C", s, 1, s),)) for ax, s in zip(y, out, strict=False)]
            return reshape(list(x), out)
        if name in CONV:
            if len(x) != 4 or role(x[2])[0] != "H" or role(x[3])[0] != "W":
                return None
            g = self.new_grid()
            return [x[0], Axis((Atom("C", out[1], 1, out[1]),)), Axis((Atom("H", out[2], 1, out[2], g),)),
                    Axis((Atom("W", out[3], 1, out[3], g),))]
        if name in POOL:
            if len(x) != 4 or role(x[2])[0] != "H" or role(x[3])[0] != "W":
                return None
            g = self.new_grid()
            return [x[0], x[1], Axis((Atom("H", out[2], 1, out[2], g),) if out[2] != 1 else ()),
                    Axis((Atom("W", out[3], 1, out[3], g),) if out[3] != 1 else ())]
        if name in ("linear", "mm", "addmm", "matmul", "bmm", "baddbmm"):
            if name == "addmm" or name == "baddbmm":
                a, b = axes(1), axes(2)
            else:
                a, b = x, axes(1)
            if name == "linear" or name in ("mm", "addmm") and b is not None and role(b[-1])[0] == "C" and \
                    all(role(v)[0] == "C" for v in b):
                if a is None:
                    return None
                return list(a[:-1]) + [Axis((Atom("C", out[-1], 1, out[-1]),))]
            if a is None or b is None or len(a) < 2 or len(b) < 2:
                return None
            lead_a, lead_b = a[:-2], b[:-2]
            n_lead = len(out) - 2
            lead = broadcast([list(lead_a), list(lead_b)],
                             [tuple(_size(v) for v in lead_a), tuple(_size(v) for v in lead_b)],
                             tuple(out[:n_lead])) if n_lead else []
            return lead + [a[-2], b[-1]]
        if name in ("scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
                    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention"):
            q, v = x, axes(2)
            if q is None or v is None:
                return None
            return list(q[:-1]) + [v[-1]]
        if name == "cat":
            return self._cat(node, out, shape_of)
        if name in ("slice", "slice_copy"):
            return self._slice(x, node, shape_of(0), out)
        if name in ("select", "select_copy"):
            dim = args[1] % len(x)
            if role(x[dim])[0] in ("N", "H", "W"):
                return None
            return [a for k, a in enumerate(x) if k != dim]
        if name in REDUCE:
            dims = args[1] if len(args) > 1 and args[1] is not None else list(range(len(x)))
            dims = [dims] if isinstance(dims, int) else list(dims)
            dims = {d % len(x) for d in dims}
            keep = bool(args[2]) if len(args) > 2 and isinstance(args[2], bool) else bool(node.kwargs.get("keepdim"))
            if 0 in dims:
                return None
            if keep:
                return [Axis() if k in dims else a for k, a in enumerate(x)]
            return [a for k, a in enumerate(x) if k not in dims]
        if name == "roll":  # a cyclic shift moves positions: the rolled axes are untraced
            rolled = _roll_dims(node, len(x))
            return [UNKNOWN if k in rolled else a for k, a in enumerate(x)]
        if name in ("constant_pad_nd", "pad", "reflection_pad2d", "replicate_pad2d", "reflection_pad1d",
                    "replication_pad2d"):
            return [a if s == o else _resized(a, o) if role(a)[0] in ("H", "W") and o > 0 else UNKNOWN
                    for a, s, o in zip(x, shape_of(0), out, strict=True)] if _all_sized(x, out) else None
        return None

    def _tensor_args(self, node, axes, shape_of):
        found = []
        for i, a in enumerate(node.args):
            if isinstance(a, torch.fx.Node) and isinstance(a.meta.get("val"), torch.Tensor):
                found.append((axes(i), shape_of(i)))
        return found

    def _cat(self, node, out, shape_of):
        tensors = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        dim %= len(out)
        parts = []
        for t in tensors:
            parts.append((self._env_get(t), self.shape(t.meta.get("val"))))
        labelled = [(k, ax) for k, (ax, _) in enumerate(parts) if ax is not None and role(ax[dim])[0] == "T"
                    or ax is not None and role(ax[dim])[0] in ("H", "W")]
        rest = [(ax, sh) for ax, sh in parts]
        if len(labelled) == 1:
            k, ax = labelled[0]
            if role(ax[dim])[0] != "T":
                return None
            others = [p for j, p in enumerate(rest) if j != k]
            if any(p[0] is not None and role(p[0][dim])[0] not in ("C",) for p in others):
                return None
            pre = sum(sh[dim] for j, (_, sh) in enumerate(rest) if j < k)
            post = sum(sh[dim] for j, (_, sh) in enumerate(rest) if j > k)
            axis = ax[dim]
            merged = Axis(axis.atoms, axis.prefix + pre, axis.suffix + post)
            return [merged if i == dim else ax[i] for i in range(len(out))]
        if not labelled and all(p[0] is not None for p in rest):
            base = next((ax for ax, _ in rest if any(a.labelled for a in ax)), rest[0][0])
            return [Axis((Atom("C", out[i], 1, out[i]),)) if i == dim else base[i] for i in range(len(out))]
        return None

    def _env_get(self, node):
        return self._env.get(node)

    def _slice(self, x, node, src, out):
        args = node.args
        dim = (args[1] if len(args) > 1 else 0) % len(x)
        start = args[2] if len(args) > 2 and args[2] is not None else 0
        step = args[4] if len(args) > 4 else 1
        if out[dim] == src[dim]:
            return list(x)
        axis = x[dim]
        kind, detail = role(axis)
        if kind == "C":
            return [Axis((Atom("C", out[dim], 1, out[dim]),)) if k == dim else a for k, a in enumerate(x)]
        if kind == "T" and step == 1:
            h, w, pre, post = detail
            start = self.size(start)
            start = start + src[dim] if start < 0 else start
            end = start + out[dim]
            if start <= pre and end >= src[dim] - post:
                new = Axis(axis.atoms, pre - start, post - (src[dim] - end))
                return [new if k == dim else a for k, a in enumerate(x)]
            return [UNKNOWN if k == dim else a for k, a in enumerate(x)]
        if kind in ("H", "W") and step == 1:  # a crop: the same grid, fewer rows or columns
            return [_resized(a, out[dim]) if k == dim else a for k, a in enumerate(x)]
        return [UNKNOWN if k == dim else a for k, a in enumerate(x)]


def _resized(axis: Axis, size: int | None = None) -> Axis:
    """A padded or cropped height or width: one piece of the new size on the same grid."""
    atom = next(a for a in axis.atoms if a.label in "HW" and a.size != 1)
    size = size if size is not None else -1
    return Axis((Atom(atom.label, size, 1, size, atom.grid),)) if size > 1 else UNKNOWN


def _all_sized(x, out) -> bool:
    return len(x) == len(out)


def _roll_dims(node, rank: int) -> set[int]:
    dims = node.args[2] if len(node.args) > 2 else node.kwargs.get("dims", ())
    dims = [dims] if isinstance(dims, int) else list(dims or range(rank))
    return {d % rank for d in dims}


def unflattened_axes(module) -> dict[str, list[Axis] | None]:
    """Axes of every submodule's output of an unflattened ``torch.export`` program
    (its first output where it has several), by module name."""
    tracer = GraphTracer()
    graph = module.graph
    user = [n for n in graph.nodes if n.op == "placeholder"]
    inputs = []
    for node in user:
        shape = tracer.shape(node.meta.get("val"))
        inputs.append(tracer.image(shape) if shape is not None and len(shape) == 4 else None)
    tracer.run(graph, inputs, module, "")
    return tracer.modules, tracer


def exported_axes(model, example: torch.Tensor):
    """Export an nn.Module on ``example`` (N x C x H x W, N >= 2) and trace every
    module's output axes (by ``nn_module_stack``). Returns ({name: axes}, tracer)."""
    program = torch.export.export(model, (example,), strict=False)
    graph = program.graph
    user_inputs = set(program.graph_signature.user_inputs)
    tracer = GraphTracer()
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    inputs = []
    for node in placeholders:
        shape = tracer.shape(node.meta.get("val"))
        inputs.append(tracer.image(shape) if node.name in user_inputs and shape is not None and len(shape) == 4
                      else None)
    env_holder: dict = {}
    tracer._env = env_holder
    tracer._run(graph, inputs, None, "", env_holder)
    scopes: dict[str, list] = {}
    node_scope: dict = {}
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        names = {v[0] for v in stack.values()}
        node_scope[node] = names
        for name in names:
            scopes.setdefault(name, []).append(node)
    found: dict[str, list] = {}
    for name, nodes in scopes.items():
        leaving = [n for n in nodes if any(name not in node_scope.get(u, set()) for u in n.users)]
        found[name] = [(tracer.shape(n.meta.get("val")), env_holder.get(n)) for n in leaving]
    return found, tracer


def converted_axes(module, example: torch.Tensor) -> list[tuple[torch.Tensor, list[Axis] | None]]:
    """Every tensor a graph module of ATen operations (a TorchScript program
    converted to ``torch.export``, which keeps no module names) computes on
    ``example`` (its one input, N x C x H x W), with its traced axes: a layer's
    output is then found among them by its values."""
    tracer = GraphTracer()
    env: dict = {}
    placeholders = [n for n in module.graph.nodes if n.op == "placeholder"]
    shape = tracer.shape(placeholders[0].meta.get("val")) or tuple(example.shape)  # sizes may be symbolic
    inputs = [tracer.image(shape)] + [None] * (len(placeholders) - 1)
    tracer._env = env
    tracer._run(module.graph, inputs, None, "", env)
    values: dict = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            values[n] = out
            return out

    with torch.no_grad():
        Recorder(module).run(example)
    return [(v, env.get(n)) for n, v in values.items() if isinstance(v, torch.Tensor) and n.op != "get_attr"]


__all__ = ["converted_axes", "exported_axes", "layout_of", "unflattened_axes"]
