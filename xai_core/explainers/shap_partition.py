"""SHAP Partition explainer with an image masker (Lundberg & Lee 2017,
arXiv:1705.07874; Owen values over a hierarchy of pixel blocks).

The Shapley estimation is shap's own ``Partition`` explainer; our part is a fast
batched model call (no autograd, channels-last), a seeded, reported budget, and
shap's image masker with two costs taken out (:func:`image_masker`): its partition
tree (1.2 s for a 224 x 224 x 3 image) is built once per image shape, and the
blurred image once per explained image (shap keys that cache on the id of a fresh
``ravel()``, so it blurred again for every mask). The masked images are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .base import Context, Explainer, RawAttribution, channel_sum, param, register
from .stable_budget import StableBudget, round_budgets


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


@register
class ShapPartition(Explainer):
    name = "shap_partition"
    label = "SHAP Partition (blur masker)"
    description = "Shapley values of pixel blocks, hiding blocks by blurring them (shap's Partition explainer)."
    paper = "Lundberg & Lee, 2017, A Unified Approach to Interpreting Model Predictions"
    Params = ShapPartitionParams
    slow = True

    def run(self, ctx: Context, params: ShapPartitionParams) -> RawAttribution:
        import shap

        x = ctx.image
        h, w, c = x.shape
        masker = image_masker(masker_spec(params, h, w), x.shape)
        target = ctx.target
        # with rounds, each round's run repeats the previous one's tree walk (the walk
        # does not depend on the budget), so its masked images are evaluated once: shap
        # masks a batch and then calls the model on it, so the masker's digests, in
        # order, name the batch's images
        seen: dict[bytes, float] | None = {} if params.tolerance > 0 else None
        if seen is not None:
            masker.keys = []

        def f(batch: np.ndarray) -> np.ndarray:
            batch = np.asarray(batch, np.float32)
            keys = masker.keys
            if seen is None or keys is None or len(keys) != len(batch):
                if keys is not None:
                    keys.clear()
                scores = ctx.predict(batch)[:, target]
            else:
                names = list(keys)
                keys.clear()
                todo = [i for i, k in enumerate(names) if k not in seen]
                if todo:
                    for i, score in zip(todo, ctx.predict(batch[todo])[:, target], strict=True):
                        seen[names[i]] = float(score)
                scores = np.array([seen[k] for k in names], np.float32)
            ctx.progress(min(1.0, ctx.model_evals / params.max_evals), f"{ctx.model_evals} evaluations")
            return scores[:, None]

        explainer = shap.explainers.Partition(f, masker)

        def owen_values(budget: int) -> tuple[np.ndarray, float]:
            np.random.seed(ctx.seed)
            result = explainer(x[None], max_evals=budget, batch_size=ctx.batch_size, silent=True)
            return np.asarray(result.values[0][..., 0], np.float32), float(np.ravel(result.base_values)[0])

        check = StableBudget(params.tolerance)
        if params.tolerance == 0:
            budgets = [params.max_evals]
        else:
            budgets = round_budgets(params.max_evals, max(64, params.max_evals // 8))
        previous = None
        for budget in budgets:
            raw, base_value = owen_values(budget)
            grid = block_sums(channel_sum(raw))
            change = np.abs(grid - previous) if previous is not None else np.full_like(grid, np.inf)
            previous = grid
            if check.settled(grid, change):
                break
        extras = {"base_value": base_value, **check.extras(budget, params.max_evals)}
        return RawAttribution(channel_sum(raw), raw=raw, extras=extras)
