"""explain_row / explain_rows: model + table + row(s) + method -> attributions.

The one entry point that the command line and the dashboard page share, so a chart
seen in the browser is reproducible from a shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xai_core.adapters.base import ModelAdapter
from xai_core.explainers import Context, get_explainer
from xai_core.inputs.tables import TabularData, check_row
from xai_core.service.targets import resolve_class
from xai_core.types import Explanation, InputError, Prediction, UnsupportedError, _jsonable
from xai_core.worker.client import runs_in_worker

ProgressCallback = Callable[[float, str], None]
MAX_EXPLAIN_ROWS = 1000
TOP_OUTPUTS = 10


def check_compatible(model: ModelAdapter, data: TabularData) -> None:
    """The chosen feature columns must match the model's input width."""
    model.check_features(data.n_features)


def get_tabular_explainer(method: str):
    """The row method called ``method``."""
    return get_explainer(method, "vector")


def check_tabular_method(model: ModelAdapter, method: str) -> None:
    explainer = get_tabular_explainer(method)
    missing = explainer.missing_capabilities(model)
    if missing:
        needs = "layer hooks" if missing == ["layer_gradients"] else "gradients"
        hint = " ONNX models offer predictions only: use lime or kernel_shap." if model.framework == "onnx" else ""
        raise UnsupportedError(f"{method} needs {needs}, which {model.name} does not provide.{hint}")


def output_values(model: ModelAdapter, outputs: np.ndarray, k: int = TOP_OUTPUTS) -> list[Prediction]:
    """One row's explained outputs -> the (up to k) largest, as predictions of the
    model's output kind (probabilities, logits or a score)."""
    order = np.argsort(-outputs, kind="stable")[:k]
    return [Prediction(int(i), model.label(int(i)), float(outputs[i]), model.output_kind) for i in order]


@runs_in_worker
def predict_rows(model: ModelAdapter, data: TabularData, rows: Sequence[int] | None = None) -> np.ndarray:
    """N x classes explained scores (logits of a logit model, else probabilities;
    the score of a score model) for the given rows (all rows when None)."""
    check_compatible(model, data)
    x = data.x if rows is None else data.x[[check_row(data, r) for r in rows]]
    return model.explained_scores(x)


def resolve_tabular_target(model: ModelAdapter, target: int | str | None, outputs: np.ndarray) -> int:
    """None -> the largest output (the only one for a single score); an index (or its
    digits) -> that output; text -> the output name matching it (case-insensitive)."""
    default = int(np.argmax(outputs)) if model.num_outputs > 1 else 0
    return resolve_class(target, list(model.output_names), default, ("output", "output(s)"))


@runs_in_worker
def explain_row(
    model: ModelAdapter,
    data: TabularData,
    row: int,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    target: int | str | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> Explanation:
    """Explain one row (0-based index into ``data``) of the table with one method."""
    summary = explain_rows(model, data, [row], method, params, target=target, seed=seed,
                           progress=progress, per_row_target=target is None)
    return summary.explanations[0]


@dataclass
class TabularSummary:
    """Many rows explained with one method for one output column: one
    :class:`~xai_core.types.Explanation` per row, and the tables made from them.

    ``attributions`` is the rows x features table of signed attributions (index =
    row number), ``values`` the rows' feature values, ``mean_abs`` the mean
    |attribution| per feature (global importance), largest first. Plain fields
    only, so a summary crosses the worker boundary like any result.
    """

    method: str
    target: int
    target_label: str
    explanations: list[Explanation]
    feature_names: list[str]
    params: dict[str, Any]
    seed: int
    model_evals: int
    elapsed_s: float
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> list[int]:
        return [int(e.row) for e in self.explanations]

    @property
    def attributions(self):
        import pandas as pd

        return pd.DataFrame(np.array([e.attributions[0] for e in self.explanations], np.float64),
                            index=pd.Index(self.rows, name="row"), columns=self.feature_names)

    @property
    def values(self):
        import pandas as pd

        return pd.DataFrame(np.array([e.feature_values for e in self.explanations], np.float64),
                            index=pd.Index(self.rows, name="row"), columns=self.feature_names)

    @property
    def mean_abs(self):
        mean_abs = self.attributions.abs().mean().sort_values(ascending=False, kind="stable")
        mean_abs.name = "mean_abs_attribution"
        return mean_abs

    def table(self, label: bool = True):
        """The CSV-ready table: row, label (when the rows have one and ``label``),
        output, base value, then one column per feature's attribution."""
        frame = self.attributions
        frame.insert(0, "base_value", [e.base_value for e in self.explanations])
        frame.insert(0, "output", [e.output for e in self.explanations])
        if label and any(e.label is not None for e in self.explanations):
            frame.insert(0, "label", [e.label for e in self.explanations])
        return frame.reset_index()


@runs_in_worker
def explain_rows(
    model: ModelAdapter,
    data: TabularData,
    rows: Sequence[int] | None,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    target: int | str | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    per_row_target: bool = False,
) -> TabularSummary:
    """Explain several rows (all when None, at most :data:`MAX_EXPLAIN_ROWS`) with one
    method and one output column, reusing the method's setup across rows.

    ``target`` None picks the output predicted most often over these rows (the one
    output of a single-score model); ``per_row_target`` instead explains each row's
    own largest output. ``progress(fraction, text)`` is called after every row.
    """
    started = time.perf_counter()
    check_compatible(model, data)
    check_tabular_method(model, method)
    rows = list(range(data.n_rows)) if rows is None else [check_row(data, r) for r in rows]
    if not rows:
        raise InputError("no rows chosen to explain")
    if len(rows) > MAX_EXPLAIN_ROWS:
        raise InputError(f"{len(rows)} rows chosen; explain at most {MAX_EXPLAIN_ROWS} at a time")
    explainer = get_tabular_explainer(method)
    parsed = explainer.params(params)
    used = _jsonable(parsed)
    outputs = model.explained_scores(data.x[rows])
    if per_row_target and target is None:
        targets = [resolve_tabular_target(model, None, o) for o in outputs]
    elif target is None and model.num_outputs > 1:
        targets = [int(np.bincount(outputs.argmax(1), minlength=model.num_outputs).argmax())] * len(rows)
    else:
        targets = [resolve_tabular_target(model, target, outputs[0])] * len(rows)

    if progress is not None:
        progress(0.0, f"{explainer.label}: preparing")
    explanations: list[Explanation] = []
    contexts: dict[int, Context] = {}  # one per target, prepared once for all its rows
    total_evals = 0
    for i, (row, t, out) in enumerate(zip(rows, targets, outputs, strict=True)):  # noqa: B007
        t0 = time.perf_counter()
        fresh = t not in contexts
        if fresh:  # the prepare step's evaluations are counted with the first row that needs it
            ctx = contexts[t] = Context.for_rows(model, data, t, seed)
            ctx.prepared = explainer.prepare(ctx, parsed)
        ctx = contexts[t]
        evals_before = 0 if fresh else ctx.model_evals
        raw = explainer.run(ctx.at(data.x[row]), parsed)
        evals = ctx.model_evals - evals_before
        attributions = np.asarray(raw.attribution, np.float64).reshape(-1)
        if attributions.shape != (data.n_features,) or not np.isfinite(attributions).all():
            raise UnsupportedError(f"{method} returned unusable attributions for row {row} (non-finite or wrong size)")
        attributions = attributions.astype(np.float32)
        explanations.append(Explanation(
            method=method,
            target=t,
            target_label=model.label(t),
            attribution=attributions,
            predictions=output_values(model, out),
            params=used,
            seed=seed,
            model_evals=int(evals),
            elapsed_s=time.perf_counter() - t0,
            layer=raw.layer,
            output_kind=model.output_kind,
            extras=dict(raw.extras),
            inputs=[s.name for s in model.inputs],
            input_kinds=["vector"],
            layer_attribution=None if raw.layer_attribution is None else np.nan_to_num(
                np.asarray(raw.layer_attribution, np.float32)),
            neuron=raw.neuron,
            probabilities=np.asarray(out, np.float32) if model.output_kind == "probability" else None,
            engine=model.framework,
            output=float(out[t]),
            base_value=None if raw.base_value is None else float(raw.base_value),
            feature_names=list(data.feature_names),
            feature_values=np.asarray(data.x[row], np.float32).copy(),
            row=int(row),
            label=_plain(data.labels[row]) if data.labels is not None else None,
        ))
        total_evals = sum(c.model_evals for c in contexts.values())
        if progress is not None:
            progress((i + 1) / len(rows), f"{explainer.label}: row {i + 1} of {len(rows)}")

    t_first = targets[0]
    return TabularSummary(
        method=method,
        target=t_first,
        target_label=model.label(t_first),
        explanations=explanations,
        feature_names=list(data.feature_names),
        params=used,
        seed=seed,
        model_evals=int(total_evals),
        elapsed_s=time.perf_counter() - started,
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
