"""Run metrics on what the service explained: the bridge between adapters and the
metrics' plain-array inputs, shared by the command line and the dashboard."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from xai_core.adapters.base import ModelAdapter
from xai_core.metrics import get_metric
from xai_core.metrics.base import MetricInput, MetricResult, Modality, Needs
from xai_core.types import Explanation, InputError, UnsupportedError
from xai_core.worker.client import runs_in_worker

ProgressCallback = Callable[[float, str], None]


def rerun(adapter: ModelAdapter, exp: Explanation, items: Sequence[np.ndarray], index: int = 0,
          batch_size: int | None = None):
    """(x, model adapter or None) -> (input ``index``'s attribution, evals): the
    explanation's method, params, class, layer and seed re-run with input ``index``
    replaced by ``x`` (its canonical form: H x W x C in [0, 1], or a row) and the
    other inputs held as given in ``items``."""
    from xai_core.explainers import Context, get_explainer

    explainer = get_explainer(exp.method)
    parsed = explainer.params(exp.params)

    def run(x: np.ndarray, model: ModelAdapter | None = None,
            progress: ProgressCallback | None = None) -> tuple[np.ndarray, int]:
        model = model or adapter
        inputs = [np.asarray(v, np.float32) for v in items]
        inputs[index] = np.asarray(x, np.float32)
        first = inputs[0]
        picture = (np.clip(first, 0, 1) * 255).round().astype(np.uint8) if first.ndim == 3 else None
        ctx = Context(model, first, exp.target, exp.seed, int(batch_size or model.default_batch_size),
                      layer=exp.layer, original_image=picture, inputs=inputs, progress=progress)
        ctx.probs_from_pass = explainer.single_pass  # as service.explain: methods may read the input's own scores
        if not explainer.single_pass:
            ctx.probs = ctx.predict(ctx.one())[0]
        raw = explainer.run(ctx, parsed)
        attributions = raw.attributions or [raw.attribution]
        attribution = np.nan_to_num(np.asarray(attributions[index], np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        return attribution, ctx.model_evals

    return run


def held(adapter: ModelAdapter, items: Sequence[np.ndarray], index: int, batch_size: int):
    """A batch of input ``index`` -> N x K class probabilities, the other inputs held
    at their given items (the model seen as a function of one input)."""
    def predict(batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        parts = [batch if i == index else np.repeat(np.asarray(v, np.float32)[None], len(batch), 0)
                 for i, v in enumerate(items)]
        return adapter.predict(adapter.join(parts), batch_size)

    return predict


def input_tasks(adapter: ModelAdapter, items: Sequence[np.ndarray], exp: Explanation,
                batch_size: int | None = None,
                backgrounds: Sequence[np.ndarray | None] | None = None) -> list[MetricInput]:
    """One metric task per model input: input i is perturbed in the order of its own
    attribution while the others stay as given. An image input is an image task;
    a vector input a row task whose removed features take the mean of its
    background rows (``backgrounds[i]``, N x F) when one is given, else 0 (the
    model's own feature space), and whose noise is scaled by the background's
    standard deviation (else 1)."""
    size = int(batch_size or adapter.default_batch_size)
    layers = adapter.weight_layers()
    tasks = []
    for i, spec in enumerate(adapter.inputs):
        background = None if backgrounds is None else backgrounds[i]
        row = spec.kind != "image"
        if background is not None and (not row or np.shape(background)[1:] != np.shape(items[i])):
            raise InputError(f"the background of input {spec.name!r} must be rows N x {np.size(items[i])}")
        tasks.append(MetricInput(
            x=np.asarray(items[i], np.float32), attribution=exp.attributions[i], target=exp.target,
            predict=held(adapter, items, i, size), modality=Modality.ROWS if row else Modality.IMAGE,
            baseline=None if background is None else np.mean(background, 0),
            scale=None if background is None else np.std(background, 0),
            explain=rerun(adapter, exp, items, i, size),
            randomized=adapter.randomized_copy, layers=len(layers), seed=exp.seed,
        ))
    return tasks


def check_weights(adapter: ModelAdapter, names: Sequence[str], layers: list[str]) -> None:
    """An UnsupportedError when a metric needs weights that the model does not expose."""
    for name in names:
        if Needs.WEIGHTS in get_metric(name).needs and not layers:
            raise UnsupportedError(f"metric {name} needs model weights: {adapter.weights_refusal}")


def run_metrics(
    task: MetricInput,
    names: Sequence[str],
    params: dict[str, dict[str, Any]] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, MetricResult]:
    """Each named metric on one task; ``params`` maps a metric name to its values.
    Progress is reported per metric, in the order given."""
    results: dict[str, MetricResult] = {}
    names = list(names)
    for i, name in enumerate(names):
        metric = get_metric(name)

        def tell(fraction: float, text: str, i: int = i) -> None:
            if progress is not None:
                progress((i + fraction) / len(names), text)

        task.progress = tell
        tell(0.0, f"{metric.label}")
        results[name] = metric(task, (params or {}).get(name))
    if progress is not None:
        progress(1.0, "metrics done")
    return results


@runs_in_worker
def evaluate_inputs(
    adapter: ModelAdapter,
    items: Sequence[np.ndarray],
    exp: Explanation,
    names: Sequence[str],
    params: dict[str, dict[str, Any]] | None = None,
    *,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    backgrounds: Sequence[np.ndarray | None] | None = None,
) -> dict[str, dict[str, MetricResult]]:
    """Metrics of ``exp`` for every input of the model: {input name: {metric: result}}.

    ``items`` are the canonical inputs (:func:`xai_core.service.prepare_inputs`);
    each input gets its own curves and scores (see :func:`input_tasks`); a metric
    that does not apply to an input's kind (ROAD on a feature vector) is left out
    for that input. For a model run in the confined worker the whole call runs
    there, randomised copies of the model included."""
    if len(items) != len(adapter.inputs):
        raise InputError(f"{adapter.name} takes {len(adapter.inputs)} inputs; {len(items)} were given")
    layers = adapter.weight_layers()
    check_weights(adapter, names, layers)
    tasks = input_tasks(adapter, items, exp, batch_size, backgrounds)
    out: dict[str, dict[str, MetricResult]] = {}
    for i, (spec, task) in enumerate(zip(adapter.inputs, tasks, strict=True)):
        step = None
        if progress is not None:
            def step(fraction: float, text: str, _i: int = i, _name: str = spec.name) -> None:
                progress((_i + fraction) / len(tasks), f"{_name}: {text}" if len(tasks) > 1 else text)
        chosen = [n for n in names if task.modality in get_metric(n).modalities]
        out[spec.name] = run_metrics(task, chosen, params, step)
        for result in out[spec.name].values():
            result.input = spec.name if len(tasks) > 1 else None
    return out


def evaluate_image(
    adapter: ModelAdapter,
    x: np.ndarray,
    exp: Explanation,
    names: Sequence[str],
    params: dict[str, dict[str, Any]] | None = None,
    *,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, MetricResult]:
    """Metrics of ``exp`` on the preprocessed image ``x`` (H x W x C in [0, 1], as
    :func:`xai_core.inputs.images.preprocess` gives it) of a one-image model."""
    if adapter.input_kinds != ["image"]:
        raise UnsupportedError(f"evaluate_image takes a model with one image input; {adapter.name} takes "
                               f"{', '.join(adapter.input_kinds)} (use evaluate_inputs)")
    per_input = evaluate_inputs(adapter, [np.asarray(x, np.float32)], exp, names, params,
                                batch_size=batch_size, progress=progress)
    return next(iter(per_input.values()))


def records(results: dict[str, MetricResult]) -> dict[str, Any]:
    """JSON-ready records of a run, keyed by metric name."""
    return {name: result.record() for name, result in results.items()}


def evaluate_row(
    model: Any,
    data: Any,
    exp: Any,
    names: Sequence[str],
    params: dict[str, dict[str, Any]] | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> dict[str, MetricResult]:
    """Metrics of an :class:`~xai_core.types.Explanation` of row
    ``exp.row`` of ``data``: removed features take the column means, input noise
    is scaled by the column standard deviations, and the score is the explained
    one (the class probability, the logit of a logit model, or the score)."""
    from xai_core.explainers import Context
    from xai_core.service.rows import get_tabular_explainer

    layers = model.weight_layers()
    check_weights(model, names, layers)
    explainer = get_tabular_explainer(exp.method)
    parsed = explainer.params(exp.params)
    prepared: dict[str, Any] = {}

    def rerun(x: np.ndarray, variant: Any = None, progress: ProgressCallback | None = None) -> tuple[np.ndarray, int]:
        ctx = Context.for_rows(variant or model, data, exp.target, exp.seed)
        key = id(variant)  # the method's prepare step (SHAP background, LIME statistics) is made once per model
        if key not in prepared:
            prepared[key] = explainer.prepare(ctx, parsed)
        ctx.prepared = prepared[key]
        raw = explainer.run(ctx.at(np.asarray(x, np.float32)), parsed)
        return np.asarray(raw.attribution, np.float64).reshape(-1), ctx.model_evals

    x = np.asarray(data.x[exp.row], np.float32)
    task = MetricInput(
        x=x, attribution=np.array([exp.by_feature()[f] for f in data.feature_names], np.float64),
        target=exp.target, predict=lambda batch: model.explained_scores(batch, 4096), modality=Modality.ROWS,
        baseline=data.x.mean(0), scale=data.x.std(0), explain=rerun, seed=exp.seed,
        randomized=model.randomized_copy, layers=len(layers),
    )
    return run_metrics(task, names, params, progress)
