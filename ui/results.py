"""Render stored results: images, colorbars, predictions, timings and downloads."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from xai_core import render
from xai_core.types import Explanation, Prediction

from .reproduce import reproduce_record
from .runner import ResultItem, ResultSet


@st.cache_data(show_spinner=False, max_entries=64)
def _views(key: str, scale: tuple[float, float, bool] | None, _explanation: Explanation,
           _image: np.ndarray) -> dict[str, bytes]:
    """Overlay, heatmap and colorbar PNGs for one result (cached by result key + scale)."""
    e = _explanation
    if scale is None:
        drawn, cmap = render.Scale.of(e.attribution, e.signed), None
    else:
        drawn = render.Scale(*scale)
        cmap = render.DIVERGING if drawn.signed else render.SEQUENTIAL
    h, w = _image.shape[:2]
    cmap_used = cmap or render.default_cmap(e)
    return {
        "overlay": render.to_png(render.overlay(_image, e, scale=drawn, cmap=cmap)),
        "heatmap": render.to_png(render.heatmap(render.upsample_to(e, h, w), drawn, cmap_used)),
        "colorbar": render.to_png(render.colorbar(drawn, cmap_used, height=44)),
    }


def predictions_table(predictions: list[Prediction]) -> None:
    import plotly.express as px

    frame = pd.DataFrame(
        {"Class": [p.index for p in predictions], "Label": [p.label for p in predictions],
         "Probability": [p.probability for p in predictions]}
    )
    left, right = st.columns([1, 1])
    left.dataframe(
        frame, hide_index=True, width="stretch",
        column_config={"Probability": st.column_config.NumberColumn(format="%.4f")},
    )
    ordered = frame.iloc[::-1]
    fig = px.bar(ordered, x="Probability", y="Label", orientation="h", range_x=[0, 1], height=230)
    fig.update_layout(margin={"l": 0, "r": 10, "t": 10, "b": 0}, yaxis_title=None)
    right.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def _stem(name: str) -> str:
    return Path(name).stem or "image"


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array.astype(np.float32))
    return buf.getvalue()


def _record_json(results: ResultSet, item: ResultItem) -> str:
    req = results.request
    record = reproduce_record(
        model=req.display_name, model_source=req.source, image=results.image.name,
        image_sha256=results.image.key, image_size=results.image.size, explanation=item.explanation,
        spec=req.spec, framework=req.framework, arch=req.arch, labels=req.labels_name,
        trust_pickle=req.trust_pickle,
    )
    return json.dumps(record, indent=2)


def _stats(item: ResultItem) -> None:
    e = item.explanation
    c1, c2 = st.columns(2)
    c1.metric("Run time", f"{e.elapsed_s:.2f} s")
    c2.metric("Model evaluations", f"{e.model_evals:,}")
    details = [f"target {e.target}: {e.target_label}"]
    if e.layer:
        details.append(f"layer {e.layer}")
    extras = e.record()["extras"]
    details += [f"{k.replace('_', ' ')} {v:.4g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
                for k, v in extras.items() if not isinstance(v, bool)]
    st.caption(" · ".join(details))
    variance = e.extras.get("variance")
    if isinstance(variance, np.ndarray) and variance.ndim == 2:
        with st.expander("Variance of the estimate"):
            scale = render.Scale.of(variance, signed=False)
            st.image(render.to_png(render.heatmap(variance, scale, render.SEQUENTIAL)), width="stretch")
            st.caption(f"per pixel, summed over channels; max {float(variance.max()):.3g}. It is the variance of "
                       "the mean over samples (per-sample variance / samples); shap's return_variances reports "
                       "per-sample variance / sqrt(samples) per channel.")


def _downloads(results: ResultSet, item: ResultItem, overlay_png: bytes, stacked: bool = False) -> None:
    e = item.explanation
    base = f"{_stem(results.image.name)}__{e.method}"
    st.download_button("Download overlay PNG", overlay_png, f"{base}.png", "image/png",
                       key=f"dl_png_{e.method}", on_click="ignore", width="stretch")
    c1, c2 = (st.container(), st.container()) if stacked else st.columns(2)
    c1.download_button("Attribution .npy", _npy(e.attribution), f"{base}.npy", "application/octet-stream",
                       key=f"dl_npy_{e.method}", on_click="ignore", width="stretch",
                       help="signed 2-D map at model input resolution (float32)")
    c2.download_button("Reproduce .json", _record_json(results, item), f"{base}.json", "application/json",
                       key=f"dl_json_{e.method}", on_click="ignore", width="stretch",
                       help="every setting, and the python -m xai_core command that recomputes it")


def show_results(results: ResultSet) -> None:
    image = results.image.array
    h, w = image.shape[:2]
    scale = None
    if results.shared_scale and len(results.items) > 1:
        shared = render.Scale.shared([(i.explanation.attribution, i.explanation.signed) for i in results.items])
        scale = (shared.vmin, shared.vmax, shared.signed)
    views = {item.key: _views(item.key, scale, item.explanation, image) for item in results.items}
    first = results.items[0].explanation

    st.subheader("Results")
    st.caption(f"{results.request.display_name} on {results.image.name} ({w}x{h})")
    if len(results.items) == 1:
        item = results.items[0]
        v = views[item.key]
        c1, c2, c3 = st.columns(3)
        c1.image(image, caption="Original")
        c2.image(v["heatmap"], caption=f"Heatmap: {item.label}")
        c3.image(v["overlay"], caption=f"Overlay: {item.label}")
        c2.image(v["colorbar"], caption=render.colorbar_label(item.explanation))
        with c3:
            _downloads(results, item, v["overlay"])
        with c1:
            _stats(item)
    else:
        columns = st.columns(len(results.items) + 1)
        columns[0].image(image, caption="Original")
        for column, item in zip(columns[1:], results.items, strict=True):
            v = views[item.key]
            with column:
                st.image(v["overlay"], caption=f"Overlay: {item.label}")
                st.image(v["heatmap"], caption=f"Heatmap: {item.label}")
                st.image(v["colorbar"], caption=render.colorbar_label(item.explanation))
                _stats(item)
                _downloads(results, item, v["overlay"], stacked=len(results.items) > 2)
        if scale is not None:
            st.caption("All maps share one color scale.")
    if len(first.attributions) > 1:
        _per_input(results, image)
    st.markdown("**Top predictions**")
    predictions_table(first.predictions)


@st.cache_data(show_spinner=False, max_entries=64)
def _input_pngs(key: str, _explanation: Explanation, _image: np.ndarray) -> list[bytes]:
    """One picture per model input (an overlay for an image input, bars for a vector)."""
    e = _explanation
    return [render.to_png(render.draw_input(e, i, _image if kind == "image" else None))
            for i, kind in enumerate(e.input_kinds)]


def _per_input(results: ResultSet, image: np.ndarray) -> None:
    """A model with several inputs: one map or bar chart per input, per method."""
    st.markdown("**One attribution per model input**")
    for item in results.items:
        e = item.explanation
        pngs = _input_pngs(item.key, e, image)
        columns = st.columns(len(pngs))
        for i, (column, png) in enumerate(zip(columns, pngs, strict=True)):
            name = e.inputs[i]
            column.image(png, caption=f"{item.label}: input {name} ({e.input_kinds[i]})")
            column.download_button(
                f"Attribution .npy ({name})", _npy(e.attributions[i]),
                f"{_stem(results.image.name)}__{e.method}__{name}.npy", "application/octet-stream",
                key=f"dl_npy_{e.method}_{name}", on_click="ignore", width="stretch")
