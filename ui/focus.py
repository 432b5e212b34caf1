"""Results where the eye is: a run's result heading that the page scrolls to once,
right after the run that made it, and compact number tiles.

The scroll is a one-line script run by ``st.html`` (not iframed, so it reaches the
page's own heading by its anchor); it is emitted once per new result, so reruns
caused by other widgets leave the reader where they are.
"""

from __future__ import annotations

import json

import streamlit as st

SCROLLED_KEY = "focus_scrolled_to"

# number tiles (st.metric) at a third of their default size: a result's numbers are
# read once, the picture is what the eye should land on
COMPACT_TILES = """<style>
[data-testid="stMetric"] { padding: 0.1rem 0; }
[data-testid="stMetricLabel"] p { font-size: 0.8rem; }
[data-testid="stMetricValue"] { font-size: 1.15rem; line-height: 1.4; }
</style>"""


def compact_tiles() -> None:
    """Make the page's st.metric tiles compact (a style, no space taken)."""
    st.html(COMPACT_TILES)


def results_heading(title: str, anchor: str, result_id: str | int) -> None:
    """The results' subheader (with ``anchor`` as its id); the page scrolls it to the
    top of the view the first time ``result_id`` is shown (a new run's result)."""
    st.subheader(title, anchor=anchor)
    state = st.session_state.setdefault(SCROLLED_KEY, {})
    if state.get(anchor) == str(result_id):
        return
    state[anchor] = str(result_id)
    target = json.dumps(anchor)
    st.html(f"<div data-scroll-to={target}></div><script>"
            f"(function(){{var go=function(n){{var el=document.getElementById({target});"
            f"if(el){{el.scrollIntoView({{block:'start'}});}}else if(n<40){{setTimeout(function(){{go(n+1);}},100);}}}};"
            f"setTimeout(function(){{go(0);}},50);}})();</script>", unsafe_allow_javascript=True)
