"""Tabular rows: explain a model's output for one row of a CSV, or for many rows.

Widgets in, one ``xai_core.tabular`` call, render out. Runs inside the app's
navigation or alone: ``streamlit run views/tabular.py``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model_zoo.tabular import DEFAULT_TABULAR_MODEL, TABULAR_ZOO, available_tabular_models  # noqa: E402
from ui.frameworks import upload_types  # noqa: E402
from ui.layer_form import LAYER_PARAMS, layer_settings  # noqa: E402
from ui.limits import CSV_MB, TABULAR_MODEL_MB  # noqa: E402
from ui.long_run import LongRun, show_stopped  # noqa: E402
from ui.messages import page_text  # noqa: E402
from ui.method_form import params_form  # noqa: E402
from ui.metrics_panel import row_metrics_panel  # noqa: E402
from ui.protection import trust_checkbox  # noqa: E402
from ui.results import unit_bars  # noqa: E402
from xai_core.explainers import available_for, get_explainer  # noqa: E402
from xai_core.render.bars import bar_figure, beeswarm_figure, importance_figure, waterfall_figure  # noqa: E402
from xai_core.render.files import safe_csv  # noqa: E402
from xai_core.render.words import direction_legend, fit_notes  # noqa: E402
from xai_core.service.quality import quality_notes  # noqa: E402
from xai_core.tabular import (  # noqa: E402
    default_label_column,
    explain_row,
    explain_rows,
    generated_names,
    load_table,
    model_columns,
    open_tabular_model,
    open_uploaded_model,
    predict_rows,
    read_columns,
)
from xai_core.types import XaiError  # noqa: E402

MODEL_TYPES = upload_types(rows=True)
NO_LABEL = "(no label column)"
PREDICTED = "predicted output"
ROW_RUN, ROWS_RUN = "tab_row_run", "tab_rows_run"  # progress bar + Stop button of each Explain button


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def _zoo_model(name: str):
    return open_tabular_model(name)


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def _uploaded_model(filename: str, digest: str, _data: bytes, arch: str, trust: bool):
    return open_uploaded_model(filename, _data, arch=arch or None, trust_pickle=trust)


def _show_error(exc: BaseException) -> None:
    if isinstance(exc, XaiError):
        st.error(page_text(exc) + ".")
    else:
        st.error(f"Unexpected failure ({type(exc).__name__}: {page_text(exc)[:300]}). "
                 "Your inputs are kept; try other settings.")


def _choose_model():
    source = st.radio("Model", ["Zoo model", "Upload a model"], horizontal=True, key="tab_model_source")
    if source == "Zoo model":
        names = available_tabular_models()
        name = st.selectbox("Zoo model", names, index=names.index(DEFAULT_TABULAR_MODEL) if DEFAULT_TABULAR_MODEL in names else 0,
                            format_func=lambda n: f"{n} ({TABULAR_ZOO[n].framework})", key="tab_zoo_model")
        st.caption(TABULAR_ZOO[name].description)
        return _zoo_model(name), TABULAR_ZOO[name], f"zoo:{name}"
    upload = st.file_uploader("Model file (.pt TorchScript/state_dict, .pt2, .keras, .onnx)", type=MODEL_TYPES,
                              key="tab_model_upload", max_upload_size=TABULAR_MODEL_MB)
    arch = st.text_input("Architecture of a bare state_dict", value="", placeholder="tabular_mlp", key="tab_arch")
    trust = trust_checkbox("tab_trust", "a TorchScript, .pt2 or fully pickled PyTorch module")
    if upload is None:
        st.info("Upload a model file, or pick a zoo model.")
        st.stop()
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    return (_uploaded_model(upload.name, digest, data, arch.strip(), trust), None,
            f"file:{digest}:{arch.strip()}:{trust}")


def _choose_table(entry):
    sample = entry.csv_path if entry is not None else TABULAR_ZOO[DEFAULT_TABULAR_MODEL].csv_path
    source = st.radio("Data", [f"Sample CSV ({sample.name})", "Upload a CSV"], horizontal=True, key="tab_data_source")
    if source.startswith("Sample"):
        return sample.read_bytes(), sample.name
    upload = st.file_uploader("CSV file with a header line", type=["csv", "txt"], key="tab_csv_upload",
                              max_upload_size=CSV_MB)
    if upload is None:
        st.info("Upload a CSV, or use the sample.")
        st.stop()
    return upload.getvalue(), upload.name


def _render_row(expl) -> None:
    st.markdown(f"**Row {expl.row}** - {expl.method} explains **{expl.target_label}** "
                f"({expl.output_kind} {expl.output:.4g})"
                + (f"; label in the CSV: `{expl.label}`" if expl.label is not None else ""))
    st.dataframe([p.to_dict("value") for p in expl.predictions], hide_index=True, key="tab_predictions")
    # a poor surrogate fit is said next to the plot it concerns, with what to do
    for note in quality_notes(expl.method, expl.extras, expl.base_value) + fit_notes(expl):
        st.warning(note, icon=":material/warning:")
    st.caption(direction_legend(expl))
    st.plotly_chart(bar_figure(expl), key="tab_bar")
    if expl.layer_attribution is not None:
        unit_bars(np.asarray(expl.layer_attribution), f"layer {expl.layer}", "tab_layer_bars")
    if expl.neuron is not None:
        st.caption(f"Neuron conductance: which features feed unit {expl.neuron} of layer {expl.layer} "
                   f"(sum {expl.extras.get('neuron_total', 0):.4g}); no base value, so no waterfall.")
    elif expl.base_value is not None:
        st.plotly_chart(waterfall_figure(expl), key="tab_waterfall")
        st.caption(f"base value {expl.base_value:.4g} + attributions = "
                   f"{expl.base_value + sum(expl.by_feature().values()):.4g}; model output {expl.output:.4g}"
                   + (f"; IG convergence delta {expl.extras['convergence_delta']:.2e}"
                      if "convergence_delta" in expl.extras else ""))
    else:
        st.caption(f"LIME weights of a local linear surrogate (intercept {expl.extras.get('intercept', 0):.4g}, "
                   f"local prediction {expl.extras.get('local_prediction', 0):.4g}, R² {expl.extras.get('r2_score', 0):.3f}); "
                   "no base value, so no waterfall.")
    given = expl.values_by_feature()
    st.dataframe(
        [{"feature": f, "value": given[f], "attribution": v} for f, v in expl.ranked()],
        hide_index=True, key="tab_values",
    )
    st.caption(f"{expl.model_evals} model evaluations in {expl.elapsed_s:.2f} s; seed {expl.seed}; "
               f"params {expl.params}")


def _render_rows(summary) -> None:
    st.markdown(f"**{len(summary.explanations)} rows** - {summary.method} explains **{summary.target_label}**; "
                f"{summary.model_evals} model evaluations in {summary.elapsed_s:.1f} s")
    st.plotly_chart(importance_figure(summary), key="tab_importance")
    st.plotly_chart(beeswarm_figure(summary), key="tab_beeswarm")
    st.download_button("Download attribution table (CSV)", safe_csv(summary.table()),
                       file_name=f"attributions__{summary.method}.csv", mime="text/csv", key="tab_download")


def _current(result_key: str, inputs: tuple, what: str):
    """The stored result under ``result_key`` when it was computed from ``inputs``;
    otherwise None, with a line saying why nothing is shown."""
    stored = st.session_state.get(result_key)
    if stored is None:
        return None
    if stored[0] == inputs:
        return stored[1]
    st.caption(f"The last result is hidden because the model, the table or the {what} changed since; "
               "press the button for a result of the current choice.")
    return None


st.title("Tabular rows")
st.caption("Which features moved the model's output for a row: LIME, Kernel SHAP, Integrated Gradients.")
try:
    model, entry, model_key = _choose_model()
    csv_bytes, csv_name = _choose_table(entry)
    columns = read_columns(csv_bytes, csv_name)
    # keyed by the header and the model, so that a new CSV or model starts from its own defaults
    header_key = hashlib.sha256("\x1f".join([model.name, *(model.feature_names or ()), "", *columns]).encode()
                                ).hexdigest()[:12]
    model_features = model_columns(model)  # the sidecar's "columns", else the model's own feature names
    default_label = default_label_column(columns, model_label=model.label_column,
                                         model_features=model_features)
    label_options = [NO_LABEL, *columns]
    label_choice = st.selectbox("Label column (not fed to the model)", label_options,
                                key=f"tab_label_column_{header_key}",
                                index=label_options.index(default_label) if default_label in columns else 0)
    label_column = None if label_choice == NO_LABEL else label_choice
    in_order = False
    if model_features is None:
        features = st.multiselect("Feature columns, in model input order",
                                  [c for c in columns if c != label_column],
                                  default=[c for c in columns if c != label_column],
                                  key=f"tab_features_{header_key}_{label_choice}")
    else:
        features = None
        if generated_names(model_features):
            in_order = st.checkbox(
                "Columns in the model's input order", key=f"tab_in_order_{header_key}",
                help=f"The model's inputs carry no names of their own ({', '.join(model_features[:3])}, ...): "
                     "take the table's columns, all but the label, in file order as its inputs in order.")
        else:
            st.caption(f"Columns are matched by name to the model's {len(model_features)} features (ignoring "
                       "case, '-', ' ' and '_'), so their order in the file does not matter.")
    data = load_table(csv_bytes, label_column=label_column, feature_columns=features,
                      n_features=model.n_features, model_features=model_features, name=csv_name,
                      columns_in_order=in_order)
    if model_features is not None:
        with st.expander("Column mapping", expanded=in_order or data.feature_names != model_features):
            st.table({"model input": list(model.feature_names or model_features),
                      "table column": data.feature_names})
    # what a stored result was computed from (with its row or rows): shown only while these stay
    inputs_key = hashlib.sha256(repr((model_key, hashlib.sha256(csv_bytes).hexdigest(), label_column,
                                      data.feature_names)).encode()).hexdigest()
    st.caption(f"{model.name}: {model.framework}, {data.n_features} features -> {', '.join(model.output_names)} "
               f"({model.output_kind}); {data.n_rows} rows in {csv_name}")
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
except Exception as exc:  # noqa: BLE001 - st.stop() is not an Exception and passes through
    _show_error(exc)
    st.stop()



one, many = st.tabs(["One row", "Many rows"])
with one:
    row = int(st.number_input(f"Row (0 to {data.n_rows - 1})", min_value=0, max_value=data.n_rows - 1, value=0,
                              step=1, key="tab_row"))
    row_inputs = (inputs_key, row)
    clicked = st.button("Explain row", type="primary", key="tab_explain_row")
    if not show_stopped(ROW_RUN) and clicked:
        try:
            with LongRun(ROW_RUN, f"{explainer.label} on row {row}") as run:
                st.session_state["tab_row_result"] = (row_inputs, explain_row(
                    model, data, row, explainer.name, params, target=target, seed=seed, progress=run.update))
        except Exception as exc:  # noqa: BLE001 - every failure is shown, none is a traceback
            _show_error(exc)
    row_result = _current("tab_row_result", row_inputs, "row")
    if row_result is not None:
        try:
            _render_row(row_result)
        except Exception as exc:  # noqa: BLE001
            _show_error(exc)
        row_metrics_panel(row_result, model, data)
    else:
        try:
            st.dataframe(dict(zip(model.output_names, predict_rows(model, data, [row])[0].tolist(), strict=True)),
                         key="tab_row_outputs")
        except Exception as exc:  # noqa: BLE001
            _show_error(exc)
with many:
    limit = min(data.n_rows, 500)
    first, last = st.slider("Rows", 0, data.n_rows - 1, (0, min(data.n_rows, 50) - 1), key="tab_rows")
    if last - first + 1 > limit:
        st.warning(f"At most {limit} rows at a time; the first {limit} of the range are explained.")
    chosen = list(range(first, min(last + 1, first + limit)))
    rows_inputs = (inputs_key, tuple(chosen))
    clicked = st.button("Explain rows", key="tab_explain_rows")
    if not show_stopped(ROWS_RUN) and clicked:
        try:
            with LongRun(ROWS_RUN, f"{explainer.label} on {len(chosen)} rows") as run:
                st.session_state["tab_rows_result"] = (rows_inputs, explain_rows(
                    model, data, chosen, explainer.name, params, target=target, seed=seed, progress=run.update))
        except Exception as exc:  # noqa: BLE001
            _show_error(exc)
    rows_result = _current("tab_rows_result", rows_inputs, "rows")
    if rows_result is not None:
        try:
            _render_rows(rows_result)
        except Exception as exc:  # noqa: BLE001
            _show_error(exc)
