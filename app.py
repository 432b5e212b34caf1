"""Streamlit entry point: page config and navigation. Run: streamlit run app.py"""

import streamlit as st

from ui.warmup import start_once

st.set_page_config(page_title="XAI dashboard", page_icon=":material/visibility:", layout="wide")
start_once()  # the one-click start's imports, model and kernels, warmed in a background thread

PAGES = [
    st.Page("views/home.py", title="Start", icon=":material/home:", default=True),
    st.Page("views/image.py", title="Image explainer", icon=":material/image_search:"),
    st.Page("views/tabular.py", title="Tabular explainer", icon=":material/table_chart:"),
    st.Page("views/sets.py", title="Labelled sets", icon=":material/fact_check:"),
]

st.navigation(PAGES).run()
