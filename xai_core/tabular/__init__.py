"""Tabular rows: model adapters, CSV tables, attribution methods, service and plots.

    from xai_core.tabular import open_tabular_model, load_table, explain_row
    model = open_tabular_model("breast_cancer_mlp")
    data = load_table("sample_data/breast_cancer.csv", label_column="target", n_features=model.n_features,
                      model_features=model.feature_names)  # columns matched by name
    expl = explain_row(model, data, 0, "kernel_shap")

Importing this package loads no deep-learning framework; plots import plotly and
matplotlib only when called.
"""

from __future__ import annotations

from .adapters import TabularModel
from .data import TabularData, default_label_column, load_table, read_columns
from .explainers import TABULAR_METHODS, TABULAR_REGISTRY, get_tabular_explainer, tabular_methods_for
from .models import open_tabular_model, open_uploaded_model
from .service import TabularSummary, explain_row, explain_rows, predict_rows, resolve_tabular_target
from .types import OutputValue, TabularExplanation

__all__ = [
    "TABULAR_METHODS", "TABULAR_REGISTRY", "OutputValue", "TabularData", "TabularExplanation",
    "TabularModel", "TabularSummary", "default_label_column", "explain_row", "explain_rows", "get_tabular_explainer",
    "load_table", "open_tabular_model", "open_uploaded_model", "predict_rows", "read_columns",
    "resolve_tabular_target", "tabular_methods_for",
]
