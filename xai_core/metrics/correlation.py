"""Faithfulness correlation (Bhatt et al. 2020, IJCAI): for random subsets of
features, the Pearson correlation between the attribution summed over the
subset and the drop of the target's score when the subset is replaced by the
baseline (rows: the data's column means; images: black pixels). Higher is
better; the baseline is the same correlation for the map's values shuffled over
the features, computed from the same model evaluations (no extra cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xai_core.explainers.base import param
from xai_core.metrics.base import (
    Direction,
    Metric,
    MetricInput,
    MetricResult,
    features,
    importance,
    perturbed,
    register,
)
from xai_core.metrics.curves import fill_for


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclass(frozen=True)
class CorrelationParams:
    runs: int = param(32, low=4, high=1000, help="random subsets (each one model evaluation)")
    subset: float = param(0.25, low=0.0, high=1.0, help="fraction of the features in each subset")


@register
class FaithfulnessCorrelation(Metric):
    name = "correlation"
    label = "Faithfulness correlation"
    description = "does removing a subset drop the score by as much as the subset's attribution says?"
    paper = "Bhatt et al. 2020"
    direction = Direction.HIGHER
    Params = CorrelationParams

    def planned_evals(self, params, rerun_evals, weight_layers) -> int:
        return params.runs + 1  # the input and each perturbed subset

    def compute(self, task: MetricInput, params) -> MetricResult:
        x = features(np.asarray(task.x, np.float32), task.modality)
        fill = fill_for(task, "black")
        a = importance(task.attribution)
        n = len(a)
        size = max(1, min(n - 1, round(params.subset * n))) if n > 1 else 1
        rng = np.random.default_rng(task.seed)
        subsets = np.zeros((params.runs, n), bool)
        for i in range(params.runs):
            subsets[i, rng.choice(n, size, replace=False)] = True
        batch = perturbed(task, subsets, x, fill)
        scores = task.scores(np.concatenate([np.asarray(task.x, np.float32)[None], batch]))
        drops = scores[0] - scores[1:]
        value = pearson(subsets @ a, drops)
        shuffled = rng.permutation(a)
        return self.result(value, baseline=pearson(subsets @ shuffled, drops),
                           details={"subset_size": size})
