"""SHAP Partition explainer with an image masker (Lundberg & Lee 2017,
arXiv:1705.07874; Owen values over a hierarchy of pixel blocks).

The Shapley estimation is shap's own ``Partition`` explainer; our part is a fast
batched model call (no autograd, channels-last), a seeded, reported budget,
shap's image masker with two costs taken out (:func:`image_masker`): its partition
tree (1.2 s for a 224 x 224 x 3 image) is built once per image shape, and the
blurred image once per explained image (shap keys that cache on the id of a fresh
``ravel()``, so it blurred again for every mask; the masked images are the same),
and for models with several inputs a joint masker (:class:`JointMasker`) that puts
each input's partition tree under one root (shap's ``Composite`` masker does not
join clusterings).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from xai_core.explainers._hidden import hidden_values, vector_background
from xai_core.explainers.base import (
    Context,
    Drawing,
    Explainer,
    RawAttribution,
    channel_sum,
    param,
    per_input,
    register,
)
from xai_core.explainers.stable_budget import StableBudget, round_budgets


@dataclass(frozen=True)
class ShapPartitionParams:
    max_evals: int = param(500, low=50, high=50000, help="model evaluations shap may spend")
    masker: str = param(
        "blur", choices=("blur", "inpaint_telea", "inpaint_ns"), help="how masked pixels are filled"
    )
    blur_fraction: float = param(
        0.5, low=0.05, high=1.0, step=0.05, help="blur kernel as a fraction of the image side (blur masker)"
    )
    tolerance: float = param(
        0.0, low=0.0, high=1.0, step=0.01,
        help="stop early: run at doubling budgets from max_evals/8 (each round re-using the previous round's "
             "evaluations) until the top-10 of an 8x8 grid of blocks keeps its ranking and moves by at most this "
             "fraction of the largest block (0: one run at max_evals)",
    )
    background_file: str = vector_background()


GRID = 8  # blocks per side whose values the stability check compares


def block_sums(attribution: np.ndarray, grid: int = GRID) -> np.ndarray:
    """H x W map -> grid x grid sums over near-equal blocks."""
    rows = np.linspace(0, attribution.shape[0], grid + 1).astype(int)[:-1]
    cols = np.linspace(0, attribution.shape[1], grid + 1).astype(int)[:-1]
    return np.add.reduceat(np.add.reduceat(attribution, rows, axis=0), cols, axis=1)


def masker_spec(params: ShapPartitionParams, h: int, w: int) -> str:
    if params.masker == "blur":
        kh = max(1, int(round(h * params.blur_fraction)))
        kw = max(1, int(round(w * params.blur_fraction)))
        return f"blur({kh},{kw})"
    return params.masker


@lru_cache(maxsize=8)
def _partition_tree(spec: str, shape: tuple[int, ...]) -> np.ndarray:
    import shap

    tree = shap.maskers.Image(spec, shape).clustering
    tree.flags.writeable = False
    return tree


@lru_cache(maxsize=1)
def _masker_class() -> type:
    import shap

    class ImageMasker(shap.maskers.Image):
        """shap's Image masker; the tree from :func:`_partition_tree`, the blur computed once per image."""

        def build_partition_tree(self) -> None:
            self.clustering = _partition_tree(self.input_mask_value, tuple(self.input_shape)).copy()

        keys: list[bytes] | None = None  # when a list: a digest of every mask, in the order masked

        def __call__(self, mask, x):
            if self.keys is not None:
                self.keys.append(b"" if mask is None else _mask_digest(mask))
            if not isinstance(self.mask_value, str) or self.blur_kernel is None or not isinstance(x, np.ndarray):
                return super().__call__(mask, x)
            if x.size != np.prod(self.input_shape):
                return super().__call__(mask, x)  # shap's own error
            flat = x.ravel()
            if mask is None:
                mask = np.zeros(flat.size, dtype=bool)
            blurred = getattr(self, "_blurred", None)
            if blurred is None or blurred[0] is not x:
                import cv2

                blurred = (x, cv2.blur(x.reshape(self.input_shape), self.blur_kernel).ravel())
                self._blurred = blurred
            return (np.where(mask, flat, blurred[1]).reshape(1, *x.shape),)

    return ImageMasker


def _mask_digest(mask: np.ndarray) -> bytes:
    import hashlib

    return hashlib.blake2b(np.packbits(np.asarray(mask, bool)).tobytes(), digest_size=16).digest()


def image_masker(spec: str, shape: tuple[int, ...]):
    """A ``shap.maskers.Image(spec, shape)`` that masks the same, faster."""
    return _masker_class()(spec, tuple(shape))


def balanced_tree(n: int) -> np.ndarray:
    """A balanced binary partition tree over ``n`` features in order, as a scipy
    linkage matrix (rows: left, right, distance, leaves; node n + k is row k)."""
    rows: list[list[float]] = []

    def build(lo: int, hi: int) -> tuple[int, float]:
        if hi - lo == 1:
            return lo, 0.0
        mid = (lo + hi + 1) // 2
        (left, dl), (right, dr) = build(lo, mid), build(mid, hi)
        rows.append([left, right, max(dl, dr) + 1.0, hi - lo])
        return n + len(rows) - 1, max(dl, dr) + 1.0

    build(0, n)
    return np.array(rows, np.float64).reshape(-1, 4)


def join_trees(trees: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """Several inputs' linkage matrices -> one over all their leaves (input i's leaf
    j becomes leaf offset_i + j), the inputs' roots joined under one root."""
    total = sum(sizes)
    rows, roots, leaf_at, node_at = [], [], 0, 0
    top = max((float(t[:, 2].max()) for t in trees if len(t)), default=0.0)
    for tree, n in zip(trees, sizes, strict=True):
        def move(k: float, n: int = n, leaf_at: int = leaf_at, node_at: int = node_at) -> int:
            k = int(k)
            return leaf_at + k if k < n else total + node_at + (k - n)

        for left, right, distance, count in tree:
            rows.append([move(left), move(right), distance, count])
        roots.append(move(2 * n - 2))  # a linkage over n leaves has its root at node 2n - 2
        leaf_at, node_at = leaf_at + n, node_at + len(tree)
    counts = {leaf: 1 for leaf in range(total)}
    counts.update({total + k: int(r[3]) for k, r in enumerate(rows)})
    while len(roots) > 1:  # join the inputs' roots pairwise, above every input's own distances
        top += 1.0
        left, right = roots.pop(0), roots.pop(0)
        rows.append([left, right, top, counts[left] + counts[right]])
        counts[total + len(rows) - 1] = counts[left] + counts[right]
        roots.insert(0, total + len(rows) - 1)
    return np.array(rows, np.float64).reshape(-1, 4)


class JointMasker:
    """One shap masker over several inputs (shap's masker protocol: ``shape``,
    ``clustering``, ``mask_shapes``, ``__call__(mask, *args)`` -> the masked tuple).
    Image inputs are masked by shap's Image masker (blur or inpainting, its own
    partition tree of pixel blocks); a vector input's hidden features take
    ``fills[i]``, over a balanced binary tree of its features."""

    def __init__(self, inputs: list[np.ndarray], kinds: list[str], image_masker, fills: list[np.ndarray]) -> None:
        self.parts = [image_masker(x.shape) if k == "image" else None for x, k in zip(inputs, kinds, strict=True)]
        self.fills = fills
        self.sizes = [int(x.size) for x in inputs]
        self.bounds = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.shape = (1, int(self.bounds[-1]))
        trees = [m.clustering if m is not None else balanced_tree(n) for m, n in zip(self.parts, self.sizes, strict=True)]
        self.clustering = join_trees(trees, self.sizes)
        # a blur or inpainting depends on the image, so the all-hidden output is per row
        self.fixed_background = all(m is None or m.fixed_background for m in self.parts)
        self.immutable_outputs = True
        self.keys: list[bytes] | None = None  # as ImageMasker.keys: a digest of every mask, in order

    def mask_shapes(self, *args) -> list[tuple[int, ...]]:
        return [np.shape(a) for a in args]

    def __call__(self, mask, *args) -> tuple[np.ndarray, ...]:
        mask = np.ones(self.shape[1], bool) if mask is None else np.asarray(mask, bool)
        if self.keys is not None:
            self.keys.append(_mask_digest(mask))
        out = []
        for i, x in enumerate(args):
            part = mask[self.bounds[i] : self.bounds[i + 1]]
            if self.parts[i] is not None:
                out.append(self.parts[i](part, x)[0])
            else:
                out.append(np.where(part, x, self.fills[i])[None].astype(np.float32))
        return tuple(out)


def stability_summary(raws: list[np.ndarray], kinds: list[str]) -> np.ndarray:
    """What the stop-when-stable check compares: each image's 8x8 grid of block sums,
    then each vector's values."""
    return np.concatenate([(block_sums(channel_sum(r)) if k == "image" else r).ravel()
                           for r, k in zip(raws, kinds, strict=True)])


@register
class ShapPartition(Explainer):
    name = "shap_partition"
    label = "SHAP Partition (blur masker)"
    description = "Shapley values of pixel blocks, hiding blocks by blurring them (shap's Partition explainer)."
    paper = "Lundberg & Lee, 2017, A Unified Approach to Interpreting Model Predictions"
    Params = ShapPartitionParams
    drawing = Drawing(units="output")
    slow = True
    several_inputs = True

    def run(self, ctx: Context, params: ShapPartitionParams) -> RawAttribution:
        import shap

        def masker_for(shape: tuple[int, ...]):
            return image_masker(masker_spec(params, shape[0], shape[1]), shape)

        several = len(ctx.inputs) > 1
        if several or params.background_file:
            fills = hidden_values(ctx, lambda x: x, params.background_file)
            masker = JointMasker(ctx.inputs, ctx.kinds, masker_for, fills)
        else:
            masker = masker_for(ctx.image.shape)
        target = ctx.target
        # with rounds, each round's run repeats the previous one's tree walk (the walk
        # does not depend on the budget), so its masked inputs are evaluated once: shap
        # masks a batch and then calls the model on it, so the masker's digests, in
        # order, name the batch's items
        seen: dict[bytes, float] | None = {} if params.tolerance > 0 else None
        if seen is not None:
            masker.keys = []

        def f(*batch: np.ndarray) -> np.ndarray:
            parts = [np.asarray(b, np.float32) for b in batch]
            joined = ctx.adapter.join(parts) if len(parts) > 1 else parts[0]
            keys = masker.keys
            if seen is None or keys is None or len(keys) != len(parts[0]):
                if keys is not None:
                    keys.clear()
                scores = ctx.predict(joined)[:, target]
            else:
                names = list(keys)
                keys.clear()
                todo = [i for i, k in enumerate(names) if k not in seen]
                if todo:
                    subset = ctx.adapter.join([p[todo] for p in parts]) if len(parts) > 1 else parts[0][todo]
                    for i, score in zip(todo, ctx.predict(subset)[:, target], strict=True):
                        seen[names[i]] = float(score)
                scores = np.array([seen[k] for k in names], np.float32)
            ctx.progress(min(1.0, ctx.model_evals / params.max_evals), f"{ctx.model_evals} evaluations")
            return scores[:, None]

        explainer = shap.explainers.Partition(f, masker)

        def owen_values(budget: int) -> tuple[list[np.ndarray], float]:
            np.random.seed(ctx.seed)
            result = explainer(*[x[None] for x in ctx.inputs], max_evals=budget, batch_size=ctx.batch_size, silent=True)
            results = result if isinstance(result, list) else [result]
            raws = [np.asarray(r.values[0][..., 0], np.float32) for r in results]
            return raws, float(np.ravel(results[0].base_values)[0])

        check = StableBudget(params.tolerance)
        if params.tolerance == 0:
            budgets = [params.max_evals]
        else:
            budgets = round_budgets(params.max_evals, max(64, params.max_evals // 8))
        previous = None
        for budget in budgets:
            raws, base_value = owen_values(budget)
            grid = stability_summary(raws, ctx.kinds) if several else block_sums(channel_sum(raws[0]))
            change = np.abs(grid - previous) if previous is not None else np.full_like(grid, np.inf)
            previous = grid
            if check.settled(grid, change):
                break
        extras = {"base_value": base_value, **check.extras(budget, params.max_evals)}
        return per_input(raws, ctx.kinds, extras=extras) if several else RawAttribution(
            channel_sum(raws[0]), raw=raws[0], extras=extras)
