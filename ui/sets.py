"""Streamlit pieces of the labelled-set page: pick the model and the set, evaluate
(cached per model and set), the confusion matrix with clickable cells, the
selection, the gallery, the explanation grid and the downloads.

The engine comes from the server's environment: ``XAI_ENGINE=ray`` (default
``local``), ``XAI_RAY_ADDRESS`` (``HOST:PORT`` of an existing cluster's head, or
``auto``; default: a local Ray instance) and ``XAI_RAY_WORKERS`` (default 2). See
docs/labelled-sets.md.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from xai_core.sets.data import LabelledSet, open_set
from xai_core.sets.evaluate import Evaluation, evaluate
from xai_core.sets.model import ModelRef, SetModel
from xai_core.types import XaiError

from .messages import show_error  # noqa: F401 - the set page's error line
from .tables import whole_height

ROOT = Path(__file__).resolve().parents[1]
DIGITS_SET = ROOT / "sample_data" / "digits_test.npz"
MAX_EXPLAIN = 200
SELECT_LABELS = {
    "misclassified": "Worst misclassified",
    "cell": "Confusion-matrix cell",
    "class": "One true class",
    "random": "Random sample",
    "all": "All items",
}
AGAINST = {"all": "every class", "predicted": "the predicted class", "true": "the true class"}


def engine_settings() -> tuple[str, str | None, int]:
    engine = os.environ.get("XAI_ENGINE", "local").strip().lower() or "local"
    workers = int(os.environ.get("XAI_RAY_WORKERS", "2") or 2)
    return engine, os.environ.get("XAI_RAY_ADDRESS") or None, max(1, workers)


def shipped_set(ref: ModelRef) -> Path | None:
    """The set that ships for a zoo model: held-out digits, the breast-cancer test rows."""
    from model_zoo.tabular import TABULAR_ZOO

    if ref.ref in ("digits_cnn", "keras_digits_cnn"):
        return DIGITS_SET
    if ref.ref in TABULAR_ZOO:
        return TABULAR_ZOO[ref.ref].csv_path
    return None


@dataclass(frozen=True)
class SetSource:
    key: str
    name: str
    path: str | None = None
    data: bytes | None = None
    label_column: str | None = None
    image_shape: str | None = None  # a CSV of pixel columns: "28x28" (empty: inferred from a square count)


def choose_set(ref: ModelRef) -> SetSource | None:
    shipped = shipped_set(ref)
    choices = ([f"Shipped: {shipped.name}"] if shipped else []) + ["Upload a set"]
    pick = st.radio("Labelled set", choices, horizontal=True, key=f"set_source_{shipped.name if shipped else ''}")
    label_column = None
    if pick.startswith("Shipped") and shipped is not None:
        st.caption("held-out digits the digits models never saw (scikit-learn, seed 0)" if shipped == DIGITS_SET
                   else "the breast-cancer test rows the tabular models never saw")
        return SetSource(f"file:{shipped}", shipped.name, path=str(shipped))
    upload = st.file_uploader(
        "A .zip of class folders (CLASS/IMAGE.png), a CSV table with a label column (for images: a CSV of "
        "pixel columns), or an .npz with x and y",
        type=["zip", "csv", "npz"], key="set_upload")
    shape = None
    if ref.kind == "rows":
        label_column = st.text_input("Label column (default: label/class/target/y)", key="set_label_column") or None
    else:
        shape = st.text_input("Image shape of a CSV of pixel columns (HxW; empty: inferred, 784 -> 28x28)",
                              key="set_image_shape", help="a CSV with a label column and one column per pixel, "
                              "one image a row, as the MNIST tutorials keep their sets").strip() or None
    if upload is None:
        st.info("Upload a labelled set" + (", or use the shipped one." if shipped else "."))
        return None
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:24]
    return SetSource(f"upload:{digest}:{label_column}:{shape}", upload.name, data=data, label_column=label_column,
                     image_shape=shape)


@st.cache_resource(show_spinner="Reading the set…", max_entries=8)
def _open(source_key: str, _source: SetSource, class_names: tuple[str, ...], kind: str) -> LabelledSet:
    src = _source.path if _source.path else _source.data
    from xai_core.cli.display_args import parse_image_shape

    return open_set(src, list(class_names), kind=kind, name=_source.name, label_column=_source.label_column,
                    image_shape=parse_image_shape(_source.image_shape))


def load_set(source: SetSource, model: SetModel) -> LabelledSet:
    dataset = _open(source.key, source, tuple(model.class_names), model.kind)
    model.check_set(dataset)
    return dataset


def make_engine(model: SetModel, dataset: LabelledSet):
    from xai_core.sets.runners import open_engine

    engine, address, workers = engine_settings()
    return open_engine(engine, model, dataset, workers=workers, address=address, say=st.warning)


RAY_TRUST_NOTE = ("Ray runs this project's code on every node of the cluster with the rights of whoever started it: "
                  "use a cluster you control. An uploaded model file still opens in the confined worker on each "
                  "node, as it does here; a set read by path must be at the same path on every node.")


def evaluation_for(ref: ModelRef, model: SetModel, source: SetSource, dataset: LabelledSet) -> Evaluation:
    """The set's evaluation, computed once per model and set (kept in the session)."""
    key = f"set_eval::{hash(ref)}::{source.key}"
    if key not in st.session_state:
        bar = st.progress(0.0, text="Evaluating…")
        with make_engine(model, dataset) as engine:
            st.session_state[key] = evaluate(model, dataset, engine=engine,
                                             progress=lambda f, t: bar.progress(min(1.0, f), text=t))
        bar.empty()
    return st.session_state[key]


def show_metrics(ev: Evaluation) -> tuple[int, int] | None:
    """Metrics, the clickable confusion matrix and per-class table; returns the clicked cell."""
    import pandas as pd

    m = ev.metrics()
    c = st.columns(4)
    c[0].metric("Accuracy", f"{m['accuracy']:.3f}" if m["accuracy"] is not None else "n/a")
    c[1].metric("Items evaluated", m["evaluated"])
    c[2].metric("Misclassified", m["misclassified"])
    c[3].metric("Failed to read", m["failed"])
    if ev.errors:
        with st.expander(f"{len(ev.errors)} item(s) skipped"):
            st.dataframe(pd.DataFrame({"item": list(ev.errors), "problem": list(ev.errors.values())}),
                         hide_index=True, width="stretch")
    names = ev.class_names
    if len(names) > 40:
        st.caption("The confusion matrix is shown for models with up to 40 classes; see the table download.")
        return None
    # the matrix is shown whole: as tall as its rows, and across the page when more
    # than 6 classes would squeeze its columns (the per-class table goes under it)
    wide = len(names) > 6
    left, right = (st.container(), st.container()) if wide else st.columns([3, 2], gap="large")
    with left:
        st.markdown("**Confusion matrix** (rows: true class, columns: predicted). Click a cell to see its items.")
        frame = pd.DataFrame(ev.confusion(), index=[f"true {n}" for n in names], columns=[f"pred {n}" for n in names])
        event = st.dataframe(frame.style.background_gradient(cmap="Blues", axis=None), key="set_confusion",
                             on_select="rerun", selection_mode="single-cell", width="stretch",
                             height=whole_height(len(names)))
    with right:
        st.markdown("**Per class**")
        per_class = pd.DataFrame(m["per_class"]).drop(columns=["class"])
        st.dataframe(per_class, hide_index=True, width="stretch", height=whole_height(len(per_class)))
    cells = event.selection.get("cells", []) if event is not None else []
    if cells:
        row, col = cells[0]
        cols = list(frame.columns)
        if col in cols:
            return int(row), cols.index(col)
    return None


def choose_selection(ev: Evaluation, cell: tuple[int, int] | None) -> tuple[str, list[int]]:
    names = ev.class_names
    options = list(SELECT_LABELS)
    if cell != st.session_state.get("set_last_cell"):  # a new click on the matrix selects that cell
        st.session_state["set_last_cell"] = cell
        if cell is not None:
            st.session_state["set_select"] = "cell"
    how = st.radio("Explain which items", options, format_func=SELECT_LABELS.get, horizontal=True,
                   key="set_select")
    c1, c2 = st.columns(2)
    top = int(c1.number_input("How many (at most)", 1, MAX_EXPLAIN, 10, key="set_top"))
    kwargs: dict = {}
    if how == "class":
        kwargs["cls"] = names.index(c2.selectbox("True class", names, key="set_class"))
    if how == "cell":
        if cell is None:
            st.info("Click a cell of the confusion matrix above.")
            return how, []
        kwargs["cell"] = cell
        c2.markdown(f"Cell: true **{names[cell[0]]}**, predicted **{names[cell[1]]}**")
    if how == "random":
        kwargs["seed"] = int(c2.number_input("Sample seed", 0, 2**31 - 1, 0, key="set_sample_seed"))
    return how, ev.select(how, top=top, **kwargs)


def show_gallery(ev: Evaluation, dataset: LabelledSet, chosen: list[int], limit: int = 30) -> None:
    names = ev.class_names
    pred = ev.predictions
    if not chosen:
        st.info("No items in this selection.")
        return
    if dataset.kind == "rows":
        st.dataframe(ev.table().iloc[chosen], hide_index=True, width="stretch")
        return
    shown = chosen[:limit]
    cols = st.columns(min(10, len(shown)))
    for n, i in enumerate(shown):
        with cols[n % len(cols)]:
            try:
                image = dataset.read(i)
            except XaiError as exc:
                st.caption(str(exc))
                continue
            st.image(_thumbnail(image), width="stretch",
                     caption=f"#{i} true {names[ev.labels[i]]} → {names[pred[i]]} "
                             f"({ev.probabilities[i, pred[i]]:.2f})")
    if len(chosen) > limit:
        st.caption(f"showing {limit} of {len(chosen)} items")


def _thumbnail(image: np.ndarray, size: int = 96) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) >= size:
        return image
    scale = max(1, size // max(h, w))
    return np.asarray(Image.fromarray(image).resize((w * scale, h * scale), Image.NEAREST))
