"""Render stored results: images, colorbars, predictions, timings and downloads."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from xai_core import render
from xai_core.service.quality import quality_notes
from xai_core.types import Explanation, Prediction

from .reproduce import reproduce_record
from .runner import ResultItem, ResultSet

THEMES = {  # colour bar text and background per Streamlit theme
    "light": ("#31333f", "#ffffff"),
    "dark": ("#fafafa", "#0e1117"),
}


def _theme() -> str:
    try:
        kind = st.context.theme.type
    except AttributeError:  # an older Streamlit, or no browser (AppTest)
        kind = None
    return kind if kind in THEMES else "light"


@st.cache_data(show_spinner=False, max_entries=64)
def _views(key: str, scale: tuple[float, float, bool], display: render.Display, theme: str,
           _explanation: Explanation, _image: np.ndarray) -> dict[str, bytes]:
    """Overlay, heatmap and colorbar PNGs for one result as the page shows it (cached
    by result key, scale, display options and theme), and the overlay the command
    line writes (the download: display options never change a saved file)."""
    drawn_e = display.apply(_explanation)
    drawn = render.Scale(*scale)
    cmap = render.default_cmap(drawn_e)
    h, w = _image.shape[:2]
    text, background = THEMES[theme]
    shown = render.overlay(_image, drawn_e, scale=drawn, cmap=cmap)
    return {
        "overlay": render.to_png(render.enlarge_small(shown)),
        "heatmap": render.to_png(render.enlarge_small(render.heatmap(render.upsample_to(drawn_e, h, w), drawn, cmap))),
        "colorbar": render.to_png(render.colorbar(drawn, cmap, height=46, text_color=text, background=background)),
        "download": render.to_png(render.overlay(_image, _explanation)),
    }


def display_options(results: ResultSet) -> render.Display:
    """Smoothing, clipping and absolute value for pixel-level maps (shown only when one is)."""
    pixel = [i.label for i in results.items if render.pixel_level(i.explanation)]
    if not pixel:
        return render.Display()
    with st.expander("Display options for pixel-level maps", expanded=False):
        st.caption(f"For {', '.join(pixel)}: these change the pictures only; the .npy, the reproduce record "
                   "and the downloaded overlay keep the computed numbers.")
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        smooth = c1.slider("Smoothing (pixels)", 0.0, 8.0, 0.0, 0.5, key="img_display_smooth",
                           help="Gaussian blur of the map before drawing (sigma, in model-input pixels)")
        clip = c2.slider("Colours saturate at percentile", 90.0, 100.0, 99.5, 0.5, key="img_display_clip",
                         help="values above this percentile of |attribution| get the strongest colour")
        absolute = c3.checkbox("Absolute value", key="img_display_abs", help="magnitude only, sign ignored")
    return render.Display(smooth=float(smooth), clip=float(clip), absolute=bool(absolute))


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
    fig.update_yaxes(type="category")  # class names such as "0".."9" are names, not positions on a number line
    right.plotly_chart(fig, width="stretch", config={"displayModeBar": False})


def _stem(name: str) -> str:
    return Path(name).stem or "image"


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array.astype(np.float32))
    return buf.getvalue()


def _record_json(results: ResultSet, item: ResultItem) -> str:
    req, image = results.request, results.image
    uploaded = ([req.display_name] if req.source == "file" else []) + ([req.labels_name] if req.labels_name else [])
    uploaded += [req.sidecar_name] if req.sidecar_name else []
    uploaded += [image.name] if image.uploaded else []
    fed = results.fed.inputs if results.fed is not None else ()
    uploaded += [f.command_file for f in fed if f.uploaded and f.command_file]
    inputs = tuple({"name": f.name, "kind": f.kind, "file": f.command_file, "source": f.source, "sha256": f.sha256,
                    **({"values": [float(v) for v in f.item]} if f.kind == "vector" else {})} for f in fed)
    record = reproduce_record(
        model=req.display_name, model_source=req.source, image=image.command_path or image.name,
        image_sha256=image.file_sha256, image_size=image.size, explanation=item.explanation,
        spec=req.spec, framework=req.framework, arch=req.arch, labels=req.labels_name,
        trust_pickle=req.trust_pickle, uploaded=tuple(dict.fromkeys(uploaded)), inputs=inputs,
    )
    return json.dumps(record, indent=2)


def _stats(item: ResultItem) -> None:
    e = item.explanation
    # one above the other: side by side, a narrow column (compare view, 800 px) cuts the numbers
    st.metric("Run time", f"{e.elapsed_s:.2f} s")
    st.metric("Model evaluations", f"{e.model_evals:,}")
    st.metric("Engine", e.engine or "?", help=e.engine_note or None)
    details = [f"target {e.target}: {e.target_label}"]
    if e.layer:
        details.append(f"layer {e.layer}")
    if e.neuron is not None:
        details.append(f"neuron {e.neuron}")
    extras = e.record()["extras"]
    details += [f"{k.replace('_', ' ')} {v:.4g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
                for k, v in extras.items() if not isinstance(v, bool)]
    st.caption(" · ".join(details))
    for note in quality_notes(e.method, e.extras):
        st.warning(note, icon=":material/warning:")
    variance = e.extras.get("variance")
    if isinstance(variance, np.ndarray) and variance.ndim == 2:
        with st.expander("Variance of the estimate"):
            scale = render.Scale.of(variance, signed=False)
            st.image(render.to_png(render.heatmap(variance, scale, render.SEQUENTIAL)), width="stretch")
            st.caption(f"per pixel, summed over channels; max {float(variance.max()):.3g}. It is the variance of "
                       "the mean over samples (per-sample variance / samples); shap's return_variances reports "
                       "per-sample variance / sqrt(samples) per channel.")


def _downloads(results: ResultSet, item: ResultItem, overlay_png: bytes) -> None:
    e = item.explanation
    base = f"{_stem(results.image.name)}__{e.method}" + (f"__c{e.target}" if results.grid else "")
    wid = f"{e.method}_c{e.target}" if results.grid else e.method
    if not (at_layer(e) and e.layer_attribution.ndim == 1):  # a dense layer's units have no map
        st.download_button("Download overlay PNG", overlay_png, f"{base}.png", "image/png",
                           key=f"dl_png_{wid}", on_click="ignore", width="stretch",
                           help="at the photo's resolution, drawn as the command line draws it")
        st.download_button("Attribution .npy", _npy(e.attribution), f"{base}.npy", "application/octet-stream",
                           key=f"dl_npy_{wid}", on_click="ignore", width="stretch",
                           help="signed 2-D map at model input resolution (float32)")
    st.download_button("Reproduce .json", _record_json(results, item), f"{base}.json", "application/json",
                       key=f"dl_json_{wid}", on_click="ignore", width="stretch",
                       help="every setting, and the python -m xai_core command that recomputes it")
    if e.layer_attribution is not None:
        st.download_button("Layer attribution .npy", _npy(e.layer_attribution), f"{base}__layer.npy",
                           "application/octet-stream", key=f"dl_layer_{wid}", on_click="ignore",
                           width="stretch", help="one value per unit of the layer: (units,) or (C, h, w), float32")


def at_layer(e: Explanation) -> bool:
    """Whether the result attributes to a layer's units only (a path method given a
    layer), so that its input map is the layer's upsampled (conv) or nothing (dense)."""
    return e.layer_attribution is not None and "layer_where" in e.extras


def _layer_name(e: Explanation) -> str:
    where = e.extras.get("layer_where")
    layer = f"the {where} of layer {e.layer}" if where == "input" else f"layer {e.layer}"
    return f"neuron {e.neuron} of {layer}" if e.neuron is not None else layer


def _result_block(results: ResultSet, item: ResultItem, v: dict[str, bytes]) -> None:
    """One result: overlay and heatmap side by side, colour bar, numbers, downloads.
    A result at a dense layer has no map: its units are drawn as bars instead."""
    e = item.explanation
    dense_only = at_layer(e) and e.layer_attribution.ndim == 1
    if not dense_only:
        where = f" ({_layer_name(e)}, channels summed, upsampled)" if at_layer(e) else ""
        c1, c2 = st.columns(2)
        c1.image(v["overlay"], caption=f"Overlay: {item.label}{where}", width="stretch")
        c2.image(v["heatmap"], caption=f"Heatmap: {item.label}{where}", width="stretch")
        st.image(v["colorbar"], caption=render.colorbar_label(e), width="stretch")
    _stats(item)
    _downloads(results, item, v["download"])
    if dense_only or not at_layer(e):  # a conv layer's map is the overlay above already
        layer_panel(item, results.image.array)


def unit_bars(values: np.ndarray, what: str, key: str, measure: str = "conductance") -> None:
    """One bar per unit of a dense layer (red: for the class, blue: against)."""
    import plotly.express as px

    values = np.asarray(values, np.float64).reshape(-1)
    frame = pd.DataFrame({"Unit": np.arange(len(values)), "Attribution": values})
    frame["Sign"] = np.where(values >= 0, "for", "against")
    fig = px.bar(frame, x="Unit", y="Attribution", color="Sign", height=260,
                 color_discrete_map={"for": "#c0392b", "against": "#2166ac"})
    fig.update_layout(margin={"l": 0, "r": 10, "t": 10, "b": 0}, showlegend=False)
    st.markdown(f"**Units of {what}** ({len(values)}): {measure} per unit")
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key=key)


def layer_panel(item: ResultItem, image: np.ndarray) -> None:
    """A layer method's units: bars for a dense layer, the upsampled channel-summed
    map over the photo for a convolutional layer."""
    e = item.explanation
    layer = e.layer_attribution
    if layer is None:
        return
    what = _layer_name(e)
    if layer.ndim == 1:
        measure = "conductance" if "conductance" in e.method else f"{e.method.replace('_', ' ')}"
        unit_bars(layer, what, f"layer_bars_{e.method}", measure)
        return
    view = render.layer_view(e)
    if view is not None:
        st.image(render.to_png(render.overlay(image, view)),
                 caption=f"{what}: {layer.shape[0]} channels of {layer.shape[1]}x{layer.shape[2]}, summed, upsampled")


@st.cache_data(show_spinner=False, max_entries=16)
def _grid_png(keys: tuple[str, ...], name: str, _explanations: list[Explanation], _image: np.ndarray) -> bytes:
    return render.to_png(render.class_grid([(_image, _explanations)], names=[name]))


def show_grid(results: ResultSet) -> None:
    """Several classes per method: one image x class grid per method (one colour
    scale per grid: red pushes the class up, blue down), then the per-class downloads."""
    image = results.image.array
    st.subheader("Results")
    st.caption(f"{results.request.display_name} on {results.image.name}: one column per class")
    methods = list(dict.fromkeys(item.explanation.method for item in results.items))
    for method in methods:
        items = [i for i in results.items if i.explanation.method == method]
        if all(at_layer(i.explanation) and i.explanation.layer_attribution.ndim == 1 for i in items):
            for item in items:  # a dense layer's units: bars per class, no maps to grid
                e = item.explanation
                unit_bars(e.layer_attribution, f"{_layer_name(e)} for {e.target_label}",
                          f"layer_bars_{e.method}_c{e.target}", e.method.replace("_", " "))
                _downloads(results, item, b"")
            continue
        png = _grid_png(tuple(i.key for i in items), Path(results.image.name).name, [i.explanation for i in items],
                        image)
        st.image(png, caption=f"{items[0].label.split(':')[0]}: image x class grid", width="stretch")
        st.download_button(f"Download overlay grid PNG ({method})", png, f"{_stem(results.image.name)}__{method}__grid.png",
                           "image/png", key=f"dl_grid_{method}", on_click="ignore")
        with st.expander("Per class: attributions and reproduce commands"):
            for item in items:
                st.markdown(f"**{item.label}**")
                _downloads(results, item, render.to_png(render.overlay(image, item.explanation)))
    st.markdown("**Top predictions**")
    predictions_table(results.items[0].explanation.predictions)


def show_results(results: ResultSet) -> None:
    if results.fed is not None:
        show_several_inputs(results)
        return
    if results.grid:
        show_grid(results)
        return
    image = results.image.array
    h, w = image.shape[:2]
    display = display_options(results)
    explanations = [display.apply(i.explanation) for i in results.items]
    scales = render.scales_for(explanations, results.shared_scale and len(results.items) > 1,
                               [display.percentile_for(i.explanation) for i in results.items])
    theme = _theme()
    views = {item.key: _views(item.key, (s.vmin, s.vmax, s.signed), display, theme, item.explanation, image)
             for item, s in zip(results.items, scales, strict=True)}
    first = results.items[0].explanation

    st.subheader("Results")
    st.caption(f"{results.request.display_name} on {results.image.name} ({w}x{h})")
    original = render.to_png(render.enlarge_small(image))
    if len(results.items) == 1:
        item = results.items[0]
        c1, c2 = st.columns([1, 2], gap="medium")
        c1.image(original, caption="Original", width="stretch")
        with c2:
            _result_block(results, item, views[item.key])
    else:
        c1, _ = st.columns([1, 2])
        c1.image(original, caption="Original", width="stretch")
        for start in range(0, len(results.items), 2):  # two results a row: nothing squeezed at 800 px
            row = st.columns(2, gap="medium")
            for column, item in zip(row, results.items[start:start + 2], strict=False):
                with column, st.container(border=True):
                    _result_block(results, item, views[item.key])
        if results.shared_scale:
            st.caption(shared_scale_caption(results.items))
    st.markdown("**Top predictions**")
    predictions_table(first.predictions)


def shared_scale_caption(items: tuple[ResultItem, ...]) -> str:
    """Which maps share a colour scale (same units) and which keep their own."""
    groups: dict[tuple, list[str]] = {}
    for item in items:
        groups.setdefault(render.unit_of(item.explanation), []).append(item.label)
    shared = [" and ".join(labels) for labels in groups.values() if len(labels) > 1]
    alone = [labels[0] for labels in groups.values() if len(labels) == 1]
    parts = [f"{names} share one colour scale (same units)" for names in shared]
    if alone:
        parts.append(f"{', '.join(alone)} keep their own scale (other units), so that every map stays visible")
    return "; ".join(parts) + "."


@st.cache_data(show_spinner=False, max_entries=64)
def _input_pngs(key: str, _explanation: Explanation, _pictures: tuple, _names: tuple) -> list[bytes]:
    """One picture per model input, by the input's kind: an overlay on the picture
    that fed an image input, bars named by the features for a vector input."""
    e = _explanation
    return [render.to_png(render.draw_input(e, i, _pictures[i] if kind == "image" else None,
                                            list(_names[i]) if _names[i] else None))
            for i, kind in enumerate(e.input_kinds)]


def show_several_inputs(results: ResultSet) -> None:
    """A model with several inputs: per result (method, or class), one map or bar
    chart per input, side by side, each with its own downloads."""
    fed = results.fed.inputs
    st.subheader("Results")
    st.caption(f"{results.request.display_name} on " + "; ".join(f"{f.name}: {f.source}" for f in fed)
               + ". One attribution per model input, each on its own colour scale.")
    pictures = tuple(f.item if f.kind == "image" else None for f in fed)
    names = tuple(f.feature_names for f in fed)
    for item in results.items:
        e = item.explanation
        with st.container(border=True):
            st.markdown(f"**{item.label}**")
            pngs = _input_pngs(item.key, e, pictures, names)
            wid = f"{e.method}_c{e.target}" if results.grid else e.method
            base = f"{_stem(results.image.name)}__{e.method}" + (f"__c{e.target}" if results.grid else "")
            for column, f, png, values in zip(st.columns(len(pngs)), fed, pngs, e.attributions, strict=True):
                column.image(png, caption=f"{item.label}: input {f.name} ({f.kind}, {f.source})", width="stretch")
                column.download_button(f"{f.name} .png", png, f"{base}__{f.name}.png", "image/png",
                                       key=f"dl_png_{wid}_{f.name}", on_click="ignore", width="stretch")
                column.download_button(f"{f.name} .npy", _npy(values), f"{base}__{f.name}.npy",
                                       "application/octet-stream", key=f"dl_npy_{wid}_{f.name}", on_click="ignore",
                                       width="stretch", help="this input's attribution, as the command line "
                                       "writes it: H x W for an image input, one value per feature for a vector")
                if f.kind == "vector" and f.source == "typed values":
                    column.download_button(f"Row of {f.name} .csv", f.csv_row(), f.command_file, "text/csv",
                                           key=f"dl_row_{wid}_{f.name}", on_click="ignore", width="stretch",
                                           help="the typed values as the file the reproduce command names")
            _stats(item)
            st.download_button("Reproduce .json", _record_json(results, item), f"{base}.json", "application/json",
                               key=f"dl_json_{wid}", on_click="ignore",
                               help="every setting, and the python -m xai_core command (with --input NAME=FILE "
                                    "for the inputs the image does not feed) that recomputes it")
    st.markdown("**Top predictions**")
    predictions_table(results.items[0].explanation.predictions)
