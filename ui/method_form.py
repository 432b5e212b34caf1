"""Explainer choice and settings, generated from the explainers' typed parameters.

Every widget of a method's form comes from ``explainer.param_infos()``: ranges
become widget limits, choices become select boxes, help text becomes tooltips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from xai_core.adapters.base import ModelAdapter
from xai_core.explainers import Explainer, ParamInfo, available_for
from xai_core.types import XaiError

from .layer_form import LAYER_PARAMS, layer_settings
from .messages import page_text

PREDICTED = -1
DEFAULT_METHOD = "grad_cam"  # preselected where the model offers it


@dataclass(frozen=True)
class MethodRun:
    explainer: Explainer
    params: dict[str, Any]
    layer: str | None = None

    @property
    def method(self) -> str:
        return self.explainer.name


@dataclass(frozen=True)
class ExplainPlan:
    runs: tuple[MethodRun, ...]
    target: int | None  # None: the predicted class
    seed: int
    shared_scale: bool
    classes: str | None = None  # several classes in one run ("top3", "top5", "all"): the image x class grid
    output: str | None = None  # for a softmax model: explain the "logit" (softmax stripped) or the probability


def param_widget(info: ParamInfo, key: str) -> Any:
    """One widget for one typed parameter."""
    label = info.name.replace("_", " ").capitalize()
    helptext = info.help or None
    if info.file_types:
        return file_param_widget(info, label, key)
    if info.type is bool:
        return st.checkbox(label, value=info.default, help=helptext, key=key)
    if info.choices:
        options = list(info.choices)
        return st.selectbox(label, options, index=options.index(info.default), help=helptext, key=key)
    if info.type is int:
        return int(st.number_input(
            label, min_value=int(info.low) if info.low is not None else None,
            max_value=int(info.high) if info.high is not None else None,
            value=int(info.default), step=int(info.step or 1), help=helptext, key=key,
        ))
    if info.type is float:
        step = float(info.step) if info.step else None
        if info.low is not None and info.high is not None:
            return float(st.slider(label, float(info.low), float(info.high), float(info.default),
                                   step=step, help=helptext, key=key))
        return float(st.number_input(
            label, min_value=float(info.low) if info.low is not None else None,
            max_value=float(info.high) if info.high is not None else None,
            value=float(info.default), step=step, help=helptext, key=key,
        ))
    return st.text_input(label, value=str(info.default), help=helptext, key=key)


def file_param_widget(info: ParamInfo, label: str, key: str) -> str:
    """A path parameter (a background set) as an upload box: the file is kept in the
    background store, which model workers can read, and its path is the value; no
    upload -> the parameter's default (the method's own background)."""
    from xai_core.inputs.uploads import background_dir

    from .cache import stored_upload
    from .limits import BACKGROUND_MB

    kinds = ", ".join(info.file_types)
    upload = st.file_uploader(f"{label} ({kinds})", type=[t.lstrip(".") for t in info.file_types], key=key,
                              help=info.help or None, max_upload_size=BACKGROUND_MB)
    if upload is None:
        return str(info.default)
    try:
        path = stored_upload(upload, root=background_dir())
    except XaiError as exc:
        st.error(page_text(exc))
        return str(info.default)
    st.caption(f"Background from `{upload.name}` ({upload.size / 2**20:.1f} MB).")
    return str(path)


def params_form(explainer: Explainer, prefix: str = "img_param", kinds: list[str] | None = None,
                skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """One widget per typed parameter of ``explainer`` (image or tabular), keyed
    ``<prefix>_<method>_<parameter>``; with the model's input ``kinds``, parameters
    that act on no input it has are left out (they keep their defaults); the
    parameters in ``skip`` are asked elsewhere."""
    return {info.name: param_widget(info, f"{prefix}_{explainer.name}_{info.name}")
            for info in explainer.param_infos()
            if (kinds is None or info.applies_to(kinds)) and info.name not in skip}


def _keep_valid(key: str, options: list[str], multi: bool = False) -> None:
    """Drop a remembered choice that the current model does not offer."""
    if key not in st.session_state:
        return
    value = st.session_state[key]
    if multi:
        st.session_state[key] = [v for v in value if v in options]
    elif value not in options:
        del st.session_state[key]


def unavailable_note(adapter: ModelAdapter) -> None:
    """Why the explainers missing from the list cannot run on this model (the same
    reason the command line gives), so that none vanishes without a word."""
    from xai_core.explainers import REGISTRY
    from xai_core.service import check_method

    offered = {e.name for e in available_for(adapter)}
    reasons = []
    for name, explainer in REGISTRY.items():
        if explainer.modality != "image" or name in offered:
            continue
        try:
            check_method(adapter, name)
        except XaiError as exc:
            reasons.append(f"**{explainer.label}**: {page_text(exc)}.")
    if reasons:
        with st.expander(f"Not available for this model ({len(reasons)})"):
            st.markdown("\n".join(f"- {r}" for r in reasons))


def explain_form(adapter: ModelAdapter) -> ExplainPlan | None:
    explainers = {e.name: e for e in available_for(adapter)}
    if not explainers:
        st.error(f"No explainer can run on {adapter.name}: it offers no predictions. Load another model.")
        return None
    names = list(explainers)
    _keep_valid("img_method", names)
    primary = st.selectbox("Explainer", names, format_func=lambda n: explainers[n].label, key="img_method",
                           index=names.index(DEFAULT_METHOD) if DEFAULT_METHOD in names else 0,
                           help="only the methods this model supports are listed")
    chosen = explainers[primary]
    st.caption(f"{chosen.description} *{chosen.paper}*")
    unavailable_note(adapter)
    others = [n for n in names if n != primary]
    _keep_valid("img_compare", others, multi=True)
    compare = st.multiselect("Compare with", others, format_func=lambda n: explainers[n].label, key="img_compare",
                             help="run more explainers on the same image and show them side by side")
    runs = []
    for name in [primary, *compare]:
        explainer = explainers[name]
        with st.expander(f"{explainer.label} settings", expanded=name == primary):
            values = params_form(explainer, kinds=adapter.input_kinds, skip=LAYER_PARAMS)
            try:
                choice = layer_settings(adapter, explainer, "img")
            except XaiError as exc:
                st.error(f"{page_text(exc)}. Choose the layer in {explainer.label} settings.")
                return None
        values.update(choice.params)
        layer = choice.layer
        try:
            explainer.params(values)
        except XaiError as exc:
            st.error(f"{page_text(exc)}. Change the value in {explainer.label} settings.")
            return None
        runs.append(MethodRun(explainer, values, layer))

    several = [f"top{k}" for k in (2, 3, 4, 5, 10) if k < adapter.num_classes]
    several += ["all"] if 2 < adapter.num_classes <= 20 else []
    options = [PREDICTED, *several, *range(adapter.num_classes)]
    _keep_valid("img_target", options)
    view = "one result per class, per input" if adapter.multi_input else "image x class grid"
    target = st.selectbox(
        "Target class", options, key="img_target",
        format_func=lambda i: ("Predicted class (top-1)" if i == PREDICTED else
                               f"{'All' if i == 'all' else 'Top ' + i[3:]} classes ({view})"
                               if isinstance(i, str) else f"{i}: {adapter.label(i)}"),
        help="the class whose evidence is explained, or several at once; type to search by name",
    )
    seed = int(st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="img_seed",
                               help="fixes the randomness of LIME, SmoothGrad and SHAP"))
    output = None
    if adapter.output_kind == "probability" and adapter.framework != "onnx":
        output = st.radio("Explain the", ["probability", "logit"], horizontal=True, key="img_explains",
                          help="the model ends in a softmax: explain the class probability, or the logit "
                               "before it (the softmax stripped, as tf-keras-vis does)")
    shared = False
    if len(runs) > 1:
        shared = st.checkbox("Shared colour scale", key="img_shared_scale",
                             help="maps in the same units (e.g. Integrated Gradients and SHAP expected gradients) "
                                  "are drawn on one value range, so their colours compare; maps in other units "
                                  "keep their own range, so none is washed out")
    if isinstance(target, str):
        return ExplainPlan(tuple(runs), None, seed, True, classes=target, output=output)
    return ExplainPlan(tuple(runs), None if target == PREDICTED else int(target), seed, shared, output=output)
