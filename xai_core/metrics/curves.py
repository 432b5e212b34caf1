"""Deletion and insertion curves (Petsiuk et al. 2018, RISE, section 4.1).

Deletion removes the most important features first (pixels take the fill
value, rows take the baseline row's value) and records the target's score after
each step; a faithful map makes it fall fast (small area, lower is better).
Insertion starts from a blurred image (for rows: the baseline row) and puts the
most important features back first; a faithful map makes it rise fast (large
area, higher is better). The same curve for a random order is the baseline.
Every curve point is one input of a single batch (steps + 1 inputs per order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..explainers.base import fill_image, param
from .base import Direction, Metric, MetricInput, MetricResult, Modality, features, importance, register


def removal_order(attribution: np.ndarray) -> np.ndarray:
    """Feature indices, most important (largest signed attribution) first."""
    return np.argsort(-importance(attribution), kind="stable")


def counts(n_features: int, steps: int) -> np.ndarray:
    """How many features are changed at each of the steps + 1 curve points."""
    steps = min(steps, n_features)
    return np.round(np.linspace(0, n_features, steps + 1)).astype(int)


def path_inputs(start: np.ndarray, end: np.ndarray, order: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs moving from ``start`` to ``end`` (both F x C) in ``order``: at point
    i the first ``counts[i]`` features of the order come from ``end``.
    Returns (fractions, batch steps+1 x F x C)."""
    n = len(order)
    ks = counts(n, steps)
    rank = np.empty(n, int)
    rank[order] = np.arange(n)
    taken = rank[None, :] < ks[:, None]  # points x F
    batch = np.where(taken[..., None], end[None], start[None])
    return ks / n, batch.astype(np.float32)


def area(fractions: np.ndarray, scores: np.ndarray) -> float:
    """Area under the score curve over the fraction of features changed (0..1)."""
    return float(np.trapezoid(scores, fractions))


def random_orders(n_features: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.permutation(n_features) for _ in range(count)]


def run_curves(task: MetricInput, start: np.ndarray, end: np.ndarray, steps: int, orders: int):
    """The map's curve and the mean curve of ``orders`` random orders, from one batch.

    Returns (fractions, map scores, random scores)."""
    shape = task.x.shape
    paths = [removal_order(task.attribution), *random_orders(len(start), orders, task.seed)]
    batches = [path_inputs(start, end, order, steps) for order in paths]
    fractions = batches[0][0]
    stacked = np.concatenate([b for _, b in batches]).reshape(-1, *shape)
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
    steps: int = param(16, low=2, high=1024, help="points on the curve (each one model evaluation)")
    random_orders: int = param(1, low=1, high=16, help="random orders averaged for the baseline curve")
    fill: str = param("black", choices=("black", "gray", "mean", "blur"),
                      help="value of a removed pixel (rows take the baseline row's value)")


@dataclass(frozen=True)
class InsertionParams(CurveParams):
    fill: str = param("blur", choices=("black", "gray", "mean", "blur"),
                      help="the image insertion starts from (rows start from the baseline row)")


class _Curve(Metric):
    inserting: bool

    def compute(self, task: MetricInput, params) -> MetricResult:
        x = features(np.asarray(task.x, np.float32), task.modality)
        empty = fill_for(task, params.fill)
        start, end = (empty, x) if self.inserting else (x, empty)
        fractions, ours, rand = run_curves(task, start, end, params.steps, params.random_orders)
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
