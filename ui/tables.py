"""Tables shown whole: every row visible (the table is as tall as its rows), columns
narrow enough to fit the page, and numbers with three significant digits, so a
small value never reads as 0.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

ROW_PX = 35  # st.dataframe's row height (and the header's)


def whole_height(rows: int) -> int:
    """The st.dataframe height that shows ``rows`` rows and the header without scrolling."""
    return ROW_PX * (rows + 1) + 3


def number(value: Any) -> str:
    """Three significant digits, never a misleading 0: 0.00123 -> 0.00123, 0 -> 0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value:,}"
    v = float(value)
    return "0" if v == 0 else f"{v:.3g}"


def metrics_by_method(frame: pd.DataFrame) -> pd.DataFrame:
    """The metrics ranking (one row per method: ``Method``, ``mean rank``, ``<metric> (↑)``,
    ``<metric> random``, ``evals``, ``seconds``) turned to fit the page: one row per
    metric, one column per method, each cell the value with its random baseline beside
    it (``0.412 (random 0.0031)``). Methods are few, metrics many: this way round the
    table stays as narrow as the number of methods."""
    methods = [str(m) for m in frame["Method"]]
    rows: dict[str, list[str]] = {}
    for column in frame.columns:
        if column in ("Method", "evals", "seconds") or column.endswith(" random"):
            continue
        name = column.split(" (")[0]
        random_col = f"{name} random"
        label = column.replace("(↑)", "(↑ better)").replace("(↓)", "(↓ better)")
        cells = []
        for _, row in frame.iterrows():
            text = number(row[column])
            if random_col in frame.columns and text:
                base = number(row[random_col])
                text += f" (random {base})" if base else ""
            cells.append(text)
        rows[label] = cells
    for column in ("evals", "seconds"):
        if column in frame.columns:
            rows["model evaluations" if column == "evals" else "seconds"] = [number(v) for v in frame[column]]
    shown = pd.DataFrame(rows, index=methods).T
    shown.index.name = "metric"
    return shown.reset_index()
