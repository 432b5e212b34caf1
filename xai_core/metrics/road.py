"""ROAD: RemOve And Debias (Rong et al. 2022, ICML).

Removing pixels by painting them black creates a pattern the model reacts to,
whatever the map said. ROAD fills the removed pixels by noisy linear
imputation instead: each removed pixel is the weighted mean of its 8
neighbours (solved as one sparse linear system for all removed pixels), plus a
little Gaussian noise, so the removal leaks no shape. The scores of removing
the most relevant pixels first (MoRF) and the least relevant first (LeRF) are
taken at several percentiles; the value is mean(LeRF - MoRF) / 2, as
pytorch-grad-cam's ``ROADCombined`` reports it: positive when the map's top
pixels matter more than its bottom ones, about 0 for a map unrelated to the
model. The random baseline is measured, not assumed: the same ROAD for a map
that is random over squares of 1/14 of the image (the coarseness of a typical
heatmap, as the deletion curves' baseline), from the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xai_core.explainers.base import param
from xai_core.metrics.base import Direction, Metric, MetricInput, MetricResult, Modality, register

# (row offset, column offset), weight: the imputation's neighbourhood (Rong et al. 2022)
NEIGHBOURS = (
    ((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
    ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
)


def impute(image: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Fill the ``removed`` pixels (H x W bool) of ``image`` (H x W x C) by noisy
    linear imputation: every removed pixel equals the weighted mean of its in-image
    neighbours, known or removed, plus N(0, noise^2)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    h, w, c = image.shape
    flat = image.reshape(-1, c).astype(np.float64)
    unknown = np.flatnonzero(removed.reshape(-1))
    if unknown.size == 0:
        return image.copy()
    var = np.full(h * w, -1)
    var[unknown] = np.arange(unknown.size)
    rows, cols = np.divmod(unknown, w)
    diag = np.zeros(unknown.size)
    b = np.zeros((unknown.size, c))
    a_rows, a_cols, a_vals = [], [], []
    for (dr, dc), weight in NEIGHBOURS:
        r, q = rows + dr, cols + dc
        inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
        diag[inside] += weight
        ids = np.flatnonzero(inside)
        pos = r[inside] * w + q[inside]
        known = var[pos] < 0
        b[ids[known]] -= weight * flat[pos[known]]
        a_rows.append(ids[~known])
        a_cols.append(var[pos[~known]])
        a_vals.append(np.full((~known).sum(), weight))
    a_rows.append(np.arange(unknown.size))
    a_cols.append(np.arange(unknown.size))
    a_vals.append(-diag)
    a = coo_matrix((np.concatenate(a_vals), (np.concatenate(a_rows), np.concatenate(a_cols))),
                   shape=(unknown.size, unknown.size)).tocsc()
    solved = spsolve(a, b).reshape(unknown.size, c)
    out = flat.copy()
    out[unknown] = solved + noise * rng.standard_normal(solved.shape)
    return out.reshape(h, w, c).astype(np.float32)


def percentiles(steps: int) -> list[float]:
    """``steps`` evenly spaced percentiles strictly inside 0..100 (9 -> 10, 20, ..., 90)."""
    return [100.0 * i / (steps + 1) for i in range(1, steps + 1)]


def road_inputs(image: np.ndarray, attribution: np.ndarray, steps: int, noise: float, seed: int):
    """MoRF and LeRF inputs at each percentile p: MoRF keeps the pixels below the
    map's p-th percentile, LeRF those above its (100 - p)-th, so both remove the
    same share at each point (pytorch-grad-cam's thresholds).
    Returns (fractions removed by MoRF, by LeRF, batch of 2 x steps images)."""
    rng = np.random.default_rng(seed)
    batch, morf, lerf = [], [], []
    for p in percentiles(steps):
        threshold = np.percentile(attribution, p)
        removed = ~(attribution < threshold)
        batch.append(impute(image, removed, noise, rng))
        morf.append(removed.mean())
    for p in percentiles(steps):
        threshold = np.percentile(attribution, 100 - p)
        removed = ~(attribution > threshold)
        batch.append(impute(image, removed, noise, rng))
        lerf.append(removed.mean())
    return np.array(morf), np.array(lerf), np.stack(batch)


def random_map(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A map with no information but a heatmap's coarseness: the rank of each pixel in
    a random order over squares of 1/14 of the image (see metrics.curves.random_orders)."""
    from xai_core.metrics.curves import auto_block, random_orders

    order = random_orders(shape, 1, seed + 1, auto_block(shape, 0))[0]
    ranks = np.empty(order.size, np.float64)
    ranks[order] = np.arange(order.size, 0, -1)
    return ranks.reshape(shape)


@dataclass(frozen=True)
class RoadParams:
    steps: int = param(4, low=1, high=19, help="percentiles taken (4: 20, 40, 60, 80; 9: 10, 20, ..., 90)")
    noise: float = param(0.01, low=0.0, high=0.5, help="std of the noise added to imputed pixels ([0, 1] pixel units)")


@register
class Road(Metric):
    name = "road"
    label = "ROAD (LeRF - MoRF) / 2"
    description = "remove pixels with noisy linear imputation, most and least relevant first; the gap should be large"
    paper = "Rong et al. 2022"
    direction = Direction.HIGHER
    modalities = frozenset({Modality.IMAGE})
    Params = RoadParams

    def planned_evals(self, params, rerun_evals, weight_layers) -> int:
        return 4 * params.steps  # most and least relevant first at each percentile, for the map and a random one

    def compute(self, task: MetricInput, params) -> MetricResult:
        task.tell(0.0, "ROAD: imputing removed pixels")
        attribution = np.asarray(task.attribution, np.float64)
        image = np.asarray(task.x, np.float32)
        morf_x, lerf_x, batch = road_inputs(image, attribution, params.steps, params.noise, task.seed)
        task.tell(0.4, "ROAD: imputing for a random map")
        _, _, random_batch = road_inputs(image, random_map(attribution.shape, task.seed), params.steps,
                                         params.noise, task.seed)
        task.tell(0.7, "ROAD: scoring")
        scores = task.scores(np.concatenate([batch, random_batch]))
        k = params.steps
        morf, lerf = scores[:k], scores[k:2 * k]
        value = float(np.mean(lerf - morf) / 2)
        baseline = float(np.mean(scores[3 * k:] - scores[2 * k:3 * k]) / 2)
        return self.result(
            value, baseline=baseline,
            curve=(morf_x.tolist(), morf.tolist()),
            baseline_curve=(lerf_x.tolist(), lerf.tolist()), curve_names=("MoRF", "LeRF"),
            details={"morf_mean": float(morf.mean()), "lerf_mean": float(lerf.mean())},
        )
