"""One look for every plot of a page: one colour per method (the same in every
plot), legends small and under the plot, never over the data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# plotly's default qualitative palette (D3 category10 order), fixed here so a method
# keeps its colour whatever the order its traces are added in
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
LEGEND_FONT = 11  # px: small, and still readable at the default zoom


def method_colors(labels: Sequence[str]) -> dict[str, str]:
    """Label -> colour, by the label's first place in ``labels`` (a page passes every
    method it shows, in the order it shows them, to every plot)."""
    order = list(dict.fromkeys(labels))
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(order)}


def legend_below(fig: Any, rows: int = 1) -> Any:
    """Put a plotly figure's legend under the plot area, horizontal, in small type;
    the figure grows by the legend's height so the data keeps its room."""
    extra = 26 * max(1, rows)
    height = (fig.layout.height or 280) + extra
    margin = fig.layout.margin
    fig.update_layout(
        height=height,
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0,
                "font": {"size": LEGEND_FONT}, "itemwidth": 30, "title": None},
        margin={"l": margin.l or 0, "r": margin.r or 0, "t": margin.t or 30, "b": (margin.b or 0) + extra + 30},
    )
    return fig
