"""Model parameter randomisation, the sanity check of Adebayo et al. 2018 (NeurIPS).

The weights are randomised layer by layer from the top (cascading), the method
is re-run for the same class on each randomised model, and the new map is
compared with the original: Spearman rank correlation of the absolute maps and
SSIM of the maps scaled to [0, 1]. A map that still looks the same once every
layer is random does not depend on what the model learned (an edge detector,
or the input itself, passes through unchanged), and gets a warning.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from xai_core.explainers.base import param
from xai_core.metrics.base import Direction, Metric, MetricInput, MetricResult, Needs, explain_each, register


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps (0 when either is constant)."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two maps, each scaled to [0, 1] by its max |value|
    (Adebayo et al.'s normalisation); 1-D maps are compared as one row."""
    from skimage.metrics import structural_similarity

    def scaled(m: np.ndarray) -> np.ndarray:
        m = np.abs(np.asarray(m, np.float64))
        m = m.reshape(1, -1) if m.ndim == 1 else m
        top = m.max()
        return m / top if top > 0 else m

    a, b = scaled(a), scaled(b)
    side = min(7, *a.shape)
    if side < 3:
        return float(1.0 - np.abs(a - b).mean())
    return float(structural_similarity(a, b, data_range=1.0, win_size=side if side % 2 else side - 1))


def cascade(layers: int, steps: int) -> list[int]:
    """How many top layers are random at each step: dense near the top, ending
    with every layer (e.g. 12 layers, 3 steps -> 1, 3, 12)."""
    points = np.unique(np.round(np.geomspace(1, layers, max(1, steps))).astype(int))
    return [int(k) for k in points]


@dataclass(frozen=True)
class RandomizationParams:
    steps: int = param(3, low=1, high=64, help="points along the cascade (each re-runs the method once)")
    threshold: float = param(0.5, low=0.0, high=1.0,
                             help="rank correlation with every layer random above which the map gets a warning")


@register
class Randomization(Metric):
    name = "randomization"
    label = "Randomisation check (rank correlation, all layers random)"
    description = "re-run the method on the model with its weights randomised from the top; the map should change"
    paper = "Adebayo et al. 2018"
    needs = frozenset({Needs.EXPLAIN, Needs.WEIGHTS})
    direction = Direction.LOWER
    Params = RandomizationParams

    needs_gradients_of_method = True

    def planned_evals(self, params, rerun_evals, weight_layers) -> int | None:
        """One re-run of the method per point of the cascade."""
        if rerun_evals is None:
            return None
        return len(cascade(max(1, weight_layers), params.steps)) * rerun_evals

    def compute(self, task: MetricInput, params) -> MetricResult:
        if task.randomized is None or task.layers < 1:
            raise_unsupported()
        original = np.abs(np.asarray(task.attribution, np.float64))
        ks = cascade(task.layers, params.steps)
        runs = [(task.x, functools.partial(task.randomized, k, task.seed)) for k in ks]
        maps = explain_each(task, runs, lambda i: f"randomisation: top {ks[i]} of {task.layers} layers random")
        rhos = [spearman(original, np.abs(again)) for again in maps]
        ssims = [ssim(original, again) for again in maps]
        value = rhos[-1]
        warning = None
        if value > params.threshold:
            warning = (
                f"this map survives randomising the model: with all {task.layers} weight layers random it still "
                f"has rank correlation {value:.2f} (SSIM {ssims[-1]:.2f}) with the original. It may show the "
                "input's structure rather than what the model learned"
            )
        fractions = [k / task.layers for k in ks]
        return self.result(
            value, warning=warning, check=warning is None,
            curve=(fractions, rhos), baseline_curve=(fractions, ssims), curve_names=("rank correlation", "SSIM"),
            details={"layers_randomized": ks, "ssim": ssims[-1], "total_layers": task.layers},
        )


def raise_unsupported() -> None:
    from xai_core.types import UnsupportedError

    raise UnsupportedError("the randomisation check needs a model whose weights can be randomised "
                           "(PyTorch, Keras or ONNX with weights); this one exposes none")
