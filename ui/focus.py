"""Results where the eye is: a run's result heading that the page scrolls to once,
right after the run that made it, and compact number tiles.

The scroll is a short script in a 1-pixel same-origin frame (``st.iframe``; ``st.html``
drops scripts) that finds the page's heading by its anchor; it is emitted once per
new result, so reruns caused by other widgets leave the reader where they are.
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
    # scrolled again for 3 s while pictures above it load and push it down; any wheel,
    # touch or key from the reader stops it at once. st.html drops scripts, so a
    # 1-pixel same-origin frame runs it on its parent page.
    st.iframe(f"<script>(function(){{var w=window.parent,d=w.document,stop=false,n=0;"
              f"['wheel','touchmove','keydown'].forEach(function(t){{w.addEventListener(t,function(){{stop=true;}},"
              f"{{once:true,passive:true}});}});"
              f"var go=function(){{if(stop)return;var el=d.getElementById({target});"
              f"if(el){{el.scrollIntoView({{block:'start'}});d.body.dataset.scrolledTo={target};}}"
              f"if(++n<25)setTimeout(go,120);}};setTimeout(go,50);}})();</script>", height=1)
