"""Labelled sets: evaluate a model on a whole set, find what it gets wrong, and see
why (each chosen item explained against every class). Widgets in, xai_core calls
(through ui.sets), render out."""

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ui.cache import open_set_model  # noqa: E402
from ui.model_form import model_picker  # noqa: E402
from ui.sets import (  # noqa: E402
    RAY_TRUST_NOTE,
    choose_selection,
    choose_set,
    engine_settings,
    evaluation_for,
    load_set,
    show_error,
    show_gallery,
    show_metrics,
)
from ui.sets_results import explain_form, run_explain, show_result  # noqa: E402

st.title("Labelled sets: why was this one wrong?")
st.caption("Run a model over a labelled set, find the items it gets wrong, and explain each against every class.")

top = st.columns(2, gap="large")
with top[0]:
    ref = model_picker("set", reads=("image", "rows"), zoo_key="set_model")
model = dataset = None
if ref is not None:
    try:
        model = open_set_model(ref)
    except Exception as exc:  # noqa: BLE001 - the page keeps working
        show_error(exc)
with top[1]:
    source = choose_set(ref) if model is not None else None
if model is not None and source is not None:
    try:
        dataset = load_set(source, model)
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
if dataset is None:
    st.stop()

engine, address, workers = engine_settings()
try:
    evaluation = evaluation_for(ref, model, source, dataset)
except Exception as exc:  # noqa: BLE001
    show_error(exc)
    st.stop()
st.caption(f"{model.name} on {source.name}: {len(dataset)} items, evaluated in {evaluation.elapsed_s:.2f} s "
           f"on the {engine} engine" + (f" ({workers} workers)" if engine == "ray" else ""))
if engine == "ray":
    st.caption(RAY_TRUST_NOTE)
cell = show_metrics(evaluation)

st.subheader("Selection")
how, chosen = choose_selection(evaluation, cell)
show_gallery(evaluation, dataset, chosen)

st.subheader("Explain the selection")
request = explain_form(model)
run_key = f"{hash(ref)}:{source.key}|{how}:{chosen}:{request}"
clicked = st.button("Explain selection", type="primary", disabled=request is None or not chosen)
if clicked and request is not None:
    run_explain(model, dataset, evaluation, chosen, request, run_key)
show_result(model, dataset, evaluation, run_key)
