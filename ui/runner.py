"""Run the chosen explainers (through the cache) and keep the results in the session.

Results live in ``st.session_state`` so they stay on screen across reruns, page
switches and failed attempts; a failure shows an ``st.error`` and never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from xai_core.service import explain_classes
from xai_core.types import Explanation, XaiError

from .cache import ModelRequest, explain_cached, load_model, result_key
from .image_form import PickedImage
from .inputs_form import FedInputs
from .long_run import LongRun
from .messages import page_text
from .method_form import ExplainPlan

RESULTS_KEY = "img_results"
RUN_KEY = "img_run"  # the LongRun (progress bar + Stop button) of the Explain button


@dataclass(frozen=True)
class ResultItem:
    label: str
    key: str
    explanation: Explanation


@dataclass(frozen=True)
class ResultSet:
    image: PickedImage
    request: ModelRequest
    items: tuple[ResultItem, ...]
    shared_scale: bool
    grid: bool = False  # several classes per method: shown as the image x class grid
    fed: FedInputs | None = None  # a model with several inputs: what fed each

    @property
    def inputs_key(self) -> str:
        return inputs_key(self.image, self.fed)


def inputs_key(image: PickedImage, fed: FedInputs | None) -> str:
    """What a result was computed from: the page's image, or every input of a model with several."""
    return fed.key if fed is not None else image.key


def open_model_or_error(request: ModelRequest):
    """The cached adapter, or None after an st.error naming the next step."""
    try:
        with st.spinner(f"Loading {request.display_name}…"):
            return load_model(request)
    except XaiError as exc:
        hint = " Check Preprocessing in the sidebar ('Reset to the model's defaults' restores the zoo entry's)."
        if request.source == "file":
            hint = " In the sidebar, set the model's input size, Grayscale and normalization under Preprocessing."
            if request.framework == "torch":
                hint += (" A state_dict needs its Architecture; a pickled module you trust needs 'I trust this "
                         "file'; or re-save the model as TorchScript or .pt2.")
        st.error(f"Could not load the model: {page_text(exc)}.{hint}")
    except Exception as exc:  # noqa: BLE001 - no traceback may reach the user
        st.error(f"Could not load the model ({type(exc).__name__}: {page_text(exc)}). Check the file, its framework "
                 "and the preprocessing settings, or pick a zoo model.")
    return None


def run_plan(request: ModelRequest, adapter, image: PickedImage, plan: ExplainPlan,
             fed: FedInputs | None = None) -> bool:
    """Explain ``image`` (or, for a model with several inputs, what ``fed`` gives each)
    with every run of ``plan``; store what succeeded. True if any did."""
    given, given_key = (fed.items if fed is not None else image.array), inputs_key(image, fed)
    n = len(plan.runs)
    items: list[ResultItem] = []
    errors: list[str] = []
    with LongRun(RUN_KEY, "Explaining") as long_run:
        for i, run in enumerate(plan.runs):
            label = run.explainer.label

            def progress(fraction: float, text: str, i: int = i, label: str = label) -> None:
                long_run.update((i + fraction) / n, f"{label}, {text or f'{fraction:.0%}'}")

            progress(0.0, "starting")
            try:
                if plan.classes:
                    for explanation in explain_classes(adapter, given, run.method, run.params,
                                                       classes=plan.classes, layer=run.layer, seed=plan.seed,
                                                       progress=progress, output=plan.output):
                        key = result_key(request.key, given_key, run.method, run.params, explanation.target,
                                         run.layer, plan.seed, plan.output)
                        items.append(ResultItem(f"{label}: {explanation.target_label}", key, explanation))
                    continue
                explanation = explain_cached(
                    request.key, adapter, given_key, given, run.method, run.params,
                    target=plan.target, layer=run.layer, seed=plan.seed, progress=progress, output=plan.output,
                )
            except XaiError as exc:
                errors.append(f"{label}: {page_text(exc)}. Change its settings, the target or the model, "
                              "then press Explain again.")
                continue
            except Exception as exc:  # noqa: BLE001 - no traceback may reach the user
                errors.append(f"{label} failed ({type(exc).__name__}: {page_text(exc)}). Try smaller settings "
                              "(fewer samples or steps), a smaller input size, or another explainer.")
                continue
            key = result_key(request.key, given_key, run.method, run.params, plan.target, run.layer, plan.seed,
                             plan.output)
            items.append(ResultItem(label, key, explanation))
    for message in errors:
        st.error(message)
    if items:
        st.session_state[RESULTS_KEY] = ResultSet(image, request, tuple(items), plan.shared_scale,
                                                  grid=bool(plan.classes), fed=fed)
    elif _same_inputs(st.session_state.get(RESULTS_KEY), request, given_key):
        st.info("The previous result of this model and image is still shown below.")
    return bool(items)


def current_results(request: ModelRequest | None, adapter, image: PickedImage | None,
                    fed: FedInputs | None = None) -> ResultSet | None:
    """The stored results when they were computed from the model and image (or model
    inputs) now chosen; otherwise None, with a line saying why nothing is shown (a
    result is never shown beside inputs it was not computed from)."""
    results = st.session_state.get(RESULTS_KEY)
    if results is None:
        return None
    same_model = request is not None and adapter is not None and _same_inputs(results, request, None)
    same_image = image is not None and _same_inputs(results, None, inputs_key(image, fed))
    if same_model and same_image:
        return results
    what = "model inputs" if results.fed is not None or fed is not None else "image"
    changed = " and ".join(w for w, same in (("model", same_model), (what, same_image)) if not same)
    st.caption(f"The last result ({results.request.display_name} on {results.image.name}) is hidden because the "
               f"{changed} changed since; press Explain for a result of the current choice.")
    return None


def _same_inputs(results: ResultSet | None, request: ModelRequest | None, key: str | None) -> bool:
    """Whether ``results`` were computed from ``request``'s model and the inputs whose
    key is ``key`` (either may be None: not checked)."""
    if results is None:
        return False
    return ((request is None or results.request.key == request.key)
            and (key is None or results.inputs_key == key))
