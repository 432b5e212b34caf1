"""'Can I trust these maps?': faithfulness and sanity metrics next to the results,
and the compare view that ranks the methods by them in one table.

One click computes the chosen metrics for every shown result in the server's run
store (progress, time left and Stop on the page; the run outlives the page, see
``ui.long_run``), after an estimate of its cost; a quick budget keeps it under a
minute. Each (result, metric, parameters) is cached with the explanation, so a
rerun, or adding one metric, recomputes nothing else.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from xai_core.metrics import (
    IMAGE_DEFAULTS,
    ROW_DEFAULTS,
    Direction,
    MetricResult,
    Modality,
    Needs,
    get_metric,
    metrics_for,
)
from xai_core.metrics.estimate import estimate_metrics
from xai_core.service.estimate import Estimate, total
from xai_core.types import XaiError

from .cache import outside_cache
from .long_run import finished_result, follow_run, followed_id, start_run
from .method_form import params_form
from .plots import legend_below, method_colors
from .tables import metrics_by_method, whole_height

METRICS_KEY = "metric_choice"
SLOTS = {Modality.IMAGE: "check", Modality.ROWS: "check_row"}  # the panel's run: its id in the URL
BUDGETS = {"quick": "Quick (under a minute)", "full": "Full (the metric settings)"}
QUICK_SECONDS = 40.0  # the quick budget keeps the metrics whose estimates fit in this
QUICK_EVALS = 2000  # ... or, where the model's time is unknown, whose evaluations are at most this
QUICK = {  # the quick budget's settings: fewer curve points and re-runs of the method
    "deletion": {"steps": 5, "random_orders": 1},
    "insertion": {"steps": 5, "random_orders": 1},
    "road": {"steps": 2},
    "correlation": {"runs": 16},
    "randomization": {"steps": 1},
    "sensitivity": {"samples": 1},
}


Run = Callable[[str, str, Any, Callable[[float, str], None] | None], dict[str, MetricResult]]
"""(item key, metric, explanation, progress) -> {model input name: result}."""


@st.cache_data(show_spinner=False, max_entries=256)
def _image_metric(result_key: str, name: str, params: str, _adapter: Any, _image: Any, _explanation: Any,
                  _progress: Callable[[float, str], None] | None) -> dict[str, MetricResult]:
    """One metric of one result, per model input (``_image``: the picture, which feeds
    every image input, or one item per input; ``result_key`` names both)."""
    from xai_core.metrics.service import evaluate_inputs
    from xai_core.service import prepare_inputs

    per_input = evaluate_inputs(_adapter, prepare_inputs(_adapter, _image), _explanation, [name],
                                {name: json.loads(params)}, progress=_progress)
    return {spec: results[name] for spec, results in per_input.items() if name in results}


@st.cache_data(show_spinner=False, max_entries=256)
def _row_metric(result_key: str, name: str, params: str, _model: Any, _data: Any, _explanation: Any,
                _progress: Callable[[float, str], None] | None) -> dict[str, MetricResult]:
    from xai_core.metrics.service import evaluate_row

    return {"row": evaluate_row(_model, _data, _explanation, [name], {name: json.loads(params)},
                                progress=_progress)[name]}


def _choose(modality: Modality, can_randomize: bool, key: str) -> list[str]:
    available = [m for m in metrics_for(modality) if can_randomize or Needs.WEIGHTS not in m.needs]
    labels = {m.name: f"{m.name}: {m.description} ({m.paper})" for m in available}
    defaults = [n for n in (IMAGE_DEFAULTS if modality is Modality.IMAGE else ROW_DEFAULTS) if n in labels]
    return st.multiselect("Metrics", list(labels), default=defaults, format_func=lambda n: n, key=key,
                          help="\n\n".join(labels.values()))


def row_key(key: str, input_name: str, several: bool) -> str:
    """The table row of one result's metrics for one model input."""
    return f"{key}::{input_name}" if several else key


def row_labels(items: Sequence[tuple[str, str, Any]], results: dict[str, dict[str, MetricResult]]) -> dict[str, str]:
    """Row key -> 'method' (one input) or 'method · input' (several inputs)."""
    labels = {}
    for label, key, _ in items:
        labels[key] = label
        for row in results:
            if row.startswith(f"{key}::"):
                labels[row] = f"{label} · {row.split('::', 1)[1]}"
    return labels


def _compute(items: Sequence[tuple[str, str, Any]], names: Sequence[str], run: Run,
             progress: Callable[[float, str], None]) -> dict:
    """In a server thread: {"results": {row key: {metric: result}}, "errors": [...]}
    for every (label, key, explanation), one row per result and model input (see
    :func:`row_key`)."""
    total = len(items) * len(names)
    done: dict[str, dict[str, MetricResult]] = {}
    errors = []
    for i, (label, key, explanation) in enumerate(items):
        for j, name in enumerate(names):
            step = i * len(names) + j

            def tell(fraction: float, text: str, step: int = step, label: str = label) -> None:
                progress(min(1.0, (step + fraction) / total), f"{label}: {text}")

            tell(0.0, name)
            try:
                per_input = run(key, name, explanation, outside_cache(tell))
                for input_name, result in per_input.items():
                    done.setdefault(row_key(key, input_name, len(per_input) > 1), {})[name] = result
            except XaiError as exc:
                errors.append(f"{label}, {name}: {str(exc).strip().rstrip('.')}.")
            except Exception as exc:  # noqa: BLE001 - no traceback may reach the user
                errors.append(f"{label}, {name} failed ({type(exc).__name__}: {exc}); try fewer steps or samples.")
    return {"results": done, "errors": errors}


def ranking_table(labels: dict[str, str], results: dict[str, dict[str, MetricResult]]) -> pd.DataFrame:
    """One row per method (per method and model input, for several inputs): each
    metric's value (its random baseline beside it), the mean rank over the metrics
    (1 = best, by each metric's direction), and the cost."""
    rows = []
    for key, per_metric in results.items():
        row: dict[str, Any] = {"Method": labels[key]}
        for name, r in per_metric.items():
            row[f"{name} ({'↑' if r.direction is Direction.HIGHER else '↓'})"] = r.value
            if r.baseline is not None:
                row[f"{name} random"] = r.baseline
        row["evals"] = sum(r.model_evals for r in per_metric.values())
        row["seconds"] = round(sum(r.elapsed_s for r in per_metric.values()), 2)
        rows.append(row)
    frame = pd.DataFrame(rows)
    ranks = []
    names = sorted({n for per in results.values() for n in per})
    for name in names:
        values = [per[name].value if name in per else np.nan for per in results.values()]
        direction = next(per[name].direction for per in results.values() if name in per)
        sign = -1 if direction is Direction.HIGHER else 1
        ranks.append(pd.Series(values).mul(sign).rank(method="min"))
    if ranks and len(frame) > 1:
        frame.insert(1, "mean rank", pd.concat(ranks, axis=1).mean(axis=1).round(2))
        frame = frame.sort_values("mean rank", kind="stable")
    return frame


def _curves(labels: dict[str, str], results: dict[str, dict[str, MetricResult]]) -> None:
    import plotly.graph_objects as go

    names = [n for n in dict.fromkeys(n for per in results.values() for n in per)
             if any(per[n].curve for per in results.values() if n in per)]
    if not names:
        return
    columns = st.columns(min(3, len(names)))
    colors = method_colors(list(labels.values()))  # one colour per method in every plot (ui.plots)
    for i, name in enumerate(names):
        fig = go.Figure()
        title = name
        for key, per in results.items():
            r = per.get(name)
            if r is None or r.curve is None:
                continue
            color = colors[labels[key]]
            fig.add_scatter(x=r.curve[0], y=r.curve[1], mode="lines+markers", line={"color": color},
                            marker={"size": 5}, name=f"{labels[key]}: {r.curve_names[0]}")
            if r.baseline_curve is not None:
                fig.add_scatter(x=r.baseline_curve[0], y=r.baseline_curve[1], mode="lines",
                                line={"dash": "dash", "color": color}, opacity=0.6,
                                name=f"{labels[key]}: {r.curve_names[1]}")
            title = f"{r.label}"
        x_title = "share of layers randomised" if name == "randomization" else "share of features changed"
        fig.update_layout(title={"text": title, "font": {"size": 13}}, height=260, xaxis_title=x_title,
                          margin={"l": 0, "r": 0, "t": 30, "b": 0})
        legend_below(fig, rows=len(fig.data))
        columns[i % len(columns)].plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def _show(labels: dict[str, str], results: dict[str, dict[str, MetricResult]], explain_cost: dict[str, tuple]) -> None:
    for key, per in results.items():
        for r in per.values():
            if r.warning:
                st.warning(f"{labels[key]}: {r.warning}.", icon="⚠️")
    frame = ranking_table(labels, results)
    shown = metrics_by_method(frame)  # one column per method: narrow, shown whole (ui.tables)
    st.dataframe(shown, hide_index=True, width="stretch", height=whole_height(len(shown)), key="metrics_table")
    cost = [f"{labels[k]}: metrics {sum(r.model_evals for r in per.values())} evaluations, "
            f"{sum(r.elapsed_s for r in per.values()):.2f} s (the explanation: {explain_cost[item][0]} evaluations, "
            f"{explain_cost[item][1]:.2f} s)" for k, per in results.items() for item in [k.split("::")[0]]]
    st.caption("↑ higher is better, ↓ lower is better; 'random' is the same metric for a random order or map. "
               + " · ".join(cost))
    _curves(labels, results)


def quick_params(names: Sequence[str], params: dict[str, dict]) -> dict[str, dict]:
    """The quick budget's parameters: the settings, with :data:`QUICK` in place of
    their budgets."""
    return {n: {**params.get(n, {}), **QUICK.get(n, {})} for n in names}


def fit_quick(estimates: dict[str, Estimate], seconds: float = QUICK_SECONDS) -> tuple[list[str], list[str]]:
    """(kept, left out): the metrics, cheapest first, while their estimates add up
    to at most ``seconds``; one whose time is unknown is kept when its evaluations
    are known and at most :data:`QUICK_EVALS`."""
    kept, left, used = [], [], 0.0
    for name in sorted(estimates, key=lambda n: (estimates[n].seconds is None, estimates[n].seconds or 0.0)):
        cost, evals = estimates[name].seconds, estimates[name].evals
        if cost is None and evals is not None and evals <= QUICK_EVALS:
            kept.append(name)
        elif cost is not None and used + cost <= seconds:
            kept.append(name)
            used += cost
        else:
            left.append(name)
    return [n for n in estimates if n in kept], [n for n in estimates if n in left]


def _keep_open() -> None:
    """The panel's on_change: its open state lives in the session, so no rerun
    (changing the metric choice, the budget or a setting) collapses it."""


def _panel(modality: Modality, items: Sequence[tuple[str, str, Any]], can_randomize: bool, state_key: str,
           run: Callable[..., dict[str, MetricResult]], cost: dict[str, tuple],
           estimator: Callable[[list[str], dict[str, dict]], dict[str, Estimate]], queue: str | None) -> None:
    slot = SLOTS[modality]
    keys = tuple(k for _, k, _ in items)
    going = followed_id(slot) is not None and state_key not in st.session_state
    with st.expander("Can I trust these maps? Faithfulness and sanity checks", key=f"{state_key}__open",
                     expanded=going or state_key in st.session_state, on_change=_keep_open):
        names = _choose(modality, can_randomize, f"{METRICS_KEY}_{modality.value}")
        params: dict[str, dict] = {}
        budget = st.radio("Budget", list(BUDGETS), format_func=BUDGETS.get, horizontal=True,
                          key=f"metric_budget_{modality.value}",
                          help="Quick: fewer curve points and re-runs of the method, and only the metrics that fit "
                               f"in about {QUICK_SECONDS:.0f} s by the estimate. Full: the metric settings as set.")
        if names:
            with st.popover("Metric settings"):
                for name in names:
                    st.markdown(f"**{name}**")
                    params[name] = params_form(get_metric(name), prefix=f"metric_{modality.value}")
        chosen = list(names)
        if names:
            if budget == "quick":
                params = quick_params(names, params)
            try:
                with st.spinner("Timing the model…"):
                    estimates = estimator(chosen, params)
            except Exception:  # noqa: BLE001 - an estimate that cannot be made never blocks the check
                estimates = {}
            if budget == "quick" and estimates:
                chosen, left = fit_quick(estimates)
                if left:
                    st.caption("Left out of the quick budget: " + ", ".join(
                        f"{n} ({estimates[n].words})" for n in left) + ". Choose Full to run them.")
            if estimates and chosen:
                st.caption(f"Estimated {total({n: estimates[n] for n in chosen}).words} for "
                           f"{', '.join(chosen)} on {len(items)} result(s).")
        if st.button("Check faithfulness", disabled=not chosen, key=f"check_{modality.value}"):
            work = functools.partial(_compute, items, chosen,
                                     lambda k, n, e, p: run(k, n, e, p, params[n]))
            start_run(slot, "Checking the maps", lambda progress: {"keys": keys, **work(progress)},
                      estimate=total({n: estimates[n] for n in chosen}) if estimates else None, queue=queue)
        new, outcome = finished_result(slot, follow_run(slot))
        if new:
            for message in outcome["errors"]:
                st.error(message)
            st.session_state[state_key] = (tuple(outcome["keys"]), outcome["results"])
        stored = st.session_state.get(state_key)
        if stored and stored[0] == keys:
            _show(row_labels(items, stored[1]), stored[1], cost)


def image_metrics_panel(results: Any, adapter: Any) -> None:
    """The panel under the image results (a ``ui.runner.ResultSet``) for ``adapter``."""
    if adapter is None:
        return
    items = [(i.label, i.key, i.explanation) for i in results.items]
    cost = {i.key: (i.explanation.model_evals, i.explanation.elapsed_s) for i in results.items}

    given = results.fed.items if results.fed is not None else results.image.array  # what fed each input

    def run(key: str, name: str, explanation: Any, progress, params: dict) -> dict[str, MetricResult]:
        return _image_metric(key, name, json.dumps(params, sort_keys=True), adapter, given, explanation, progress)

    queue = results.request.key if getattr(adapter, "engine", "") == "worker" else None

    def estimator(names: list[str], params: dict[str, dict]) -> dict[str, Estimate]:
        from xai_core.service import prepare_inputs

        explained = [(i.explanation.method, i.explanation.params) for i in results.items]
        # a model in a worker is not timed here: its worker may be busy with another session's run
        return estimate_metrics(adapter, prepare_inputs(adapter, given), explained, names, params,
                                measure_now=queue is None)

    _panel(Modality.IMAGE, items, bool(adapter.weight_layers()), "img_metric_results", run, cost, estimator, queue)


def row_metrics_panel(explanation: Any, model: Any, data: Any) -> None:
    """The panel under a tabular row's result (an ``Explanation`` of a row of ``data``)."""
    if explanation is None:
        return
    from .cache import content_hash

    identity = [model.name, data.source, data.x.shape, explanation.record()]
    key = content_hash(json.dumps(identity, default=str, sort_keys=True).encode())
    items = [(f"{explanation.method}, row {explanation.row}", key, explanation)]
    cost = {key: (explanation.model_evals, explanation.elapsed_s)}

    def run(key: str, name: str, explanation: Any, progress, params: dict) -> dict[str, MetricResult]:
        return _row_metric(key, name, json.dumps(params, sort_keys=True), model, data, explanation, progress)

    def estimator(names: list[str], params: dict[str, dict]) -> dict[str, Estimate]:
        return estimate_metrics(model, [np.asarray(data.x[explanation.row], np.float32)],
                                [(explanation.method, explanation.params)], names, params)

    _panel(Modality.ROWS, items, bool(model.weight_layers()), "tab_metric_results", run, cost, estimator, None)
