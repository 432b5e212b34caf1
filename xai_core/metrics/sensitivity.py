"""Max-sensitivity (Yeh et al. 2019, "On the (in)fidelity and sensitivity of
explanations", NeurIPS): the largest relative change of the map when the input
moves by a small random amount,

    max_i ||e(x + d_i) - e(x)||_F / ||e(x)||_F,   d_i ~ U[-r, r] per value,

with the radius r chosen by the user (image: [0, 1] pixel units; rows: r times
each feature's standard deviation). Lower is better: 0 means the map does not
move at all. Each sample re-runs the method once.
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
    Modality,
    Needs,
    explain_each,
    register,
)


@dataclass(frozen=True)
class SensitivityParams:
    samples: int = param(4, low=1, high=200, help="noisy copies of the input (each re-runs the method)")
    radius: float = param(0.02, low=0.0, high=1.0,
                          help="noise radius: [0, 1] pixel units for images, feature standard deviations for rows")


@register
class MaxSensitivity(Metric):
    name = "sensitivity"
    label = "Max-sensitivity"
    description = "largest relative change of the map under small uniform input noise"
    paper = "Yeh et al. 2019"
    needs = frozenset({Needs.EXPLAIN})
    direction = Direction.LOWER
    Params = SensitivityParams

    needs_gradients_of_method = True

    def planned_evals(self, params, rerun_evals, weight_layers) -> int | None:
        """One re-run of the method per noisy copy."""
        return None if rerun_evals is None else params.samples * rerun_evals

    def compute(self, task: MetricInput, params) -> MetricResult:
        x = np.asarray(task.x, np.float32)
        original = np.asarray(task.attribution, np.float64)
        norm = np.linalg.norm(original)
        rng = np.random.default_rng(task.seed)
        if task.modality is Modality.ROWS and task.scale is not None:
            scale = np.asarray(task.scale, np.float32).reshape(x.shape)
        else:
            scale = np.float32(1.0)
        noisy = [x + rng.uniform(-params.radius, params.radius, x.shape).astype(np.float32) * scale
                 for _ in range(params.samples)]
        if task.modality is Modality.IMAGE:
            noisy = [np.clip(n, 0.0, 1.0) for n in noisy]
        maps = explain_each(task, [(n, None) for n in noisy],
                            lambda i: f"sensitivity: noisy copy {i + 1} of {params.samples}")
        changes = []
        for again in maps:
            diff = np.linalg.norm(again - original)
            changes.append(float(diff / norm) if norm > 0 else (0.0 if diff == 0 else float("inf")))
        return self.result(max(changes), details={"changes": changes})
