"""The tabular page's runs and results: one row (bars, waterfall, values, metrics)
or many rows (importance, beeswarm, the attribution table). Runs go through the
same machinery as the image page's (:mod:`ui.long_run`, the server's run store):
an estimate before, progress with time left and Stop during, a result link that
outlives a reloaded tab; each result is kept with what it was computed from."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from xai_core.render.bars import bar_figure, beeswarm_figure, importance_figure, waterfall_figure
from xai_core.render.files import safe_csv
from xai_core.render.words import direction_legend, fit_notes
from xai_core.service.estimate import estimate_rows, observe
from xai_core.service.quality import quality_notes
from xai_core.tabular import explain_row, explain_rows, predict_rows
from xai_core.types import XaiError

from .long_run import finished_result, follow_run, start_run
from .messages import show_error
from .metrics_panel import row_metrics_panel
from .results import unit_bars
from .table_form import ChosenTable, RowPlan

ROW_RUN, ROWS_RUN = "trow", "trows"  # the run slots of the two Explain buttons (the URL's ?trow=<id>)
MAX_ROWS_AT_ONCE = 500


def show_row(expl) -> None:
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
                   f"local prediction {expl.extras.get('local_prediction', 0):.4g}, "
                   f"R² {expl.extras.get('r2_score', 0):.3f}); no base value, so no waterfall.")
    given = expl.values_by_feature()
    st.dataframe([{"feature": f, "value": given[f], "attribution": v} for f, v in expl.ranked()],
                 hide_index=True, key="tab_values")
    st.caption(f"{expl.model_evals} model evaluations in {expl.elapsed_s:.2f} s; seed {expl.seed}; "
               f"params {expl.params}")


def show_rows(summary) -> None:
    st.markdown(f"**{len(summary.explanations)} rows** - {summary.method} explains **{summary.target_label}**; "
                f"{summary.model_evals} model evaluations in {summary.elapsed_s:.1f} s")
    st.plotly_chart(importance_figure(summary), key="tab_importance")
    st.plotly_chart(beeswarm_figure(summary), key="tab_beeswarm")
    st.download_button("Download attribution table (CSV)", safe_csv(summary.table()),
                       file_name=f"attributions__{summary.method}.csv", mime="text/csv", key="tab_download")


def current(result_key: str, inputs: tuple, what: str) -> Any:
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


def _shown(render, *args) -> None:
    try:
        render(*args)
    except Exception as exc:  # noqa: BLE001 - every failure is shown, none is a traceback
        show_error(exc)


@dataclass(frozen=True)
class RowRun:
    """A finished run of the page, as the run store keeps it: what it was computed
    from (the table's key and the row or rows) and its result."""

    inputs: tuple
    result: Any


def _work(model, table: ChosenTable, rows: list[int], plan: RowPlan, one: bool, progress) -> RowRun:
    """An Explain button's work, in a server thread (no Streamlit call here)."""
    name = plan.explainer.name
    if one:
        result = explain_row(model, table.data, rows[0], name, plan.params, target=plan.target, seed=plan.seed,
                             progress=progress)
    else:
        result = explain_rows(model, table.data, rows, name, plan.params, target=plan.target, seed=plan.seed,
                              progress=progress)
    observe(model, f"{name}:rows", result.model_evals, result.elapsed_s)
    return RowRun((table.key, rows[0] if one else tuple(rows)), result)


def _explain_button(slot: str, label: str, model, table: ChosenTable, rows: list[int], plan: RowPlan,
                    one: bool) -> None:
    """The button, the estimate of what pressing it costs, and the run: it goes on
    in the server's run store whatever becomes of the page (progress with time
    left, Stop, a result link ``?<slot>=<id>``); its result is stored with what it
    was computed from."""
    in_worker = getattr(model, "engine", "") == "worker"
    try:  # a model in this process is timed now (once); one in a worker by its first run
        estimate = estimate_rows(model, table.data, rows, plan.explainer.name, plan.params,
                                 measure_now=not in_worker)
    except XaiError:
        estimate = None
    clicked = st.button(label, type="primary" if one else "secondary", key=f"tab_explain_{'row' if one else 'rows'}")
    if estimate is not None:
        st.caption(f"Estimated {estimate.words} on this machine.")
    if clicked:
        what = f"{plan.explainer.label} on " + (f"row {rows[0]}" if one else f"{len(rows)} rows")
        start_run(slot, what, functools.partial(_work, model, table, rows, plan, one), estimate=estimate,
                  queue=f"{model.name}:{id(model)}" if in_worker else None)
    new, run = finished_result(slot, follow_run(slot))
    if new:
        st.session_state[f"{slot}_result"] = (run.inputs, run.result)


def _restore_row(slot: str) -> None:
    """A run named by the page's link (a reloaded tab) puts its row back in the row
    picker, so that its result shows beside the row it explains."""
    if f"{slot}__id" in st.session_state or "tab_row" in st.session_state:
        return
    new, run = finished_result(slot, follow_run(slot))
    if new:
        st.session_state[f"{slot}_result"] = (run.inputs, run.result)
        st.session_state["tab_row"] = int(run.inputs[1])


def one_row(model, table: ChosenTable, plan: RowPlan) -> None:
    """The row picker, its Explain button and run, and the row's result (or its outputs)."""
    data = table.data
    _restore_row(ROW_RUN)
    st.session_state.setdefault("tab_row", 0)
    row = int(st.number_input(f"Row (0 to {data.n_rows - 1})", min_value=0, max_value=data.n_rows - 1, step=1,
                              key="tab_row"))
    _explain_button(ROW_RUN, "Explain row", model, table, [row], plan, one=True)
    result = current(f"{ROW_RUN}_result", (table.key, row), "row")
    if result is not None:
        _shown(show_row, result)
        row_metrics_panel(result, model, data)
    else:
        _shown(lambda: st.dataframe(dict(zip(model.output_names, predict_rows(model, data, [row])[0].tolist(),
                                             strict=True)), key="tab_row_outputs"))


def many_rows(model, table: ChosenTable, plan: RowPlan) -> None:
    """The range of rows, its Explain button and run, and the summary plots."""
    data = table.data
    limit = min(data.n_rows, MAX_ROWS_AT_ONCE)
    first, last = st.slider("Rows", 0, data.n_rows - 1, (0, min(data.n_rows, 50) - 1), key="tab_rows")
    if last - first + 1 > limit:
        st.warning(f"At most {limit} rows at a time; the first {limit} of the range are explained.")
    chosen = list(range(first, min(last + 1, first + limit)))
    _explain_button(ROWS_RUN, "Explain rows", model, table, chosen, plan, one=False)
    result = current(f"{ROWS_RUN}_result", (table.key, tuple(chosen)), "rows")
    if result is not None:
        _shown(show_rows, result)
