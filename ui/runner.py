"""Run the chosen explainers (through the cache) and keep the results in the session.

Results live in ``st.session_state`` so they stay on screen across reruns, page
switches and failed attempts; a failure shows an ``st.error`` and never a traceback.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import streamlit as st

from xai_core.service import explain_classes, prepare_inputs
from xai_core.service.estimate import Estimate, estimate_explain, observe, total
from xai_core.types import Explanation, XaiError

from .cache import ModelRequest, explain_cached, load_model, result_key
from .image_form import PickedImage
from .inputs_form import FedInputs
from .long_run import finished_result, follow_run, start_run
from .messages import page_text
from .method_form import ExplainPlan

RESULTS_KEY = "img_results"
RUN_KEY = "run"  # the Explain button's run: its id in the URL (?run=...) and the session
RESTORED_KEY = "img_results_run"  # the run the shown results came from


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


def plan_estimate(adapter, given, plan: ExplainPlan, measure_now: bool) -> Estimate:
    """What the plan will cost: every run's model evaluations, priced at the model's
    measured time per evaluation (measured now when ``measure_now``, else only when
    known; without a price the estimate gives the evaluations alone)."""
    classes = _class_count(adapter, plan.classes)
    items = prepare_inputs(adapter, given) if measure_now else None
    parts = [estimate_explain(adapter, items, run.method, run.params, classes=classes,
                              measure_now=measure_now)
             for run in plan.runs]
    return total(parts)


def _class_count(adapter, classes) -> int:
    if not classes:
        return 1
    if isinstance(classes, str):
        text = classes.strip().lower()
        if text == "all":
            return int(adapter.num_classes)
        if text.startswith("top") and text[3:].isdigit():
            return int(text[3:])
        return len([c for c in text.split(",") if c.strip()])
    return len(classes)


def queue_key(request: ModelRequest, adapter) -> str | None:
    """Runs on one model worker wait for each other: the model's key for a model
    that runs in a worker, None (no queue) for one in this process."""
    return request.key if getattr(adapter, "engine", "") == "worker" else None


def _plan_work(request: ModelRequest, adapter, image: PickedImage, plan: ExplainPlan, fed: FedInputs | None,
               progress) -> dict:
    """The Explain button's work, in a server thread: every run of ``plan``; returns
    {"results": ResultSet or None, "errors": [line, ...]}."""
    given, given_key = (fed.items if fed is not None else image.array), inputs_key(image, fed)
    try:
        estimate = plan_estimate(adapter, given, plan, measure_now=True)
        progress.estimated(estimate.seconds, estimate.words)
    except XaiError:
        pass  # the run itself says what is wrong
    n = len(plan.runs)
    items: list[ResultItem] = []
    errors: list[str] = []
    for i, run in enumerate(plan.runs):
        label = run.explainer.label

        def step(fraction: float, text: str, i: int = i, label: str = label) -> None:
            progress((i + fraction) / n, f"{label}, {text or f'{fraction:.0%}'}")

        step(0.0, "starting")
        try:
            if plan.classes:
                for explanation in explain_classes(adapter, given, run.method, run.params,
                                                   classes=plan.classes, layer=run.layer, seed=plan.seed,
                                                   progress=step, output=plan.output):
                    key = result_key(request.key, given_key, run.method, run.params, explanation.target,
                                     run.layer, plan.seed, plan.output)
                    items.append(ResultItem(f"{label}: {explanation.target_label}", key, explanation))
                continue
            explanation = explain_cached(
                request.key, adapter, given_key, given, run.method, run.params,
                target=plan.target, layer=run.layer, seed=plan.seed, progress=step, output=plan.output,
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
    for item in items:
        observe(adapter, item.explanation.method, item.explanation.model_evals, item.explanation.elapsed_s)
    results = ResultSet(image, request, tuple(items), plan.shared_scale, grid=bool(plan.classes),
                        fed=fed) if items else None
    return {"results": results, "errors": errors}


def start_plan(request: ModelRequest, adapter, image: PickedImage, plan: ExplainPlan,
               fed: FedInputs | None = None) -> None:
    """Start explaining ``image`` (or, for a model with several inputs, what ``fed``
    gives each) with every run of ``plan``, in the server's run store; the page
    follows it with :func:`follow_plan`."""
    given = fed.items if fed is not None else image.array
    try:
        estimate = plan_estimate(adapter, given, plan, measure_now=False)
    except XaiError:
        estimate = None
    start_run(RUN_KEY, "Explaining", functools.partial(_plan_work, request, adapter, image, plan, fed),
              estimate=estimate, queue=queue_key(request, adapter))


def show_estimate(request: ModelRequest, adapter, image: PickedImage, plan: ExplainPlan,
                  fed: FedInputs | None = None) -> None:
    """One caption under the Explain button: what pressing it will cost. A model in
    this process is timed now (once); one in a worker is timed by its first run
    (until then the caption gives the evaluations), so the page never waits for a
    worker busy with another session's run."""
    given = fed.items if fed is not None else image.array
    try:
        estimate = plan_estimate(adapter, given, plan, measure_now=queue_key(request, adapter) is None)
    except XaiError:
        return
    st.caption(f"Estimated {estimate.words} on this machine.")


def follow_plan(request: ModelRequest | None) -> bool:
    """Follow the Explain run of this page (started here, or named by the URL after a
    reload): progress and Stop while it goes; then store what succeeded and show the
    errors. True when new results came."""
    record = follow_run(RUN_KEY)
    new, outcome = finished_result(RUN_KEY, record)
    if not new:
        return False
    for message in outcome["errors"]:
        st.error(message)
    results = outcome["results"]
    if results is not None:
        st.session_state[RESULTS_KEY] = results
        # a result this session did not start (a reloaded tab, a result link) is shown
        # whatever the sidebar holds now, until the next Explain
        st.session_state[RESTORED_KEY] = st.session_state.get(f"{RUN_KEY}__id") != record.id
        return True
    if request is not None and _same_inputs(st.session_state.get(RESULTS_KEY), request, None):
        st.info("The previous result of this model and image is still shown below.")
    return False


def run_plan(request: ModelRequest, adapter, image: PickedImage, plan: ExplainPlan,
             fed: FedInputs | None = None) -> bool:
    """Start the plan and follow it to its end (see :func:`start_plan`); True if any
    run succeeded."""
    start_plan(request, adapter, image, plan, fed)
    return follow_plan(request)


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
    if st.session_state.get(RESTORED_KEY):
        st.caption(f"The result of the run in this page's link: {results.request.display_name} on "
                   f"{results.image.name}. Press Explain for a result of the current choice.")
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


def results_adapter(results: ResultSet, request: ModelRequest | None, adapter):
    """The model the shown results were computed with, when it is the one chosen now
    (the metrics panel needs it); None for a restored result of another model."""
    return adapter if request is not None and adapter is not None and results.request.key == request.key else None
