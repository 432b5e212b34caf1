"""explain(): model + image + method + params -> Explanation.

The one entry point that the command line and the dashboard share, so a figure
seen in the browser is reproducible from a shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from .adapters.base import ModelAdapter
from .engines.worker import runs_in_worker
from .explainers import Context, get_explainer
from .images import preprocess
from .types import Explanation, InputError, Prediction, UnsupportedError

ProgressCallback = Callable[[float, str], None]


def top_predictions(adapter: ModelAdapter, probs: np.ndarray, k: int = 5) -> list[Prediction]:
    order = np.argsort(-probs)[:k]
    return [Prediction(int(i), adapter.label(int(i)), float(probs[i])) for i in order]


@runs_in_worker
def predict_image(adapter: ModelAdapter, image: np.ndarray, k: int = 5) -> list[Prediction]:
    """RGB uint8 image -> top-k predictions."""
    probs = adapter.predict(preprocess(image, adapter.spec)[None])[0]
    return top_predictions(adapter, probs, k)


def resolve_class(
    target: int | str | None, names: list[str], default: int, what: tuple[str, str] = ("class", "classes")
) -> int:
    """The index a user's target means: None/"" -> ``default``; an int (or its digits)
    -> that index; text -> the name matching exactly (case-insensitive), else the
    one name containing it. ``what`` is the (singular, plural) noun for errors."""
    one, many = what
    if target is None or (isinstance(target, str) and not target.strip()):
        return default
    n = len(names)
    if isinstance(target, (int, np.integer)) or str(target).strip().lstrip("-").isdigit():
        index = int(target)
        if not 0 <= index < n:
            raise InputError(f"target {index} is out of range; the model has {n} {many} (0..{n - 1})")
        return index
    text = str(target).strip().lower()
    lowered = [name.lower() for name in names]
    if text in lowered:
        return lowered.index(text)
    matches = [i for i, name in enumerate(lowered) if text in name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        listed = f"; {many}: {', '.join(names)}" if n <= 20 else ""
        raise InputError(f"no {one} named {target!r}{listed}")
    shown = ", ".join(names[i] for i in matches[:6])
    raise InputError(f"{target!r} matches several {many} ({shown}...); give the index or the exact name")


def resolve_target(adapter: ModelAdapter, target: int | str | None, probs: np.ndarray) -> int:
    """The class to explain: the predicted one unless the user names another."""
    return resolve_class(target, adapter.labels, int(np.argmax(probs)))


def max_batch_size(spec) -> int:
    """The largest batch this machine's memory allows for ``spec``'s input: a quarter
    of the memory (at most 8 GB) over about 100 x the input's float32 size per image
    (activations and gradients of a conv net), between 1 and 1024."""
    import os

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    h, w = spec.size
    per_image = h * w * spec.channels * 4 * 100
    return int(max(1, min(1024, min(total // 4, 8 * 2**30) // per_image)))


def check_batch_size(batch_size: int | None, spec) -> None:
    if batch_size is None:
        return
    limit = max_batch_size(spec)
    if isinstance(batch_size, bool) or not 1 <= int(batch_size) <= limit:
        h, w = spec.size
        raise InputError(f"batch size {batch_size} is out of range: 1 to {limit} for a {h}x{w} input "
                         "on this machine's memory")


def check_method(adapter: ModelAdapter, method: str) -> None:
    explainer = get_explainer(method)
    missing = explainer.missing_capabilities(adapter)
    if missing:
        why = {
            "input_gradients": "gradients",
            "layer_gradients": "layer hooks",
            "deep_explainer": "a Keras model for SHAP DeepExplainer",
        }
        needs = " and ".join(why.get(m, m) for m in missing)
        hint = ""
        if getattr(adapter, "kind", "") == "torchscript":
            hint = " TorchScript files allow no layer hooks: save the model as a torch.export program (.pt2) or a state_dict to use it."
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
) -> Explanation:
    """Explain ``image`` (RGB uint8 H x W x 3, any size) with ``method``.

    The attribution in the result is at model input resolution; render it onto
    the original image with :func:`xai_core.render.overlay`.
    """
    explainer = get_explainer(method)
    check_method(adapter, method)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise InputError(f"the seed must be a whole number from 0 to {2**32 - 1}; got {seed!r}")
    check_batch_size(batch_size, adapter.spec)
    parsed = explainer.params(params)
    if layer and not explainer.uses_layer:
        layer = None
    x = preprocess(image, adapter.spec)
    start = time.perf_counter()
    ctx = Context(
        adapter, x, None, seed, int(batch_size or adapter.default_batch_size),
        progress=progress, layer=layer, original_image=image,
    )
    if not (explainer.single_pass and (target is None or target == "")):
        ctx.probs = adapter.predict(x[None])[0]
        ctx.model_evals += 1
        ctx.target = resolve_target(adapter, target, ctx.probs)
    raw = explainer.run(ctx, parsed)
    elapsed = time.perf_counter() - start
    index, probs = ctx.target, ctx.probs
    if probs is not None and not np.all(np.isfinite(probs)):
        raise InputError(
            f"{adapter.name} gave NaN or infinite outputs for this image; check its preprocessing "
            "(mean/std, input size) and the model itself"
        )
    attribution = np.nan_to_num(np.asarray(raw.attribution, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return Explanation(
        method=method,
        target=index,
        target_label=adapter.label(index),
        attribution=attribution,
        predictions=top_predictions(adapter, probs, top_k),
        params=asdict(parsed),
        seed=seed,
        model_evals=ctx.model_evals,
        elapsed_s=elapsed,
        raw=raw.raw,
        signed=explainer.signed and raw.extras.get("signed", True),
        layer=raw.layer,
        output_kind=adapter.output_kind if explainer.requires - {"predict"} else "probability",
        extras=raw.extras,
    )
