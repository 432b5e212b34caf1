"""Faithfulness and sanity checks of an explanation (issue 11).

One module per metric family, each registering its metrics by name:
:mod:`.curves` (deletion, insertion), :mod:`.road`, :mod:`.correlation`
(faithfulness correlation), :mod:`.randomization` (Adebayo's sanity check),
:mod:`.sensitivity` (max-sensitivity). :mod:`.service` runs them on an
image or a table row explained by the service.
"""

from __future__ import annotations

from xai_core.metrics import correlation, curves, randomization, road, sensitivity  # noqa: F401 - register the metrics
from xai_core.metrics.base import REGISTRY, Direction, Metric, MetricInput, MetricResult, Modality, Needs
from xai_core.types import InputError

IMAGE_DEFAULTS = ("deletion", "insertion", "road", "randomization", "sensitivity")
ROW_DEFAULTS = ("deletion", "insertion", "correlation", "randomization", "sensitivity")


def get_metric(name: str) -> Metric:
    if name not in REGISTRY:
        raise InputError(f"unknown metric {name!r}; available: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def parse_metric_names(text: str | list[str] | None, modality: Modality) -> list[str]:
    """'deletion,insertion' (or a list; 'all' = every metric for the modality) ->
    checked names, each once, in the order given."""
    if not text:
        return []
    items = [text] if isinstance(text, str) else list(text)
    names: list[str] = []
    for item in items:
        for name in (n.strip().lower() for n in item.split(",")):
            if not name:
                continue
            if name == "all":
                chosen = [m for m in REGISTRY.values() if modality in m.modalities]
                names.extend(m.name for m in chosen if m.name not in names)
                continue
            metric = get_metric(name)
            if modality not in metric.modalities:
                raise InputError(f"metric {name} works on {' and '.join(sorted(m.value for m in metric.modalities))}, "
                                 f"not on {modality.value}")
            if name not in names:
                names.append(name)
    return names


def metrics_for(modality: Modality) -> list[Metric]:
    return [m for m in REGISTRY.values() if modality in m.modalities]


__all__ = [
    "REGISTRY", "Direction", "Metric", "MetricInput", "MetricResult", "Modality", "Needs",
    "IMAGE_DEFAULTS", "ROW_DEFAULTS", "get_metric", "metrics_for", "parse_metric_names",
]
