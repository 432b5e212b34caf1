"""The landing page's one-click start: a zoo ImageNet model, a sample photo, Grad-CAM.

The landing page stores a request; the image page applies it to its widgets
before drawing them and runs the explanation once, as if Explain were pressed.
"""

from __future__ import annotations

import streamlit as st

from .samples import list_samples, quickstart_sample

REQUEST_KEY = "img_quickstart"
AUTORUN_KEY = "img_autorun"
QUICKSTART_METHOD = "grad_cam"


def request_quickstart() -> None:
    import model_zoo

    st.session_state[REQUEST_KEY] = {
        "img_framework": "torch",
        "img_source": "Model zoo",
        "img_zoo_model": model_zoo.DEFAULT_MODEL,
        "img_image_source": "Sample image",
        "img_sample": quickstart_sample(list_samples()).name,
        "img_method": QUICKSTART_METHOD,
        "img_compare": [],
        "img_target": -1,
    }


def apply_quickstart() -> bool:
    """Set the image page's widgets from a pending request. True when one was applied."""
    request = st.session_state.pop(REQUEST_KEY, None)
    if not request:
        return False
    for key, value in request.items():
        st.session_state[key] = value
    st.session_state[AUTORUN_KEY] = True
    return True


def take_autorun() -> bool:
    return bool(st.session_state.pop(AUTORUN_KEY, False))
