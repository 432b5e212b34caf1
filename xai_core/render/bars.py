"""Figures for tabular explanations: plotly for the dashboard, a matplotlib PNG for
the command line. Red pushes the explained output up, blue pushes it down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xai_core.render.words import direction_legend, direction_words
from xai_core.service.rows import TabularSummary
from xai_core.types import Explanation, UnsupportedError

POSITIVE = "#d62728"
NEGATIVE = "#1f77b4"
TOP_K = 15


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _title(expl: Explanation) -> str:
    return (f"{expl.method} - row {expl.row} - {expl.target_label} "
            f"({expl.output_kind} {_fmt(expl.output)})")


def bar_figure(expl: Explanation, top_k: int = TOP_K) -> Any:
    """Signed horizontal bars, largest |attribution| on top, the row's value of each
    feature written beside its bar."""
    import plotly.graph_objects as go

    ranked = expl.ranked()[:top_k][::-1]
    names = [f for f, _ in ranked]
    values = [v for _, v in ranked]
    given = expl.values_by_feature()
    up, down = direction_words(expl)
    fig = go.Figure(go.Bar(
        x=values,
        y=names,
        orientation="h",
        marker_color=[POSITIVE if v >= 0 else NEGATIVE for v in values],
        text=[f"= {_fmt(given[f])}" for f in names],
        textposition="outside",
        cliponaxis=False,
        customdata=[given[f] for f in names],
        hovertext=[up if v >= 0 else down for v in values],
        hovertemplate="%{y} = %{customdata:.4g}<br>attribution %{x:.4g}: %{hovertext}<extra></extra>",
    ))
    fig.update_layout(
        title=_title(expl),
        xaxis_title=f"attribution ({direction_legend(expl)})",
        height=max(300, 28 * len(names) + 120),
        margin={"l": 10, "r": 80, "t": 60, "b": 40},
        showlegend=False,
    )
    return fig


def waterfall_figure(expl: Explanation, top_k: int = 12) -> Any:
    """From the base value, one step per feature (largest first, the rest summed),
    to base + sum(attributions), which equals the model output for additive methods."""
    import plotly.graph_objects as go

    if expl.base_value is None:
        raise UnsupportedError(
            f"{expl.method} has no base value (its weights belong to a local surrogate model), so no waterfall; "
            "use kernel_shap or integrated_gradients"
        )
    ranked = expl.ranked()
    given = expl.values_by_feature()
    shown, rest = ranked[:top_k], ranked[top_k:]
    labels = ["base value"] + [f"{f} = {_fmt(given[f])}" for f, _ in shown]
    steps = [expl.base_value] + [v for _, v in shown]
    measures = ["absolute"] + ["relative"] * len(shown)
    if rest:
        labels.append(f"{len(rest)} other features")
        steps.append(float(sum(v for _, v in rest)))
        measures.append("relative")
    labels.append("output")
    steps.append(0.0)
    measures.append("total")
    # plotly accumulates in data order (base first, total last); the reversed y axis
    # then shows the base value on top and the output at the bottom
    fig = go.Figure(go.Waterfall(
        orientation="h",
        measure=measures,
        y=labels,
        x=steps,
        increasing={"marker": {"color": POSITIVE}},
        decreasing={"marker": {"color": NEGATIVE}},
        totals={"marker": {"color": "#7f7f7f"}},
        connector={"line": {"color": "#bbbbbb"}},
    ))
    end = expl.base_value + sum(expl.by_feature().values())
    fig.update_layout(
        title=f"{_title(expl)}<br><sup>base {_fmt(expl.base_value)} + attributions = {_fmt(end)}; "
              f"model output {_fmt(expl.output)}</sup>",
        xaxis_title=expl.output_kind,
        yaxis={"autorange": "reversed"},
        height=max(320, 26 * len(labels) + 140),
        margin={"l": 10, "r": 20, "t": 80, "b": 40},
        showlegend=False,
    )
    return fig


def importance_figure(summary: TabularSummary, top_k: int = TOP_K) -> Any:
    """Mean |attribution| per feature over the explained rows (global importance)."""
    import plotly.graph_objects as go

    top = summary.mean_abs.head(top_k)[::-1]
    fig = go.Figure(go.Bar(x=top.to_numpy(), y=list(top.index), orientation="h", marker_color="#555555"))
    fig.update_layout(
        title=f"{summary.method} - mean |attribution| over {len(summary.explanations)} rows - {summary.target_label}",
        xaxis_title="mean |attribution|",
        height=max(300, 26 * len(top) + 120),
        margin={"l": 10, "r": 20, "t": 60, "b": 40},
    )
    return fig


def beeswarm_figure(summary: TabularSummary, top_k: int = TOP_K, seed: int = 0) -> Any:
    """One dot per row and feature: x = attribution, features ordered by mean
    |attribution|, color = the feature's value (low blue, high red, scaled per feature)."""
    import plotly.graph_objects as go

    features = list(summary.mean_abs.head(top_k).index)[::-1]
    attributions, values = summary.attributions, summary.values
    rng = np.random.default_rng(seed)
    xs, ys, colors, texts = [], [], [], []
    for pos, feature in enumerate(features):
        attr = attributions[feature].to_numpy()
        vals = values[feature].to_numpy(np.float64)
        lo, hi = np.nanmin(vals), np.nanmax(vals)
        scaled = (vals - lo) / (hi - lo) if hi > lo else np.full_like(vals, 0.5)
        xs.append(attr)
        ys.append(pos + rng.uniform(-0.3, 0.3, size=len(attr)))
        colors.append(scaled)
        texts += [f"{feature} = {_fmt(v)}<br>row {r}" for v, r in zip(vals, attributions.index, strict=True)]
    fig = go.Figure(go.Scattergl(
        x=np.concatenate(xs) if xs else [],
        y=np.concatenate(ys) if ys else [],
        mode="markers",
        marker={"color": np.concatenate(colors) if colors else [], "colorscale": "RdBu_r", "size": 6,
                "opacity": 0.8, "colorbar": {"title": "feature value", "tickvals": [0, 1], "ticktext": ["low", "high"]}},
        text=texts,
        hovertemplate="%{text}<br>attribution %{x:.4g}<extra></extra>",
    ))
    fig.update_layout(
        title=f"{summary.method} - attributions over {len(summary.explanations)} rows - {summary.target_label}",
        xaxis_title="attribution",
        yaxis={"tickvals": list(range(len(features))), "ticktext": features},
        height=max(320, 30 * len(features) + 120),
        margin={"l": 10, "r": 20, "t": 60, "b": 40},
    )
    fig.add_vline(x=0, line_color="#999999", line_width=1)
    return fig


def save_bar_png(expl: Explanation, path: str | Path, top_k: int = TOP_K, dpi: int = 120) -> Path:
    """The signed bar chart as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    ranked = expl.ranked()[:top_k][::-1]
    given = expl.values_by_feature()
    names = [f"{f} = {_fmt(given[f])}" for f, _ in ranked]
    values = [v for _, v in ranked]
    fig = Figure(figsize=(8, max(2.5, 0.35 * len(names) + 1.2)))
    ax = fig.subplots()
    ax.barh(range(len(values)), values, color=[POSITIVE if v >= 0 else NEGATIVE for v in values])
    ax.set_yticks(range(len(values)), names, fontsize=8)
    ax.axvline(0, color="#777777", linewidth=0.8)
    ax.set_xlabel(f"attribution ({direction_legend(expl)})")
    ax.set_title(_title(expl), fontsize=10)
    fig.tight_layout()
    import io

    from xai_core.render.files import write_file

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    write_file(path, buf.getvalue())  # never through a planted symbolic link
    return path
