"""The tabular page's forms: the table (sample or upload), how its columns meet the
model's inputs, and the explainer with its parameters, seed and output."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import streamlit as st

from model_zoo.tabular import DEFAULT_TABULAR_MODEL, TABULAR_ZOO
from xai_core import tabular
from xai_core.explainers import Explainer, available_for, get_explainer
from xai_core.sets.model import ModelRef

from .layer_form import LAYER_PARAMS, layer_settings
from .limits import CSV_MB
from .method_form import params_form

NO_LABEL = "(no label column)"
PREDICTED = "predicted output"


@dataclass(frozen=True)
class ChosenTable:
    data: tabular.TabularData
    name: str
    key: str  # what a result was computed from: the model, the table's bytes, its label and feature columns


@dataclass(frozen=True)
class RowPlan:
    explainer: Explainer
    params: dict[str, Any]
    seed: int
    target: int | None


def table_source(ref: ModelRef) -> tuple[bytes, str] | None:
    """The CSV's bytes and name: the zoo model's sample table, or an upload."""
    entry = TABULAR_ZOO.get(ref.ref, TABULAR_ZOO[DEFAULT_TABULAR_MODEL])
    sample = entry.csv_path
    source = st.radio("Data", [f"Sample CSV ({sample.name})", "Upload a CSV"], horizontal=True, key="tab_data_source")
    if source.startswith("Sample"):
        return sample.read_bytes(), sample.name
    upload = st.file_uploader("CSV file with a header line", type=["csv", "txt"], key="tab_csv_upload",
                              max_upload_size=CSV_MB)
    if upload is None:
        st.info("Upload a CSV, or use the sample.")
        return None
    return upload.getvalue(), upload.name


def table_form(model, ref: ModelRef, csv_bytes: bytes, csv_name: str) -> ChosenTable:
    """The label column, the feature columns (chosen, matched by name, or taken in the
    model's input order) and the column mapping shown before any run."""
    columns = tabular.read_columns(csv_bytes, csv_name)
    # keyed by the header and the model, so that a new CSV or model starts from its own defaults
    header_key = hashlib.sha256("\x1f".join([model.name, *(model.feature_names or ()), "", *columns]).encode()
                                ).hexdigest()[:12]
    model_features = tabular.model_columns(model)  # the sidecar's "columns", else the model's own feature names
    default_label = tabular.default_label_column(columns, model_label=model.label_column, model_features=model_features)
    label_options = [NO_LABEL, *columns]
    label_choice = st.selectbox("Label column (not fed to the model)", label_options,
                                key=f"tab_label_column_{header_key}",
                                index=label_options.index(default_label) if default_label in columns else 0)
    label_column = None if label_choice == NO_LABEL else label_choice
    in_order = False
    features = None
    if model_features is None:
        features = st.multiselect("Feature columns, in model input order", [c for c in columns if c != label_column],
                                  default=[c for c in columns if c != label_column],
                                  key=f"tab_features_{header_key}_{label_choice}")
    elif tabular.generated_names(model_features):
        in_order = st.checkbox(
            "Columns in the model's input order", key=f"tab_in_order_{header_key}",
            help=f"The model's inputs carry no names of their own ({', '.join(model_features[:3])}, ...): "
                 "take the table's columns, all but the label, in file order as its inputs in order.")
    else:
        st.caption(f"Columns are matched by name to the model's {len(model_features)} features (ignoring "
                   "case, '-', ' ' and '_'), so their order in the file does not matter.")
    data = tabular.load_table(csv_bytes, label_column=label_column, feature_columns=features, n_features=model.n_features,
                      model_features=model_features, name=csv_name, columns_in_order=in_order)
    if model_features is not None:
        with st.expander("Column mapping", expanded=in_order or data.feature_names != model_features):
            st.table({"model input": list(model.feature_names or model_features), "table column": data.feature_names})
    st.caption(f"{model.name}: {model.framework}, {data.n_features} features -> {', '.join(model.output_names)} "
               f"({model.output_kind}); {data.n_rows} rows in {csv_name}")
    key = hashlib.sha256(repr((ref, hashlib.sha256(csv_bytes).hexdigest(), label_column,
                               data.feature_names)).encode()).hexdigest()
    return ChosenTable(data, csv_name, key)


def row_method_form(model) -> RowPlan:
    """The explainer (those the model's capabilities allow), its parameters (the
    layer ones through the layer picker), the seed and the output explained."""
    method = st.selectbox("Explainer", [e.name for e in available_for(model, "vector")],
                          format_func=lambda name: get_explainer(name, "vector").label, key="tab_method")
    explainer = get_explainer(method, "vector")
    st.caption(f"{explainer.description} {explainer.paper}")
    with st.expander("Parameters"):
        params = params_form(explainer, "tab", skip=LAYER_PARAMS)
        layer_choice = layer_settings(model, explainer, "tab")
        params.update(layer_choice.params, **({"layer": layer_choice.layer} if layer_choice.layer else {}))
        seed = int(st.number_input("seed", value=0, min_value=0, step=1, key="tab_seed"))
    target_choice = st.selectbox("Explain output", [PREDICTED, *model.output_names], key="tab_target")
    target = None if target_choice == PREDICTED else model.output_names.index(target_choice)
    return RowPlan(explainer, params, seed, target)
