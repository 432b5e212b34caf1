"""Tabular rows: CSV tables, the row service and plots. Models are the framework
adapters of :mod:`xai_core.adapters` with a feature-vector input, opened by
:func:`xai_core.open_model` (``rows=True`` for a file); the row methods live in
:mod:`xai_core.explainers` beside the image ones, and :func:`xai_core.explain`
explains a row as it explains an image.

    from xai_core import explain, open_model
    from xai_core.tabular import load_table
    model = open_model("breast_cancer_mlp")
    data = load_table("sample_data/breast_cancer.csv", label_column="target", n_features=model.n_features,
                      model_features=model.feature_names)  # columns matched by name
    expl = explain(model, data, "kernel_shap", row=0)  # an xai_core.Explanation
    expl.ranked()  # (feature, attribution), largest first

``open_tabular_model`` and ``explain_row`` are the same calls under their older names.

Importing this package loads no deep-learning framework; plots import plotly and
matplotlib only when called.
"""

from __future__ import annotations

from xai_core.explainers import TABULAR_METHODS
from xai_core.inputs.tables import (
    TabularData,
    default_label_column,
    generated_names,
    load_table,
    model_columns,
    read_columns,
)
from xai_core.loading.tables import open_tabular_model, open_uploaded_model
from xai_core.service.rows import (
    TabularSummary,
    explain_row,
    explain_rows,
    get_tabular_explainer,
    predict_rows,
    resolve_tabular_target,
)

__all__ = [
    "TABULAR_METHODS", "TabularData",
    "TabularSummary", "default_label_column", "explain_row", "explain_rows", "generated_names", "get_tabular_explainer",
    "load_table", "model_columns", "open_tabular_model", "open_uploaded_model", "predict_rows", "read_columns",
    "resolve_tabular_target",
]
