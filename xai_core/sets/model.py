"""A classifier seen the way a labelled set uses it: inputs in, probabilities out,
and one item explained against several classes.

One face over the image adapters (:mod:`xai_core.service`) and the tabular models
(:mod:`xai_core.service.rows`), so evaluation, selection, the command line and
the Ray engine never ask which kind of model they hold. :class:`ModelRef` is the
picklable recipe that opens the same model again in another process (a Ray worker).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xai_core.loading.models import SpecOverrides
from xai_core.sets.data import LabelledSet
from xai_core.types import InputError, UnsupportedError


@dataclass(frozen=True)
class ModelRef:
    """How to open a model: a zoo name or file path plus the loading options."""

    ref: str
    kind: str = "image"  # "image" or "rows"
    framework: str | None = None
    arch: str | None = None
    overrides: SpecOverrides = field(default_factory=SpecOverrides)
    labels: tuple[str, ...] | None = None
    trust_pickle: bool = False
    device: str = "auto"
    batch_size: int = 16

    def open(self) -> SetModel:
        return SetModel(self.adapter(), self.kind, self.batch_size, self)

    def adapter(self) -> Any:
        """The model itself (a ModelAdapter), opened as this reference says."""
        from xai_core.loading.models import open_model

        labels = list(self.labels) if self.labels else None
        if self.kind == "rows":
            return open_model(self.ref, framework=self.framework, arch=self.arch, labels=labels,
                              trust_pickle=self.trust_pickle, rows=True)
        return open_model(self.ref, framework=self.framework, arch=self.arch, overrides=self.overrides,
                          labels=labels, trust_pickle=self.trust_pickle, device=self.device,
                          batch_size=self.batch_size)


def guess_kind(ref: str) -> str:
    """'rows' for a tabular zoo name, else 'image' (files: say --kind rows)."""
    from model_zoo.tabular import TABULAR_ZOO

    return "rows" if ref in TABULAR_ZOO else "image"


@dataclass
class ItemExplanation:
    """One item explained against ``classes``: ``attributions`` is C x H x W (images,
    signed maps at model input resolution) or C x F (rows)."""

    index: int
    name: str
    label: int
    prediction: int
    probabilities: np.ndarray  # (K,)
    classes: list[int]
    attributions: np.ndarray
    model_evals: int
    elapsed_s: float
    signed: bool = True
    input: np.ndarray | None = None  # the prepared model input (H x W x C in [0, 1]) or the row (F,)


class SetModel:
    """``model`` is an image :class:`~xai_core.adapters.base.ModelAdapter` (kind
    "image") or a row model (a vector-input adapter from ``open_model(..., rows=True)``, kind "rows")."""

    def __init__(self, model: Any, kind: str, batch_size: int = 16, ref: ModelRef | None = None) -> None:
        self.model, self.kind, self.batch_size, self.ref = model, kind, int(batch_size), ref
        if kind == "rows":
            if model.num_outputs < 2 or model.output_kind not in ("probability", "logit"):
                raise UnsupportedError(
                    f"{model.name} gives {model.num_outputs} {model.output_kind} output(s); a labelled set needs a "
                    "classifier with one probability or logit per class")
            self.class_names = list(model.output_names)
        else:
            self.class_names = list(model.labels)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def check_set(self, dataset: LabelledSet) -> None:
        if dataset.kind != self.kind:
            raise InputError(f"{dataset.source} holds {dataset.kind} but {self.name} reads "
                             f"{'images' if self.kind == 'image' else 'table rows'}")
        if self.kind == "rows":
            self.model.check_features(len(dataset.feature_names))

    def check_method(self, method: str) -> None:
        if self.kind == "rows":
            from xai_core.service.rows import check_tabular_method

            check_tabular_method(self.model, method)
        else:
            from xai_core.service import check_method

            check_method(self.model, method)

    def method_params(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """The method's parameters, parsed and checked (an InputError for bad ones)."""
        from dataclasses import asdict

        if self.kind == "rows":
            from xai_core.service.rows import get_tabular_explainer

            return asdict(get_tabular_explainer(method).params(params))
        from xai_core.explainers import get_explainer

        return asdict(get_explainer(method).params(params))

    def prepare(self, content: np.ndarray) -> np.ndarray:
        """An item's content -> the canonical model input (H x W x C in [0, 1], or F)."""
        if self.kind == "rows":
            return np.asarray(content, np.float32).reshape(-1)
        from xai_core.inputs.images import preprocess

        return preprocess(content, self.model.spec)

    def prepare_many(self, contents: np.ndarray) -> np.ndarray:
        """N images of one size (N x H x W x 3 uint8) -> N canonical inputs, each
        :meth:`prepare` of its image, in one batch."""
        from xai_core.inputs.images import preprocess_batch

        return preprocess_batch(contents, self.model.spec)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """N prepared inputs -> N x K class probabilities (float32)."""
        if self.kind == "image":
            return np.asarray(self.model.predict(x, batch_size=self.batch_size), np.float32)
        out = np.asarray(self.model.predict(x), np.float64)
        if self.model.output_kind == "logit":
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out.astype(np.float32)

    def explain(
        self,
        items: list[tuple[int, str, int, np.ndarray, np.ndarray | None]],
        classes: list[list[int]] | None,
        method: str,
        params: dict[str, Any] | None,
        seed: int,
        background: np.ndarray | None = None,
        feature_names: list[str] | None = None,
        prepared: list[np.ndarray] | None = None,
    ) -> list[ItemExplanation]:
        """Explain each item (index, name, label, content, probabilities) against its
        classes. Every item and class uses the same ``seed``, so results do not depend
        on how items are grouped or which worker runs them. Rows need the set's
        ``background`` rows (N x F) for the methods' reference values; ``prepared``
        (the items' model inputs, when the caller has them) saves preparing them again.
        ``classes=None`` (where :meth:`predicts_in_pass`): each item against its
        predicted class, found by the explanation's own pass (the items' probabilities
        are then None and come back in the results)."""
        if self.kind == "rows":
            return self._explain_rows(items, classes, method, params, seed, background, feature_names)
        from xai_core.sets.batched import explain_items

        # the items share model batches (xai_core.sets.batched); each keeps its own seeded draws
        start = time.perf_counter()
        found = explain_items(self.model, [item[3] for item in items], method, params,
                              classes=None if classes is None else [list(c) for c in classes], seed=seed,
                              batch_size=self.batch_size, prepared=prepared,
                              probabilities=None if classes is None else np.stack([item[4] for item in items]))
        elapsed = (time.perf_counter() - start) / max(1, len(items))
        out = []
        for (index, name, label, _, probs), exps in zip(items, found, strict=True):
            probs = exps[0].probabilities if probs is None else probs
            out.append(ItemExplanation(index, name, label, int(np.argmax(probs)), probs, [e.target for e in exps],
                                       np.stack([e.attribution.astype(np.float32) for e in exps]),
                                       sum(e.model_evals for e in exps), elapsed, exps[0].signed))
        return out

    def predicts_in_pass(self, method: str, classes) -> bool:
        """Whether explaining against the predicted class (``classes`` "predicted")
        finds that class in the explanation's own pass, so a chunk needs no
        prediction pass first (:func:`~xai_core.sets.batched.predicts_in_pass`)."""
        if self.kind != "image" or classes != "predicted":
            return False
        from xai_core.sets.batched import predicts_in_pass

        return predicts_in_pass(self.model, method)

    def _explain_rows(self, items, classes, method, params, seed, background, feature_names):
        from xai_core.inputs.tables import TabularData
        from xai_core.service.rows import explain_rows

        if background is None:
            raise InputError("explaining rows needs the set's rows as background")
        names = list(feature_names or [f"x{j}" for j in range(background.shape[1])])
        # the whole set is the methods' background and the items are its rows, so a
        # row's answer does not depend on which rows a worker is given with it
        data = TabularData(np.asarray(background, np.float32), names, source="set")
        start = time.perf_counter()
        found: dict[tuple[int, int], np.ndarray] = {}
        evals = 0
        for c in sorted({c for wanted in classes for c in wanted}):
            rows = [item[0] for item, wanted in zip(items, classes, strict=True) if c in wanted]
            summary = explain_rows(self.model, data, rows, method, params, target=c, seed=seed)
            evals += summary.model_evals
            for row, exp in zip(rows, summary.explanations, strict=True):
                found[(row, c)] = np.asarray(exp.attributions[0], np.float32)  # in the order of names
        elapsed = (time.perf_counter() - start) / max(1, len(items))
        return [
            ItemExplanation(index, name, label, int(np.argmax(probs)), probs, list(wanted),
                            np.stack([found[(index, c)] for c in wanted]), evals // max(1, len(items)), elapsed)
            for (index, name, label, _, probs), wanted in zip(items, classes, strict=True)
        ]
