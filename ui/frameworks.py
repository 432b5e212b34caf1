"""The model frameworks the dashboard offers: :mod:`xai_core.loading.registry`'s.

A framework appears in the selector only when xai_core ships its adapter and the
framework's own packages are installed; both are checked without importing
anything heavy. Adding a framework is one entry in the registry.
"""

from __future__ import annotations

from xai_core.loading.registry import Framework, available_frameworks, get_framework, upload_types

__all__ = ["Framework", "available_frameworks", "get_framework", "upload_types"]
