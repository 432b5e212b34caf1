"""Deletion and insertion curves (Petsiuk et al. 2018, RISE, section 4.1).

Deletion removes the most important features first (pixels take the fill
value, rows take the baseline row's value) and records the target's score after
each step; a faithful map makes it fall fast (small area, lower is better).
Insertion starts from a blurred image (for rows: the baseline row) and puts the
most important features back first; a faithful map makes it rise fast (large
area, higher is better). The same curve for a random order (of squares, for
images) is the baseline.
Every curve point is one input of a single batch (steps + 1 inputs per order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xai_core.explainers.base import fill_image, param
from xai_core.metrics.base import (
    Direction,
    Metric,
    MetricInput,
    MetricResult,
    Modality,
    features,
    importance,
    perturbed,
    register,
)


def removal_order(attribution: np.ndarray) -> np.ndarray:
    """Feature indices, most important (largest signed attribution) first."""
    return np.argsort(-importance(attribution), kind="stable")


def counts(n_features: int, steps: int) -> np.ndarray:
    """How many features are changed at each of the steps + 1 curve points."""
    steps = min(steps, n_features)
    return np.round(np.linspace(0, n_features, steps + 1)).astype(int)


def path_masks(order: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The features changed at each curve point when they change in ``order``: at
    point i the first ``counts[i]`` features of the order.
    Returns (fractions, masks steps+1 x F bool)."""
    n = len(order)
    ks = counts(n, steps)
    rank = np.empty(n, int)
    rank[order] = np.arange(n)
    return ks / n, rank[None, :] < ks[:, None]


def area(fractions: np.ndarray, scores: np.ndarray) -> float:
    """Area under the score curve over the fraction of features changed (0..1)."""
    return float(np.trapezoid(scores, fractions))


def random_orders(shape: tuple[int, ...], count: int, seed: int, block: int = 1) -> list[np.ndarray]:
    """``count`` random feature orders. For an image (``shape`` = H x W) with
    ``block`` > 1 the order is random over block x block squares (and random inside
    each): a map with no information but the coarseness of a typical heatmap.
    Pixel-by-pixel random deletion is salt-and-pepper noise, which destroys most
    photos within a few percent of the pixels and would be a baseline no smooth map
    can beat."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if len(shape) != 2 or block <= 1:
        return [rng.permutation(n) for _ in range(count)]
    h, w = shape
    rows, cols = np.divmod(np.arange(n), w)
    cell = (rows // block) * (-(-w // block)) + cols // block
    orders = []
    for _ in range(count):
        rank = rng.permutation(int(cell.max()) + 1)
        orders.append(np.lexsort((rng.random(n), rank[cell])))
    return orders


def auto_block(shape: tuple[int, ...], block: int) -> int:
    """The random baseline's square side: ``block``, or 0 -> 1/14 of the image's
    shorter side (16 pixels at 224, one cell of a 14 x 14 grid)."""
    if len(shape) != 2:
        return 1
    return block if block > 0 else max(1, round(min(shape) / 14))


def run_curves(task: MetricInput, start: np.ndarray, end: np.ndarray, steps: int, orders: int, block: int = 1):
    """The map's curve and the mean curve of ``orders`` random orders, from one batch.

    Returns (fractions, map scores, random scores)."""
    grid = np.shape(task.attribution)
    paths = [removal_order(task.attribution), *random_orders(grid, orders, task.seed, auto_block(grid, block))]
    masks = [path_masks(order, steps) for order in paths]
    fractions = masks[0][0]
    stacked = perturbed(task, np.concatenate([m for _, m in masks]), start, end)
    task.tell(0.0, "scoring the curves")
    scores = task.scores(stacked).reshape(len(paths), -1)
    return fractions, scores[0], scores[1:].mean(0)


def fill_for(task: MetricInput, fill: str) -> np.ndarray:
    """F x C replacement values: the baseline row for rows, ``fill`` for images."""
    if task.modality is Modality.ROWS:
        if task.baseline is None:
            return np.zeros((task.x.size, 1), np.float32)
        return np.asarray(task.baseline, np.float32).reshape(-1, 1)
    return features(fill_image(np.asarray(task.x, np.float32), fill), task.modality)


@dataclass(frozen=True)
class CurveParams:
    steps: int = param(10, low=2, high=1024, help="points on the curve (each one model evaluation)")
    random_orders: int = param(1, low=1, high=16, help="random orders averaged for the baseline curve")
    random_block: int = param(0, low=0, high=512,
                              help="image baseline: random order over squares of this side (0: 1/14 of the image)")
    fill: str = param("black", choices=("black", "gray", "mean", "blur"),
                      help="value of a removed pixel (rows take the baseline row's value)")


@dataclass(frozen=True)
class InsertionParams(CurveParams):
    fill: str = param("blur", choices=("black", "gray", "mean", "blur"),
                      help="the image insertion starts from (rows start from the baseline row)")


class _Curve(Metric):
    inserting: bool

    def planned_evals(self, params, rerun_evals, weight_layers) -> int:
        """``steps`` + 1 points on the curve of the map's order and on each random order's."""
        return (params.steps + 1) * (1 + params.random_orders)

    def compute(self, task: MetricInput, params) -> MetricResult:
        x = features(np.asarray(task.x, np.float32), task.modality)
        empty = fill_for(task, params.fill)
        start, end = (empty, x) if self.inserting else (x, empty)
        fractions, ours, rand = run_curves(task, start, end, params.steps, params.random_orders, params.random_block)
        value, base = area(fractions, ours), area(fractions, rand)
        return self.result(
            value, baseline=base,
            curve=(fractions.tolist(), ours.tolist()), baseline_curve=(fractions.tolist(), rand.tolist()),
        )


@register
class Deletion(_Curve):
    name = "deletion"
    label = "Deletion (area under the curve)"
    description = "remove the most important features first; the class score should fall fast"
    paper = "Petsiuk et al. 2018"
    direction = Direction.LOWER
    Params = CurveParams
    inserting = False


@register
class Insertion(_Curve):
    name = "insertion"
    label = "Insertion (area under the curve)"
    description = "add the most important features first to a blurred image; the class score should rise fast"
    paper = "Petsiuk et al. 2018"
    direction = Direction.HIGHER
    Params = InsertionParams
    inserting = True
