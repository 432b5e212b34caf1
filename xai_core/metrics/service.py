"""Run metrics on what the service explained: the bridge between adapters and the
metrics' plain-array inputs, shared by the command line and the dashboard."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..adapters.base import ModelAdapter
from ..types import Explanation, UnsupportedError
from . import get_metric
from .base import MetricInput, MetricResult, Modality, Needs

ProgressCallback = Callable[[float, str], None]


def image_rerun(adapter: ModelAdapter, exp: Explanation, batch_size: int | None = None):
    """(x H x W x C in [0, 1], model adapter or None) -> (attribution, evals): the
    explanation's method, params, class, layer and seed on another input or model."""
    from ..explainers import Context, get_explainer

    explainer = get_explainer(exp.method)
    parsed = explainer.params(exp.params)

    def run(x: np.ndarray, model: ModelAdapter | None = None) -> tuple[np.ndarray, int]:
        model = model or adapter
        x = np.asarray(x, np.float32)
        ctx = Context(model, x, exp.target, exp.seed, int(batch_size or model.default_batch_size),
                      layer=exp.layer, original_image=(np.clip(x, 0, 1) * 255).round().astype(np.uint8),
                      inputs=[x])
        ctx.probs = ctx.predict(ctx.image[None])[0]  # as service.explain: methods may read the image's own scores
        raw = explainer.run(ctx, parsed)
        attribution = np.nan_to_num(np.asarray(raw.attribution, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        return attribution, ctx.model_evals

    return run


def check_weights(adapter: ModelAdapter, names: Sequence[str], layers: list[str]) -> None:
    """An UnsupportedError when a metric needs weights that the model does not expose."""
    for name in names:
        if Needs.WEIGHTS in get_metric(name).needs and not layers:
            raise UnsupportedError(f"metric {name} needs model weights, which {adapter.name} does not expose "
                                   f"({adapter.framework})")


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
    :func:`xai_core.images.preprocess` gives it)."""
    size = int(batch_size or adapter.default_batch_size)
    if adapter.input_kinds != ["image"]:
        raise UnsupportedError(f"the image metrics need a model with one image input; {adapter.name} takes "
                               f"{', '.join(adapter.input_kinds)}")
    layers = adapter.weight_layers()
    check_weights(adapter, names, layers)
    task = MetricInput(
        x=np.asarray(x, np.float32), attribution=exp.attribution, target=exp.target,
        predict=lambda batch: adapter.predict(batch, size), modality=Modality.IMAGE,
        explain=image_rerun(adapter, exp, size),
        randomized=adapter.randomized_copy, layers=len(layers), seed=exp.seed,
    )
    return run_metrics(task, names, params, progress)


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
    from ..explainers.rows import RowContext
    from ..tabular.service import get_tabular_explainer

    layers = model.weight_layers()
    check_weights(model, names, layers)
    explainer = get_tabular_explainer(exp.method)
    parsed = explainer.params(exp.params)
    prepared: dict[str, Any] = {}

    def rerun(x: np.ndarray, variant: Any = None) -> tuple[np.ndarray, int]:
        ctx = RowContext(variant or model, data, exp.target, exp.seed)
        key = id(variant)  # the method's setup (SHAP background, LIME statistics) is made once per model
        if key not in prepared:
            prepared[key] = explainer.setup(ctx, parsed)
        raw = explainer.explain(ctx, parsed, prepared[key], np.asarray(x, np.float32))
        return np.asarray(raw.attributions, np.float64).reshape(-1), ctx.model_evals

    x = np.asarray(data.x[exp.row], np.float32)
    task = MetricInput(
        x=x, attribution=np.array([exp.by_feature()[f] for f in data.feature_names], np.float64),
        target=exp.target, predict=lambda batch: model.explained_scores(batch, 4096), modality=Modality.ROWS,
        baseline=data.x.mean(0), scale=data.x.std(0), explain=rerun, seed=exp.seed,
        randomized=model.randomized_copy, layers=len(layers),
    )
    return run_metrics(task, names, params, progress)
