"""The explain half of the labelled-set page: the method form, the run (with a
progress bar), the item x class grid, the summaries and the downloads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from xai_core import render
from xai_core.render.files import npz_bytes, safe_csv
from xai_core.render.sets import class_mean_maps, set_grid
from xai_core.sets.data import LabelledSet
from xai_core.sets.evaluate import Evaluation
from xai_core.sets.explain import ExplainRequest, SetSummary, explain_selection
from xai_core.sets.model import ItemExplanation, SetModel
from xai_core.types import XaiError

from .focus import results_heading
from .sets import AGAINST, make_engine, show_error

RESULT_KEY = "set_result"
SCALES = {"shared": "one for every map", "row": "one per row (item)", "cell": "one per map"}
GRID_ROWS = 20


@dataclass
class SetResult:
    run_key: str
    method: str
    items: list[ItemExplanation]
    summary: SetSummary
    errors: dict[int, str]


def _explainers(model: SetModel) -> dict[str, Any]:
    from xai_core.explainers import methods_for_kind

    if model.kind == "rows":
        from xai_core.service.rows import check_tabular_method as check

        found = {e.name: e for e in methods_for_kind("vector")}
    else:
        from xai_core.service import check_method as check

        found = {e.name: e for e in methods_for_kind("image")}
    usable = {}
    for name, explainer in found.items():
        try:
            check(model.model, name)
        except XaiError:
            continue
        usable[name] = explainer
    return usable


def explain_form(model: SetModel) -> ExplainRequest | None:
    from ui.method_form import params_form

    usable = _explainers(model)
    if not usable:
        st.warning(f"No explainer supports {model.name}.")
        return None
    names = list(usable)
    default = "shap_gradient" if "shap_gradient" in names else ("integrated_gradients" if "integrated_gradients" in
                                                                 names else names[0])
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox("Explainer", names, index=names.index(default), format_func=lambda n: usable[n].label,
                          key=f"set_method_{model.kind}")
    against = c2.radio("Explain against", list(AGAINST), format_func=AGAINST.get, key="set_against")
    seed = int(c3.number_input("Seed", 0, 2**31 - 1, 0, key="set_seed"))
    with st.expander("Parameters"):
        params = params_form(usable[method], prefix="set_param", kinds=model.model.input_kinds)
    return ExplainRequest(method, params, seed, against)


def run_explain(model: SetModel, dataset: LabelledSet, ev: Evaluation, chosen: list[int],
                request: ExplainRequest, run_key: str) -> None:
    """Explain the chosen items and keep the result in the session."""
    if dataset.kind == "rows":
        ok = [i for i in range(len(dataset)) if i not in ev.errors]
        background = np.stack([model.prepare(dataset.read(i)) for i in ok])
        request = ExplainRequest(request.method, request.params, request.seed, request.classes, background,
                                 tuple(dataset.feature_names))
    bar = st.progress(0.0, text=f"Explaining {len(chosen)} item(s)…")
    errors: dict[int, str] = {}
    summary = SetSummary(model.class_names)
    items = []
    try:
        with make_engine(model, dataset) as engine:
            for item in explain_selection(model, dataset, chosen, request, engine=engine, errors=errors,
                                          progress=lambda f, t: bar.progress(min(1.0, f), text=t)):
                summary.add(item)
                items.append(item)
    except Exception as exc:  # noqa: BLE001 - the page keeps working
        bar.empty()
        show_error(exc)
        return
    bar.empty()
    st.session_state[RESULT_KEY] = SetResult(run_key, request.method, items, summary, errors)


@st.cache_data(show_spinner="Drawing the grid…", max_entries=32)
def _grid_png(run_key: str, start: int, scale: str, _page: list[ItemExplanation], _names: list[str],
              _feature_names: list[str], method: str) -> bytes:
    """One page of the grid as PNG, drawn once per result, page and colour scale."""
    return render.to_png(set_grid(_page, _names, feature_names=_feature_names, method=method, scale=scale))


def show_result(model: SetModel, dataset: LabelledSet, ev: Evaluation, run_key: str) -> None:
    result: SetResult | None = st.session_state.get(RESULT_KEY)
    if result is None or not result.run_key.startswith(run_key.split("|")[0]):
        return
    if result.run_key != run_key:
        st.caption("The settings changed since this result; press Explain selection to update it.")
    names = model.class_names
    for i, message in result.errors.items():
        st.warning(f"item {i}: {message}")
    if not result.items:
        return
    results_heading(f"{result.method}: {len(result.items)} item(s) x class", "set-result", id(result))
    scale = "shared"
    if dataset.kind == "image":
        scale = st.radio("Colour scale", list(SCALES), format_func=SCALES.get, horizontal=True, key="set_grid_scale",
                         help="each scale's full colour is the 99.9th percentile of |value| (as shap's image_plot), "
                              "so one extreme pixel does not wash the other maps out")
    grids = [_grid_png(result.run_key, start, scale, result.items[start:start + GRID_ROWS], names,
                       dataset.feature_names, result.method)
             for start in range(0, len(result.items), GRID_ROWS)]
    for png in grids:  # at its own size (labels 12.5 px), narrower only on a narrower page
        st.image(png, width="content")
    st.subheader("Summary over the selection")
    if dataset.kind == "rows":
        table = result.summary.per_feature(dataset.feature_names)
        st.markdown("Mean |attribution| per feature and explained class")
        st.bar_chart(table.head(15))
    else:
        st.image(render.to_png(class_mean_maps(result.summary, names)), width="content")
        st.markdown("Mean |attribution| per explained class: " + ", ".join(
            f"{k} {v:.3g}" for k, v in result.summary.per_class().items()))
    _downloads(result, dataset, ev, grids)


def _downloads(result: SetResult, dataset: LabelledSet, ev: Evaluation, grids: list[bytes]) -> None:
    c = st.columns(3)
    c[0].download_button("Download grid (PNG)", grids[0], file_name=f"grid__{result.method}.png", mime="image/png",
                         key="set_dl_grid", help="the first 20 items; the command line writes every page")
    c[1].download_button("Download table (CSV)", safe_csv(ev.table()), file_name="evaluation.csv", mime="text/csv",
                         key="set_dl_table")
    arrays = {
        "items": np.array([it.index for it in result.items], np.int64),
        "names": np.array([it.name for it in result.items]),
        "labels": np.array([it.label for it in result.items], np.int64),
        "predictions": np.array([it.prediction for it in result.items], np.int64),
        "probabilities": np.stack([it.probabilities for it in result.items]).astype(np.float32),
        "classes": np.array([it.classes for it in result.items], np.int64),
        "attributions": np.stack([it.attributions for it in result.items]).astype(np.float32),
        "class_names": np.array(ev.class_names),
    }
    if dataset.feature_names:
        arrays["feature_names"] = np.array(dataset.feature_names)
    c[2].download_button("Download attributions (.npz)", npz_bytes(**arrays),
                         file_name=f"attributions__{result.method}.npz", mime="application/octet-stream",
                         key="set_dl_npz")
