"""Explainer registry: every module here registers one method (for one input kind).

A method is added by adding one module: the modules of this package are
discovered and imported here, so their ``@register`` runs.
"""

from __future__ import annotations

import importlib
import pkgutil

from xai_core.adapters.base import ModelAdapter
from xai_core.explainers.base import (
    REGISTRY,
    ROW_BATCH,
    Context,
    Explainer,
    ParamInfo,
    RawAttribution,
    param_infos,
)
from xai_core.types import InputError

_TEMPLATES = {"at_layer", "base"}
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _TEMPLATES and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")
_ordered = sorted(REGISTRY.items(), key=lambda item: item[1].rank)
REGISTRY.clear()
REGISTRY.update(_ordered)

IMAGE_METHODS = tuple(name for name, e in REGISTRY.items() if e.input_kind == "image")
TABULAR_METHODS = tuple(e.name for e in REGISTRY.values() if e.input_kind == "vector")


def get_explainer(name: str, input_kind: str = "image") -> Explainer:
    """The explainer that users call ``name`` for inputs of ``input_kind``."""
    for explainer in REGISTRY.values():
        if explainer.name == name and explainer.input_kind == input_kind:
            return explainer
    names = [e.name for e in REGISTRY.values() if e.input_kind == input_kind]
    what = "method" if input_kind == "image" else f"{'tabular' if input_kind == 'vector' else input_kind} method"
    raise InputError(f"unknown {what} {name!r}; available: {', '.join(names)}")


def methods_for_kind(input_kind: str) -> list[Explainer]:
    return [e for e in REGISTRY.values() if e.input_kind == input_kind]


def available_for(adapter: ModelAdapter, modality: str = "image") -> list[Explainer]:
    """Explainers for inputs of one kind ('image'; 'vector' or 'tabular' for rows)
    whose required capabilities the model has (for a model with several inputs,
    those that give one attribution per input)."""
    kind = "vector" if modality == "tabular" else modality
    several = kind == "image" and adapter.multi_input
    return [e for e in methods_for_kind(kind)
            if not e.missing_capabilities(adapter) and (e.several_inputs or not several)]


__all__ = [
    "REGISTRY", "ROW_BATCH", "Context", "Explainer", "ParamInfo", "RawAttribution", "TABULAR_METHODS",
    "available_for", "get_explainer", "methods_for_kind", "param_infos", "IMAGE_METHODS",
]
