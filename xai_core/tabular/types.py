"""Results of tabular explanations: plain Python + NumPy, picklable and cache-safe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..types import _jsonable


@dataclass(frozen=True)
class OutputValue:
    """One model output for a row: its index, name and value (a probability when the
    model's output kind is 'probability', else a logit or score)."""

    index: int
    label: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "value": self.value}


@dataclass
class TabularExplanation:
    """One method on one row for one output column.

    ``attributions`` maps each feature name (in model input order) to its signed
    attribution; ``feature_values`` to the row's raw value. ``base_value`` is the
    output the attributions start from where the method is additive (Kernel SHAP:
    the background's mean output; Integrated Gradients: the baseline row's output),
    so that ``base_value + sum(attributions) ~= output``; None for LIME, whose
    weights belong to a local surrogate (its intercept and local prediction are in
    ``extras``).
    """

    row: int
    method: str
    target: int
    target_label: str
    output: float
    output_kind: str
    predictions: list[OutputValue]
    attributions: dict[str, float]
    feature_values: dict[str, float]
    base_value: float | None
    params: dict[str, Any]
    seed: int
    model_evals: int
    elapsed_s: float
    label: Any = None  # the row's value in the label column, when one was chosen
    extras: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None  # layer methods: the hidden layer, one value per unit of it
    layer_attribution: list[float] | None = None
    neuron: int | None = None  # neuron methods: the unit whose inputs are attributed

    @property
    def additivity_error(self) -> float | None:
        """base_value + sum(attributions) - output (None when the method has no base)."""
        if self.base_value is None:
            return None
        return float(self.base_value + sum(self.attributions.values()) - self.output)

    def ranked(self) -> list[tuple[str, float]]:
        """(feature, attribution) pairs, largest magnitude first."""
        return sorted(self.attributions.items(), key=lambda kv: -abs(kv[1]))

    def record(self) -> dict[str, Any]:
        """JSON-ready summary used by results.json and the dashboard."""
        return _jsonable({
            "row": self.row,
            "method": self.method,
            "target": self.target,
            "target_label": self.target_label,
            "output": self.output,
            "output_kind": self.output_kind,
            "predictions": [p.to_dict() for p in self.predictions],
            "attributions": dict(self.attributions),
            "feature_values": dict(self.feature_values),
            "base_value": self.base_value,
            "params": self.params,
            "seed": self.seed,
            "model_evals": self.model_evals,
            "elapsed_s": round(self.elapsed_s, 4),
            "label": self.label,
            "layer": self.layer,
            "layer_attribution": self.layer_attribution,
            "neuron": self.neuron,
            "extras": {k: v for k, v in self.extras.items() if isinstance(v, (int, float, str, bool))},
        })
