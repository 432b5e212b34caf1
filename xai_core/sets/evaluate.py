"""Evaluate a classifier on a labelled set, streamed in batches, and choose items.

:func:`evaluate` reads the set one batch at a time (through an engine: in-process
by default, or Ray) and keeps only each item's class probabilities: accuracy,
per-class precision and recall, the confusion matrix (rows = true class, columns =
predicted) and the per-item table follow from them. Misclassified items are ranked
by how wrong the model is: the cross-entropy loss -log p(true class), largest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xai_core.sets.data import LabelledSet
from xai_core.types import InputError

ProgressCallback = Callable[[float, str], None]
SELECTIONS = ("misclassified", "all", "class", "cell", "random", "items")


@dataclass
class ChunkPrediction:
    """Probabilities of the readable items of one chunk; ``errors`` for the others."""

    indices: list[int]
    probabilities: np.ndarray  # len(indices) x K
    errors: dict[int, str]


def read_items(model, dataset: LabelledSet, indices: list[int]) -> tuple[list[int], Sequence[np.ndarray],
                                                                        np.ndarray, dict[int, str]]:
    """(readable indices, their contents, their prepared inputs stacked (N x ...),
    errors of the others). A set that holds its images as one array is read and
    prepared as one batch (:meth:`LabelledSet.read_many`, :meth:`SetModel.prepare_many`);
    other sets one item at a time."""
    from xai_core.types import XaiError

    errors = {i: dataset.errors[i] for i in indices if i in dataset.errors}
    ok = [i for i in indices if i not in errors]
    many = dataset.read_many(ok) if ok and model.kind == "image" else None
    if many is not None:
        return ok, many, model.prepare_many(many), errors
    ok, contents, prepared = [], [], []
    for i in indices:
        if i in errors:
            continue
        try:
            content = dataset.read(i)
            x = model.prepare(content)
        except XaiError as exc:
            errors[i] = str(exc)
            continue
        ok.append(i)
        contents.append(content)
        prepared.append(x)
    return ok, contents, np.stack(prepared) if prepared else np.zeros((0,), np.float32), errors


def predict_chunk(model, dataset: LabelledSet, indices: list[int]) -> ChunkPrediction:
    """One batch: read, prepare and predict the items (the unit of work of every engine)."""
    ok, _, prepared, errors = read_items(model, dataset, indices)
    if not ok:
        return ChunkPrediction([], np.zeros((0, model.num_classes), np.float32), errors)
    return ChunkPrediction(ok, model.probabilities(prepared), errors)


@dataclass
class Evaluation:
    """A model's predictions over a labelled set.

    ``probabilities`` is N x K (rows of unreadable items are NaN and their
    ``predictions`` -1); ``labels`` the true class per item (-1 where unusable).
    """

    names: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    class_names: list[str]
    errors: dict[int, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    model: str = ""
    source: str = ""

    @property
    def predictions(self) -> np.ndarray:
        pred = np.full(len(self.names), -1, np.int64)
        ok = self.valid
        pred[ok] = np.argmax(self.probabilities[ok], axis=1)
        return pred

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask of the items that were read and have a usable label."""
        mask = np.isfinite(self.probabilities).all(axis=1) & (self.labels >= 0)
        if self.errors:
            mask[list(self.errors)] = False
        return mask

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    def loss(self) -> np.ndarray:
        """Per-item cross-entropy -log p(true class) (NaN for unusable items)."""
        out = np.full(len(self.names), np.nan)
        ok = self.valid
        p = self.probabilities[ok, self.labels[ok]].astype(np.float64)
        out[ok] = -np.log(np.clip(p, 1e-12, 1.0))
        return out

    def confusion(self) -> np.ndarray:
        """K x K counts: row = true class, column = predicted class."""
        k = len(self.class_names)
        ok = self.valid
        m = np.zeros((k, k), np.int64)
        np.add.at(m, (self.labels[ok], self.predictions[ok]), 1)
        return m

    def metrics(self) -> dict[str, Any]:
        m = self.confusion()
        total = int(m.sum())
        tp = np.diag(m).astype(np.float64)
        predicted, actual = m.sum(axis=0), m.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(predicted > 0, tp / predicted, np.nan)
            recall = np.where(actual > 0, tp / actual, np.nan)
        per_class = [
            {"class": i, "name": name, "support": int(actual[i]), "predicted": int(predicted[i]),
             "precision": _num(precision[i]), "recall": _num(recall[i])}
            for i, name in enumerate(self.class_names)
        ]
        return {
            "items": len(self.names),
            "evaluated": total,
            "failed": len(self.names) - total,
            "accuracy": _num(tp.sum() / total) if total else None,
            "misclassified": int(total - tp.sum()),
            "per_class": per_class,
            "confusion": m.tolist(),
            "elapsed_s": round(self.elapsed_s, 4),
        }

    def misclassified(self) -> list[int]:
        """Indices of wrongly predicted items, most wrong (largest loss) first."""
        ok = self.valid & (self.predictions != self.labels)
        idx = np.flatnonzero(ok)
        loss = self.loss()[idx]
        return [int(i) for i in idx[np.lexsort((idx, -loss))]]

    def select(self, how: str, *, top: int | None = None, cls: int | None = None,
               cell: tuple[int, int] | None = None, seed: int = 0, items: list[int] | None = None) -> list[int]:
        """Item indices to explain.

        ``misclassified``: wrong ones, most wrong first; ``all``: every usable item;
        ``class``: items whose true class is ``cls``; ``cell``: items with true class
        ``cell[0]`` predicted as ``cell[1]`` (most wrong first); ``random``: a seeded
        sample of ``top`` items; ``items``: the given indices. ``top`` keeps the first.
        """
        ok = self.valid
        loss = self.loss()
        k = len(self.class_names)
        if how == "misclassified":
            chosen = self.misclassified()
        elif how == "all":
            chosen = [int(i) for i in np.flatnonzero(ok)]
        elif how == "class":
            if cls is None or not 0 <= cls < k:
                raise InputError(f"choose a class 0..{k - 1} to select")
            chosen = [int(i) for i in np.flatnonzero(ok & (self.labels == cls))]
        elif how == "cell":
            if cell is None or not all(0 <= c < k for c in cell):
                raise InputError(f"choose a confusion-matrix cell TRUE,PREDICTED with classes 0..{k - 1}")
            idx = np.flatnonzero(ok & (self.labels == cell[0]) & (self.predictions == cell[1]))
            chosen = [int(i) for i in idx[np.lexsort((idx, -loss[idx]))]]
        elif how == "random":
            idx = np.flatnonzero(ok)
            n = min(len(idx), top if top is not None else 10)
            chosen = [int(i) for i in np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))]
        elif how == "items":
            chosen = []
            for i in items or []:
                if not 0 <= i < len(self.names) or not ok[i]:
                    raise InputError(f"item {i} is not a usable item of the set (0..{len(self.names) - 1})")
                chosen.append(int(i))
        else:
            raise InputError(f"unknown selection {how!r}; use one of {', '.join(SELECTIONS)}")
        return chosen[:top] if top is not None else chosen

    def table(self):
        """pandas DataFrame, one row per item: item, name, label, prediction, correct,
        loss, error, then the probability of every class."""
        import pandas as pd

        pred = self.predictions
        names = self.class_names

        def cls_name(i: int) -> str:
            return names[i] if i >= 0 else ""

        frame = pd.DataFrame({
            "item": np.arange(len(self.names)),
            "name": self.names,
            "label": self.labels,
            "label_name": [cls_name(int(i)) for i in self.labels],
            "prediction": pred,
            "prediction_name": [cls_name(int(i)) for i in pred],
            "correct": (pred == self.labels) & self.valid,
            "loss": np.round(self.loss(), 6),
            "error": [self.errors.get(i, "") for i in range(len(self.names))],
        })
        probs = pd.DataFrame(np.round(self.probabilities, 6), columns=[f"p_{n}" for n in names])
        return pd.concat([frame, probs], axis=1)


def _num(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def evaluate(
    model,
    dataset: LabelledSet,
    *,
    engine=None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """Predict every item of ``dataset`` with ``model`` (a :class:`~xai_core.sets.model.SetModel`),
    ``batch_size`` items at a time, through ``engine`` (default: in this process,
    chunk after chunk; see :mod:`xai_core.sets.runners`).

    ``progress(fraction, text)`` is called after every batch, the text saying items
    done, items per second and time left (and per worker on Ray). Memory holds one
    batch of inputs plus N x K probabilities.
    """
    from xai_core.sets.local import LocalEngine
    from xai_core.sets.meter import Meter

    model.check_set(dataset)
    n = len(dataset)
    size = int(batch_size or model.batch_size or 64)
    probs = np.full((n, model.num_classes), np.nan, np.float32)
    errors = dict(dataset.errors)
    start = time.perf_counter()
    meter = Meter(n, "evaluated", engine)
    chunks = dataset.chunks(size)
    results = (engine if engine is not None else LocalEngine(model, dataset)).run(predict_chunk, chunks)
    for chunk in results:
        if chunk.indices:
            probs[chunk.indices] = chunk.probabilities
        errors.update(chunk.errors)
        meter.add(len(chunk.indices) + len(chunk.errors))
        meter.report(progress)
    return Evaluation(list(dataset.names), dataset.labels.copy(), probs, list(model.class_names), errors,
                      time.perf_counter() - start, model.name, dataset.source)
