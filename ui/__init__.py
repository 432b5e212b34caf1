"""Shared Streamlit pieces for the dashboard pages: cached model and result
wrappers, forms generated from parameter definitions, and renderers.

Only the dashboard imports this package; :mod:`xai_core` never imports Streamlit.
"""
