"""Tabular rows: explain a model's output for one row of a CSV, or for many rows.

Widgets in (ui.model_form, ui.table_form), one xai_core call (through
ui.row_results), render out. Runs inside the app's navigation or alone:
``streamlit run views/tabular.py``.
"""

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ui.cache import open_model_ref  # noqa: E402
from ui.messages import show_error  # noqa: E402
from ui.model_form import model_picker  # noqa: E402
from ui.row_results import many_rows, one_row  # noqa: E402
from ui.table_form import row_method_form, table_form, table_source  # noqa: E402

st.title("Tabular rows")
st.caption("Which features moved the model's output for a row: LIME, Kernel SHAP, Integrated Gradients.")

ref = model_picker("tab", reads=("rows",))
csv = table_source(ref) if ref is not None else None
if csv is None:
    st.stop()
try:
    model = open_model_ref(ref)
    table = table_form(model, ref, *csv)
    plan = row_method_form(model)
except Exception as exc:  # noqa: BLE001 - st.stop() is not an Exception and passes through
    show_error(exc)
    st.stop()

one, many = st.tabs(["One row", "Many rows"])
with one:
    one_row(model, table, plan)
with many:
    many_rows(model, table, plan)
