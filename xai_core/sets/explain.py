"""Explain a selection of a labelled set against chosen classes, streamed, and
summarise it without holding every attribution.

:func:`explain_selection` yields one :class:`~xai_core.sets.model.ItemExplanation`
per item as soon as its chunk is done (through an engine: in-process or Ray);
:class:`SetSummary` folds them, one at a time, into the summaries: the mean
|attribution| per explained class (and per feature for rows) and, for images,
the class-mean maps (the mean signed map of each explained class).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xai_core.sets.data import LabelledSet
from xai_core.sets.evaluate import read_items
from xai_core.sets.model import ItemExplanation
from xai_core.types import InputError, XaiError

ProgressCallback = Callable[[float, str], None]
CLASS_CHOICES = ("predicted", "true", "all")


@dataclass(frozen=True)
class ExplainRequest:
    """What to explain for every selected item: ``classes`` is "predicted", "true",
    "all" or explicit class indices; rows need the set's ``background`` rows."""

    method: str
    params: dict[str, Any]
    seed: int = 0
    classes: str | tuple[int, ...] = "all"
    background: np.ndarray | None = field(default=None, repr=False, compare=False)
    feature_names: tuple[str, ...] = ()

    def key(self) -> dict[str, Any]:
        """What makes two runs give the same files (for resuming)."""
        from xai_core.types import _jsonable

        classes = self.classes if isinstance(self.classes, str) else list(self.classes)
        return {"method": self.method, "params": _jsonable(self.params), "seed": self.seed, "classes": classes}


def parse_classes(text: str | Sequence[str] | None, class_names: list[str]) -> str | tuple[int, ...]:
    """``predicted`` / ``true`` / ``all``, or class indices or names (comma-separated)."""
    from xai_core.service import resolve_class

    if text is None:
        return "all"
    parts = [p.strip() for p in ([text] if isinstance(text, str) else list(text)) for p in p.split(",")]
    parts = [p for p in parts if p]
    if len(parts) == 1 and parts[0].lower() in CLASS_CHOICES:
        return parts[0].lower()
    if not parts:
        raise InputError("--classes is empty; use predicted, true, all or class names/indices")
    chosen = []
    for p in parts:
        index = resolve_class(p, class_names, 0)
        if index not in chosen:
            chosen.append(index)
    return tuple(chosen)


def classes_for(request: ExplainRequest, label: int, prediction: int, k: int) -> list[int]:
    if request.classes == "all":
        return list(range(k))
    if request.classes == "predicted":
        return [prediction]
    if request.classes == "true":
        return [label]
    return list(request.classes)


@dataclass
class ChunkExplanation:
    results: list[ItemExplanation]
    errors: dict[int, str]


def explain_chunk(model, dataset: LabelledSet, indices: list[int], request: ExplainRequest) -> ChunkExplanation:
    """One chunk: read the items, predict them, explain each against its classes (the
    unit of work of every engine). A failing item gets its error; the others go on.
    Where the explanation's own pass finds each item's predicted class
    (:meth:`SetModel.predicts_in_pass`), that pass is the prediction."""
    ok, contents, prepared, errors = read_items(model, dataset, indices)
    if not ok:
        return ChunkExplanation([], errors)
    in_pass = model.predicts_in_pass(request.method, request.classes)
    probs = [None] * len(ok) if in_pass else model.probabilities(prepared)
    items = [(i, dataset.names[i], int(dataset.labels[i]), c, p) for i, c, p in zip(ok, contents, probs, strict=True)]
    classes = None if in_pass else \
        [classes_for(request, label, int(np.argmax(p)), model.num_classes) for _, _, label, _, p in items]
    args = (request.method, request.params, request.seed, request.background, list(request.feature_names))
    inputs = dict(zip(ok, prepared, strict=True))
    try:
        results = model.explain(items, classes, *args, prepared=prepared)
    except XaiError as exc:
        results = []
        for n, item in enumerate(items):  # find the item that fails
            try:
                results.extend(model.explain([item], None if in_pass else [classes[n]], *args,
                                             prepared=prepared[n:n + 1]) if len(items) > 1 else [])
            except XaiError as exc_one:
                errors[item[0]] = f"{item[1]}: {exc_one}"
        if len(items) == 1:
            errors[items[0][0]] = f"{items[0][1]}: {exc}"
    for result in results:
        result.input = inputs[result.index]
    return ChunkExplanation(results, errors)


def explain_selection(
    model,
    dataset: LabelledSet,
    indices: Sequence[int],
    request: ExplainRequest,
    *,
    engine=None,
    chunk_size: int | None = None,
    progress: ProgressCallback | None = None,
    errors: dict[int, str] | None = None,
) -> Iterator[ItemExplanation]:
    """Yield each selected item's explanation, in selection order, one chunk at a
    time (``chunk_size`` items, default :func:`default_chunk_size`; a chunk's items
    share model batches); items that fail are recorded in ``errors`` (index ->
    message) and skipped. ``engine`` runs the chunks (default: in this process)."""
    from xai_core.sets.local import LocalEngine
    from xai_core.sets.meter import Meter

    model.check_method(request.method)
    indices = list(indices)
    n = len(indices)
    size = max(1, chunk_size or default_chunk_size(model, request.method))
    chunks = (indices[s:s + size] for s in range(0, n, size))
    meter = Meter(n, f"explained with {request.method}", engine)
    if progress is not None and n:
        progress(0.0, f"explaining {n} item(s) with {request.method}")
    results = (engine if engine is not None else LocalEngine(model, dataset)).run(explain_chunk, chunks, request)
    for chunk in results:
        if errors is not None:
            errors.update(chunk.errors)
        yield from chunk.results
        meter.add(len(chunk.results) + len(chunk.errors))
        meter.report(progress)


SHARED_BYTES = 512 * 2**20  # what the items of a chunk may hold in requested rows at once


def default_chunk_size(model, method: str) -> int:
    """Items explained together: up to a model batch of them for the methods that
    need gradients (one row or a few per item per pass, so items share the passes),
    fewer where each item's own batch of ``batch_size`` rows times the items would
    pass :data:`SHARED_BYTES` (large inputs, many samples); 4 for the perturbation
    methods, whose every item already fills its own batches (packing them together
    gained nothing when measured, and holds more memory)."""
    if model.kind == "image":
        from xai_core.explainers import get_explainer
        from xai_core.explainers.cam_family import ClassActivationMap
        from xai_core.sets.batched import shares_batches

        if shares_batches(method):
            h, w = model.model.spec.size
            explainer = get_explainer(method)
            rows = 1 if isinstance(explainer, ClassActivationMap) and explainer.uses_gradients else model.batch_size
            per_item = rows * h * w * 3 * 4 * 3  # the path points, their differences and their gradients
            return max(1, min(64, model.batch_size, SHARED_BYTES // per_item))
    return 4


class SetSummary:
    """Running summaries over explained items (memory: one map or row per class).

    ``mean_abs[c]``: mean |attribution| of class c over the items explained for it
    (a map for images, a vector per feature for rows); ``mean_signed[c]``: the
    class-mean map (signed). ``counts[c]``: items explained for class c.
    """

    def __init__(self, class_names: list[str]) -> None:
        self.class_names = list(class_names)
        self.counts = np.zeros(len(class_names), np.int64)
        self._abs: dict[int, np.ndarray] = {}
        self._signed: dict[int, np.ndarray] = {}

    def add(self, result: ItemExplanation) -> None:
        for c, att in zip(result.classes, result.attributions, strict=True):
            a = np.asarray(att, np.float64)
            if c not in self._abs:
                self._abs[c] = np.zeros_like(a)
                self._signed[c] = np.zeros_like(a)
            self._abs[c] += np.abs(a)
            self._signed[c] += a
            self.counts[c] += 1

    @property
    def classes(self) -> list[int]:
        return sorted(self._abs)

    def mean_abs(self, c: int) -> np.ndarray:
        return (self._abs[c] / max(1, self.counts[c])).astype(np.float32)

    def mean_signed(self, c: int) -> np.ndarray:
        return (self._signed[c] / max(1, self.counts[c])).astype(np.float32)

    def per_class(self) -> dict[str, float]:
        """Mean |attribution| per explained class (averaged over pixels or features)."""
        return {self.class_names[c]: round(float(self.mean_abs(c).mean()), 8) for c in self.classes}

    def per_feature(self, feature_names: Sequence[str]):
        """Rows: features x explained classes table of mean |attribution|, largest first."""
        import pandas as pd

        frame = pd.DataFrame({self.class_names[c]: self.mean_abs(c) for c in self.classes},
                             index=pd.Index(list(feature_names), name="feature"))
        return frame.loc[frame.mean(axis=1).sort_values(ascending=False).index]

    def arrays(self) -> dict[str, np.ndarray]:
        """For an .npz: classes, counts, mean_abs and mean_signed stacked per class."""
        cs = self.classes
        if not cs:
            return {"classes": np.zeros(0, np.int64)}
        return {
            "classes": np.array(cs, np.int64),
            "counts": self.counts[cs],
            "mean_abs": np.stack([self.mean_abs(c) for c in cs]),
            "mean_signed": np.stack([self.mean_signed(c) for c in cs]),
        }
