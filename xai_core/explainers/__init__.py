"""Explainer registry: every module here registers one method by name.

Add a method by adding one module: the modules of this package are discovered and
imported here, and their ``@register`` decorators fill the registry.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..adapters.base import ModelAdapter
from ..types import InputError
from .base import REGISTRY, Context, Explainer, ParamInfo, RawAttribution, param_infos

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

IMAGE_METHODS = tuple(name for name, e in REGISTRY.items() if e.modality == "image")


def get_explainer(name: str) -> Explainer:
    if name not in REGISTRY:
        raise InputError(f"unknown method {name!r}; available: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def available_for(adapter: ModelAdapter, modality: str = "image") -> list[Explainer]:
    """Explainers whose required capabilities the model has."""
    return [
        e for e in REGISTRY.values()
        if e.modality == modality and not e.missing_capabilities(adapter)
    ]


__all__ = [
    "REGISTRY", "Context", "Explainer", "ParamInfo", "RawAttribution",
    "available_for", "get_explainer", "param_infos", "IMAGE_METHODS",
]
