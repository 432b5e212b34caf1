"""The row-method template: methods that explain rows of a feature table.

A row method has a ``setup`` step run once per table (fit LIME's statistics,
summarise the SHAP background, the IG baseline) and an ``explain`` step run per
row, so many rows reuse the setup. It explains one class (``target``) of the
model, in the score the gradient methods see: the logit, the probability, or a
sigmoid model's p / 1 - p (see :meth:`ModelAdapter.explained`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from xai_core.adapters.base import ModelAdapter
from xai_core.explainers.base import Explainer


@dataclass
class RowAttribution:
    """What an explain step returns: one signed value per feature (F,)."""

    attributions: np.ndarray
    base_value: float | None = None  # where the method has one: base + sum = output
    extras: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None  # layer methods: the layer, its per-unit values, the neuron explained
    layer_attribution: np.ndarray | None = None
    neuron: int | None = None


class RowContext:
    """The model, the table (LIME's statistics, the SHAP background, IG's mean
    baseline), the target class, the seed, and a counter of model evaluations."""

    def __init__(self, model: ModelAdapter, data: Any, target: int, seed: int) -> None:
        self.model = model
        self.data = data  # a xai_core.inputs.tables.TabularData
        self.target = target
        self.seed = seed
        self.model_evals = 0

    def predict_target(self, x: np.ndarray) -> np.ndarray:
        """N x F -> N explained scores of the target (float64, as shap and lime expect)."""
        x = np.asarray(x, np.float32).reshape(-1, self.data.n_features)
        self.model_evals += len(x)
        return self.model.target_scores(x, self.target, batch_size=4096)

    def gradients(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.model_evals += len(x)
        return self.model.gradients(x, self.target)


class RowExplainer(Explainer):
    """Subclass, set the class attributes, implement :meth:`explain` (and
    :meth:`setup` when something can be prepared once per table), decorate with
    ``@register``."""

    input_kind: ClassVar[str] = "vector"

    def setup(self, ctx: RowContext, params: Any) -> Any:
        return None

    def explain(self, ctx: RowContext, params: Any, state: Any, x: np.ndarray) -> RowAttribution:
        raise NotImplementedError


def fresh_random_state(seed: int) -> np.random.RandomState:
    return np.random.RandomState(seed % 2**32)
