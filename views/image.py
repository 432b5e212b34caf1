"""Image explainer page: widgets in, one xai_core call (through ui.runner), render out."""

import streamlit as st

from ui.image_form import image_picker, model_input_preview
from ui.inputs_form import model_inputs_form
from ui.method_form import explain_form
from ui.metrics_panel import image_metrics_panel
from ui.model_form import model_sidebar
from ui.quickstart import apply_quickstart, take_autorun
from ui.results import show_results
from ui.runner import (
    current_results,
    follow_plan,
    open_model_or_error,
    results_adapter,
    show_estimate,
    start_plan,
)

apply_quickstart()
st.title("Explain an image classifier")

request = model_sidebar()
adapter = open_model_or_error(request) if request else None

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("Image")
    picked = image_picker()
    several = adapter is not None and adapter.multi_input
    if picked is not None and request is not None and not several:
        model_input_preview(picked, request.spec)
    fed = model_inputs_form(adapter, picked) if several and picked is not None else None
with right:
    st.subheader("Explainer")
    plan = explain_form(adapter) if adapter else None
    if adapter is None:
        st.info("Choose a model in the sidebar to see the explainers it supports.")

ready = adapter is not None and picked is not None and plan is not None and (fed is not None or not several)
clicked = st.button("Explain", type="primary", disabled=not ready)
if ready:
    show_estimate(request, adapter, picked, plan, fed)
autorun = take_autorun()
if ready and (clicked or autorun):
    start_plan(request, adapter, picked, plan, fed)
follow_plan(request)  # the run started now, or the one this page's link names (after a reload)

results = current_results(request, adapter, picked, fed)
if results is not None:
    show_results(results)
    image_metrics_panel(results, results_adapter(results, request, adapter))
