"""explain(): model + image + method + params -> Explanation.

The one entry point that the command line and the dashboard share, so a figure
seen in the browser is reproducible from a shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from xai_core.adapters.base import ModelAdapter
from xai_core.adapters.fast_forward import engine_has_the_cores
from xai_core.adapters.fast_forward import prepare as prepare_fast_forward
from xai_core.explainers import Context, available_for, get_explainer
from xai_core.inputs.images import crop_box, preprocess
from xai_core.inputs.tables import TabularData
from xai_core.service.rows import explain_row
from xai_core.service.targets import resolve_class
from xai_core.types import (
    Capability,
    Explanation,
    ImageSpec,
    InputError,
    Prediction,
    UnsupportedError,
    VectorSpec,
)
from xai_core.worker.client import runs_in_worker

ProgressCallback = Callable[[float, str], None]
MAX_KEPT_PROBABILITIES = 100  # results keep every class probability up to this many classes


def top_predictions(adapter: ModelAdapter, probs: np.ndarray, k: int = 5) -> list[Prediction]:
    order = np.argsort(-probs)[:k]
    return [Prediction(int(i), adapter.label(int(i)), float(probs[i])) for i in order]


def prepare_inputs(adapter: ModelAdapter, given) -> list[np.ndarray]:
    """What the user gives -> one canonical item per model input (no batch dimension).

    ``given`` is one RGB uint8 image (it feeds every image input of the model, the
    same picture at each input's own size), or a list with one item per input: an
    image for an image input, a 1-D row of feature values for a vector input.
    """
    specs = adapter.inputs
    if isinstance(given, (list, tuple)):
        if len(given) != len(specs):
            raise InputError(f"{adapter.name} takes {len(specs)} inputs "
                             f"({', '.join(s.name for s in specs)}); {len(given)} were given")
        items = list(given)
    else:
        vectors = [s.name for s in specs if isinstance(s, VectorSpec)]
        if vectors and any(isinstance(s, ImageSpec) for s in specs):
            raise InputError(f"{adapter.name} also takes feature rows ({', '.join(vectors)}); give one item per input")
        items = [given] * len(specs)
    out = []
    for spec, item in zip(specs, items, strict=True):
        if isinstance(spec, ImageSpec):
            out.append(preprocess(np.asarray(item), spec))
            continue
        row = np.asarray(item, np.float32).reshape(-1)
        if spec.size is not None and len(row) != spec.size:
            raise InputError(f"input {spec.name!r} takes {spec.size} feature values; {len(row)} were given")
        out.append(row)
    return out


def input_boxes(adapter: ModelAdapter, given) -> list[dict[str, float] | None]:
    """Where each image input's crop lies in the photo given (see
    :func:`xai_core.inputs.images.crop_box`), None for a feature vector."""
    items = list(given) if isinstance(given, (list, tuple)) else [given] * len(adapter.inputs)
    return [crop_box(spec, *np.asarray(item).shape[:2]) if isinstance(spec, ImageSpec) else None
            for spec, item in zip(adapter.inputs, items, strict=True)]


@runs_in_worker
def predict_image(adapter: ModelAdapter, image, k: int = 5) -> list[Prediction]:
    """RGB uint8 image (or one item per input, see :func:`prepare_inputs`) -> top-k predictions."""
    items = prepare_inputs(adapter, image)
    probs = adapter.predict(adapter.join([x[None] for x in items]))[0]
    return top_predictions(adapter, probs, k)


def resolve_target(adapter: ModelAdapter, target: int | str | None, probs: np.ndarray) -> int:
    """The class to explain: the predicted one unless the user names another."""
    return resolve_class(target, adapter.labels, int(np.argmax(probs)))


def max_batch_size(items: list[np.ndarray]) -> int:
    """The largest batch this machine's memory allows for one item of ``items`` (one
    array per model input): a quarter of the memory (at most 8 GB) over about 100 x
    the item's float32 size (activations and gradients of a conv net), 1 to 1024."""
    import os

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    per_item = max(1, sum(int(np.asarray(x).size) for x in items)) * 4 * 100
    return int(max(1, min(1024, min(total // 4, 8 * 2**30) // per_item)))


def check_batch_size(batch_size: int | None, items: list[np.ndarray]) -> None:
    """Refuse a batch size below 1 or above :func:`max_batch_size`."""
    if batch_size is None:
        return
    limit = max_batch_size(items)
    if isinstance(batch_size, bool) or not 1 <= int(batch_size) <= limit:
        shape = " + ".join("x".join(str(d) for d in np.asarray(x).shape) for x in items)
        raise InputError(f"batch size {batch_size} is out of range: 1 to {limit} for a {shape} input "
                         "on this machine's memory")


def check_method(adapter: ModelAdapter, method: str) -> None:
    explainer = get_explainer(method)
    missing = explainer.missing_capabilities(adapter)
    if "attention" in missing:  # the finer needs of the transformer methods follow from it
        missing = [m for m in missing if m not in ("class_token", "block_scores")]
    if missing:
        why = {
            "input_gradients": "gradients",
            "layer_gradients": "layer hooks",
            "deep_explainer": "a Keras model or PyTorch module with one image input for SHAP DeepExplainer",
            "attention": "readable attention weights (a timm, Hugging Face or torchvision vision transformer "
                         "loaded as a PyTorch module)",
            "class_token": "a head that reads the class token (this model pools its patch tokens: use legrad)",
            "block_scores": "a head that can score every block's tokens (ViT and DeiT classifiers of timm, "
                            "Hugging Face and torchvision)",
        }
        needs = " and ".join(why.get(m, m) for m in missing)
        hint = ""
        if getattr(adapter, "kind", "") == "torchscript":
            hint = (" A TorchScript file is a compiled program, not the PyTorch module this method works on: "
                    "save the model as a state_dict with its architecture to use it.")
        elif "deep_explainer" in missing and adapter.framework != "onnx":
            hint = " Use shap_gradient (expected gradients) for this model."
        elif adapter.framework == "onnx":
            hint = " ONNX models offer predictions only: use lime, shap_partition or occlusion."
        raise UnsupportedError(f"{method} needs {needs}, which {adapter.name} does not provide.{hint}")


@runs_in_worker
def explain(
    adapter: ModelAdapter,
    image: np.ndarray,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    target: int | str | None = None,
    layer: str | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    top_k: int = 5,
    output: str | None = None,
    row: int | None = None,
) -> Explanation:
    """Explain ``image`` (RGB uint8 H x W x 3, any size; or one item per model input,
    see :func:`prepare_inputs`) with ``method``; or one row of a table: ``image`` a
    :class:`~xai_core.inputs.tables.TabularData` and ``row`` its 0-based index (the
    same as :func:`xai_core.service.rows.explain_row`; a row method's layer is its
    ``layer`` parameter, which ``layer`` sets).

    ``output`` chooses what gradient methods explain for a model that ends in a
    softmax: 'logit' (the softmax stripped) or 'probability' (default: as the
    model is). The attribution in the result is at model input resolution; render
    it onto the original image with :func:`xai_core.render.overlay`.
    """
    if isinstance(image, TabularData):
        if row is None:
            raise InputError("explaining a table: give the row to explain (row=INDEX, 0-based)")
        if batch_size is not None or output is not None:
            raise InputError("batch_size and output apply to images; a table's rows run as the model declares")
        params = dict(params or {}) | ({"layer": layer} if layer else {})
        return explain_row(adapter, image, row, method, params, target=target, seed=seed, progress=progress)
    if row is not None:
        raise InputError("row= picks a row of a table; give the table (load_table) instead of an image")
    with adapter.explaining(output):
        return _explain(adapter, image, method, params, target=target, layer=layer, seed=seed,
                        batch_size=batch_size, progress=progress, top_k=top_k)


MAX_CLASSES_AT_ONCE = 100


def resolve_classes(adapter: ModelAdapter, classes: str | Sequence[int | str], probs: np.ndarray) -> list[int]:
    """'topK' (the K most probable), 'all' (at most 100 classes), or a list of class
    indices / names -> class indices, in that order."""
    n = adapter.num_classes
    if isinstance(classes, str):
        text = classes.strip().lower()
        if text == "all":
            if n > MAX_CLASSES_AT_ONCE:
                raise InputError(f"{adapter.name} has {n} classes; explain at most {MAX_CLASSES_AT_ONCE} at once "
                                 "(use topK or list them)")
            return list(range(n))
        if text.startswith("top") and text[3:].isdigit():
            k = int(text[3:])
            if not 1 <= k <= min(n, MAX_CLASSES_AT_ONCE):
                raise InputError(f"{classes}: k must be between 1 and {min(n, MAX_CLASSES_AT_ONCE)}")
            return [int(i) for i in np.argsort(-probs, kind="stable")[:k]]
        classes = [c for c in text.split(",") if c.strip()]
    chosen = [resolve_target(adapter, c, probs) for c in classes]
    if not chosen:
        raise InputError("no classes chosen; give topK, all, or class indices or names")
    return list(dict.fromkeys(chosen))


@runs_in_worker
def explain_classes(
    adapter: ModelAdapter,
    image,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    classes: str | Sequence[int | str] = "top3",
    layer: str | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    output: str | None = None,
) -> list[Explanation]:
    """One explanation per class (``classes``: see :func:`resolve_classes`), in one run.

    Every class runs with the same seed, so the perturbation methods (occlusion,
    LIME, SHAP Partition) draw the same perturbed images for each class and each is
    evaluated once: their model evaluations are shared (each result's
    ``model_evals`` counts only the evaluations it added). Gradient methods need a
    backward pass per class.
    """
    with adapter.explaining(output):
        items = prepare_inputs(adapter, image)
        probs = adapter.predict(adapter.join([x[None] for x in items]))[0]
        targets = resolve_classes(adapter, classes, probs)
        memo: dict[bytes, np.ndarray] = {}
        results = []
        for i, cls in enumerate(targets):
            step = None
            if progress is not None:
                def step(fraction: float, text: str, _i: int = i) -> None:
                    progress((_i + fraction) / len(targets), f"class {_i + 1} of {len(targets)}: {text}")
            results.append(_explain(adapter, image, method, params, target=cls, layer=layer, seed=seed,
                                    batch_size=batch_size, progress=step, top_k=5, memo=memo))
        return results


def _explain(adapter: ModelAdapter, image, method: str, params: dict[str, Any] | None, *, target, layer,
             seed: int, batch_size: int | None, progress: ProgressCallback | None, top_k: int,
             memo: dict[bytes, np.ndarray] | None = None) -> Explanation:
    explainer = get_explainer(method)
    check_method(adapter, method)
    if adapter.multi_input and not explainer.several_inputs:
        serving = ", ".join(e.name for e in available_for(adapter) if e.several_inputs)
        raise UnsupportedError(f"{method} explains models with one input; {adapter.name} has "
                               f"{len(adapter.inputs)} ({', '.join(s.name for s in adapter.inputs)}): use {serving}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise InputError(f"the seed must be a whole number from 0 to {2**32 - 1}; got {seed!r}")
    parsed = explainer.params(params)
    if layer not in (None, "") and not (explainer.uses_layer or explainer.accepts_layer):
        raise InputError(f"{method} does not use a layer; drop --layer (it is for methods that work at a layer, such as grad_cam)")
    layer = adapter.resolve_layer(layer) if explainer.uses_layer or explainer.accepts_layer else None
    items = prepare_inputs(adapter, image)
    check_batch_size(batch_size, items)
    x = items[0]
    start = time.perf_counter()
    if explainer.requires == {Capability.PREDICT} or explainer.forward_bound:  # the fastest engine that agrees
        fast = prepare_fast_forward(adapter, x)
        engine, engine_note = fast.engine, fast.note
    else:
        engine, engine_note = adapter.framework, "gradients run on the model's framework"
    ctx = Context(
        adapter, x, None, seed, int(batch_size or adapter.default_batch_size),
        progress=progress, layer=layer, original_image=image if isinstance(image, np.ndarray) else None,
        inputs=items, memo=memo,
    )
    if explainer.single_pass:  # the method's own pass gives the probabilities
        ctx.probs_from_pass = True
        if not (target is None or target == ""):
            ctx.target = resolve_class(target, adapter.labels, 0)
    else:
        ctx.probs = adapter.predict(ctx.one())[0]
        ctx.model_evals += 1
        ctx.target = resolve_target(adapter, target, ctx.probs)
    with engine_has_the_cores(engine):
        raw = explainer.run(ctx, parsed)
    elapsed = time.perf_counter() - start
    index, probs = ctx.target, ctx.probs
    if probs is not None and not np.all(np.isfinite(probs)):
        raise InputError(
            f"{adapter.name} gave NaN or infinite outputs for this input; check its preprocessing "
            "(mean/std, input size) and the model itself"
        )
    attributions = [_finite(a) for a in (raw.attributions or [raw.attribution])]
    return Explanation(
        method=method,
        target=index,
        target_label=adapter.label(index),
        attribution=attributions[0],
        predictions=top_predictions(adapter, probs, top_k),
        params=asdict(parsed),
        seed=seed,
        model_evals=ctx.model_evals,
        elapsed_s=elapsed,
        raw=raw.raw,
        signed=bool(raw.extras.get("signed", explainer.drawing.signed)),  # e.g. Grad-CAM without ReLU is signed
        layer=raw.layer,
        output_kind=adapter.explains if explainer.requires - {"predict"} else "probability",
        extras=raw.extras,
        attributions=attributions,
        inputs=[s.name for s in adapter.inputs],
        input_kinds=adapter.input_kinds,
        layer_attribution=None if raw.layer_attribution is None else _finite(raw.layer_attribution),
        neuron=raw.neuron,
        probabilities=np.asarray(probs, np.float32) if len(probs) <= MAX_KEPT_PROBABILITIES else None,
        engine=engine,
        engine_note=engine_note,
        boxes=input_boxes(adapter, image),
    )


def _finite(a: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(a, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
