"""Which protection guards uploaded models, said on the page, and the consent box
shown only where no kernel confinement is available."""

from __future__ import annotations

import streamlit as st

from xai_core.worker import sandbox


def trust_checkbox(key: str, what: str) -> bool:
    """Show the protection in force; where nothing confines the model worker, offer
    "I trust this file" for ``what`` (the code the file may carry). Returns the tick
    (always False under confinement, where code runs confined without consent)."""
    protection = sandbox.detect()
    if protection.confined:
        st.caption(f"🔒 {protection.describe()}")
        return False
    st.caption(f"⚠️ {protection.describe()}")
    return bool(st.checkbox(
        "I trust this file", key=key,
        help=f"{what} runs code from the file with this server's rights; tick only for files from "
             "authors you trust",
    ))
