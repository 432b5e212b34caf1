"""Explain several items in shared model batches, with the one-item path's numbers.

Every method draws its perturbations, noise, path points or background samples
from its own seeded RNG and asks the adapter for predictions and gradients in
batches. :func:`explain_items` runs the ordinary one-item service call
(:func:`xai_core.service.explain_classes`) for each of N items at once, each in
its own thread, over a per-item view of the model whose ``predict``,
``outputs`` (so ``target_scores``), ``input_gradients`` and
``layer_activations_and_gradients`` do not run the model
themselves: they wait until every live item has asked for its next batch, and
then one call per (operation, target class, layer) runs all the items' rows
together, ``batch_size`` rows at a time. Each item's RNG, the batches it asks for
and the order of its requests are exactly those of the one-item path, so the
answers are the one-item path's up to the float rounding of a different batch
composition (the same items, the same seed, the same numbers to ~1e-6 relative).

This covers every method at once: gradients (saliency, SmoothGrad, Integrated
Gradients, SHAP expected gradients), the CAM family (one layer pass for every
item of a class), and the perturbation methods (occlusion, LIME, SHAP Partition,
Kernel SHAP: each item's perturbed batch joins the other items' in one forward
pass). Rows that ask for "the predicted class" (``target=None``) are never mixed
with other items' rows: that choice depends on the batch's first row.

A model in the confined worker (an uploaded file) runs the whole call inside its
worker (:func:`~xai_core.worker.client.runs_in_worker`): one round trip per chunk.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_core.worker.ceiling import current_watch, joining
from xai_core.worker.client import runs_in_worker

BATCHED_OPS = ("predict", "outputs", "input_gradients", "layer_activations_and_gradients")


@dataclass
class ClassMap:
    """One item explained for one class: the map at model input resolution (H x W,
    float32, finite), the model evaluations it took, and whether it is signed;
    ``probabilities`` when the item's predicted class was found in the same pass
    (:func:`predicts_in_pass`)."""

    target: int
    attribution: np.ndarray
    model_evals: int
    signed: bool
    elapsed_s: float = 0.0
    probabilities: np.ndarray | None = None  # the item's class probabilities, when this pass found them

    @classmethod
    def of(cls, explanation: Any) -> ClassMap:
        return cls(int(explanation.target), explanation.attribution, int(explanation.model_evals),
                   bool(explanation.signed), float(explanation.elapsed_s))


class _Request:
    __slots__ = ("op", "view", "parts", "target", "layer", "return_probs", "group", "result", "error", "done")

    def __init__(self, op: str, view: Any, parts: list[np.ndarray], target: int | None, layer: str | None,
                 return_probs: bool, group: Any) -> None:
        self.op, self.view, self.parts, self.target, self.layer = op, view, parts, target, layer
        self.return_probs, self.group = return_probs, group
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class Batcher:
    """Gathers the next request of each of ``live`` items and runs them together.

    A round runs when every live item is waiting (or has finished), so how the
    requests are grouped never depends on thread timing. ``calls`` counts the model
    calls made, ``rows`` the rows they carried.
    """

    def __init__(self, live: int, batch_size: int) -> None:
        self._cv = threading.Condition()
        self._live = live
        self._waiting: list[_Request] = []
        self.batch_size = max(1, int(batch_size))
        self.calls = 0
        self.rows = 0

    def ask(self, request: _Request) -> Any:
        with self._cv:
            self._waiting.append(request)
            self._maybe_run()
            while not request.done:
                self._cv.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def leave(self) -> None:
        with self._cv:
            self._live -= 1
            self._maybe_run()

    def _maybe_run(self) -> None:
        if not self._waiting or len(self._waiting) < self._live:
            return
        waiting, self._waiting = self._waiting, []
        groups: dict[Any, list[_Request]] = {}
        for r in waiting:
            groups.setdefault(r.group, []).append(r)
        for members in groups.values():
            try:
                self._run_group(members)
            except BaseException as exc:  # noqa: BLE001 - handed to every item of the group
                for r in members:
                    r.error = exc
            for r in members:
                r.done = True
        self._cv.notify_all()

    def _run_group(self, members: list[_Request]) -> None:
        first = members[0]
        adapter = first.view._plain  # the model itself: its own calls inside an op are not gathered again
        joined = [np.concatenate([r.parts[i] for r in members]) for i in range(len(first.parts))]
        n = len(joined[0])
        outs: list[tuple] = []
        for start in range(0, n, self.batch_size):
            batch = adapter.join([p[start:start + self.batch_size] for p in joined]) if len(joined) > 1 \
                else joined[0][start:start + self.batch_size]
            self.calls += 1
            self.rows += min(self.batch_size, n - start)
            if first.op == "predict":
                outs.append((adapter.predict(batch, self.batch_size),))
            elif first.op == "outputs":
                outs.append((adapter.outputs(batch, self.batch_size),))
            elif first.op == "input_gradients":
                got = adapter.input_gradients(batch, first.target, self.batch_size, return_probs=first.return_probs)
                outs.append((_parts(got[0]), *got[1:]))
            else:
                got = adapter.layer_activations_and_gradients(batch, first.target, first.layer,
                                                              return_probs=first.return_probs)
                outs.append(tuple(got))
        columns = [_concat([o[k] for o in outs]) for k in range(len(outs[0]))]
        offset = 0
        for r in members:
            m = len(r.parts[0])
            picked = [_take(c, offset, offset + m) for c in columns]
            offset += m
            if r.op in ("predict", "outputs"):
                r.result = picked[0]
            elif r.op == "input_gradients":
                grads = picked[0]
                r.result = (adapter.join(grads) if len(grads) > 1 else grads[0], *picked[1:])
            else:
                r.result = tuple(picked)


def _parts(batch) -> list[np.ndarray]:
    return list(batch) if isinstance(batch, (list, tuple)) else [batch]


def _concat(values: list) -> Any:
    if isinstance(values[0], list):  # one array per model input
        return [np.concatenate([v[i] for v in values]) for i in range(len(values[0]))]
    return np.concatenate(values)


def _take(column: Any, start: int, stop: int) -> Any:
    if isinstance(column, list):
        return [c[start:stop] for c in column]
    return column[start:stop]


_VIEW_CLASSES: dict[type, type] = {}


def _view_class(cls: type) -> type:
    """A subclass of the adapter's class whose batched operations go to the batcher."""
    if cls in _VIEW_CLASSES:
        return _VIEW_CLASSES[cls]

    def predict(self, batch, batch_size=None):
        parts = self.split(batch)
        return self._batcher.ask(_Request("predict", self, parts, None, None, False, ("predict",)))

    def outputs(self, batch, batch_size=None):  # target_scores and explained_scores come through here
        parts = self.split(batch)
        return self._batcher.ask(_Request("outputs", self, parts, None, None, False, ("outputs",)))

    def input_gradients(self, batch, target, batch_size=None, return_probs=False):
        parts = self.split(batch)
        group = ("grad", target, return_probs) if target is not None else ("grad-own", id(self), self._asked())
        return self._batcher.ask(_Request("input_gradients", self, parts, target, None, return_probs, group))

    def layer_activations_and_gradients(self, batch, target, layer, return_probs=False):
        parts = self.split(batch)
        group = ("layer", target, layer, return_probs) if target is not None else \
            ("layer-own", id(self), self._asked())
        return self._batcher.ask(_Request("layer_activations_and_gradients", self, parts, target, layer,
                                          return_probs, group))

    def _asked(self):
        self._count = getattr(self, "_count", 0) + 1
        return self._count

    view = type(f"Batched{cls.__name__}", (cls,), {
        "predict": predict, "outputs": outputs, "logits_or_probs": outputs, "input_gradients": input_gradients,
        "layer_activations_and_gradients": layer_activations_and_gradients, "_asked": _asked,
    })
    _VIEW_CLASSES[cls] = view
    return view


def batched_view(adapter: Any, batcher: Batcher) -> Any:
    """A shallow copy of ``adapter`` (sharing its model and lock) whose batched
    operations are answered by ``batcher``."""
    view = copy.copy(adapter)
    view.__class__ = _view_class(type(adapter))
    view._batcher = batcher
    view._plain = adapter
    return view


def shares_batches(method: str) -> bool:
    """Whether items gain from sharing batches: the methods that need gradients ask
    for one row or a few per item and pass (a CAM's layer pass, a saliency
    gradient, a chunk of path points). A perturbation method's every item already
    fills whole batches of its own perturbations; packing several items' into one
    forward pass measured no faster (occlusion) or slower (LIME, SHAP Partition:
    their many small sequential steps wait for every item at each step), so those
    run item after item."""
    from xai_core.explainers import get_explainer
    from xai_core.types import Capability

    explainer = get_explainer(method)
    if not getattr(explainer, "uses_gradients", True):  # the gradient-free CAMs (Score-CAM, Eigen-CAM, ...)
        return False
    return bool(explainer.requires & {Capability.INPUT_GRADIENTS, Capability.LAYER_GRADIENTS})


@runs_in_worker
def explain_items(
    adapter: Any,
    images: Sequence[np.ndarray],
    method: str,
    params: dict[str, Any] | None,
    *,
    classes: Sequence[Sequence[int]] | None,
    seed: int = 0,
    batch_size: int | None = None,
    prepared: Sequence[np.ndarray] | None = None,
    probabilities: np.ndarray | None = None,
) -> list[list[Any]]:
    """Explain each of N images against its classes in shared batches.

    ``images``: N RGB uint8 images (H x W x 3, any size); ``classes``: N lists of
    class indices. Returns N lists of :class:`ClassMap`, one per class, equal to
    ``explain_classes(adapter, images[i], method, params, classes=classes[i],
    seed=seed)`` (see the module's note on rounding). Items share batches for the
    methods of :func:`shares_batches`; the CAM family skips the per-item service
    call altogether (:func:`_explain_cams`), and uses ``prepared`` (the images
    already preprocessed for the model) and their ``probabilities`` (N x K) when
    the caller has them, instead of preparing and predicting them again.
    ``classes=None`` (only where :func:`predicts_in_pass`): each item against its
    predicted class, found by the explanation's own layer pass, whose
    probabilities come back in the ClassMaps.
    """
    from xai_core.explainers import get_explainer
    from xai_core.explainers.cam_family import ClassActivationMap
    from xai_core.service import explain_classes

    n = len(images)
    size = int(batch_size or adapter.default_batch_size)
    if classes is None:
        if not predicts_in_pass(adapter, method):
            raise ValueError(f"{method} cannot find the predicted class in its own pass on {adapter.name}")
        return _explain_cams(adapter, images, method, params, None, seed, size, prepared, None)
    if n != len(classes):
        raise ValueError("one list of classes per image")
    explainer = get_explainer(method)
    if n > 1 and isinstance(explainer, ClassActivationMap) and explainer.uses_gradients and not adapter.multi_input:
        return _explain_cams(adapter, images, method, params, classes, seed, size, prepared, probabilities)
    if n == 1 or not shares_batches(method):
        return [[ClassMap.of(e) for e in explain_classes(adapter, image, method, params, classes=list(wanted),
                                                          seed=seed, batch_size=size)]
                for image, wanted in zip(images, classes, strict=True)]
    batcher = Batcher(n, size)
    results: list[Any] = [None] * n
    errors: list[BaseException | None] = [None] * n
    watch = current_watch()  # every item's thread runs under this call's memory watch

    def one(i: int) -> None:
        try:
            with joining(watch):
                results[i] = [ClassMap.of(e) for e in explain_classes(
                    batched_view(adapter, batcher), images[i], method, params, classes=list(classes[i]), seed=seed,
                    batch_size=size)]
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in item order
            errors[i] = exc
        finally:
            batcher.leave()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for exc in errors:
        if exc is not None:
            raise exc
    return results


def predicts_in_pass(adapter: Any, method: str) -> bool:
    """Whether ``method`` explains items against their predicted classes in one
    layer pass that also finds those classes (so no prediction pass before it):
    the gradient CAMs on a one-input model whose passes take one target per row."""
    from xai_core.explainers import get_explainer
    from xai_core.explainers.cam_family import ClassActivationMap

    explainer = get_explainer(method)
    return (isinstance(explainer, ClassActivationMap) and explainer.uses_gradients and not adapter.multi_input
            and bool(getattr(adapter, "targets_per_row", False)))


def _explain_cams(adapter: Any, images: Sequence[np.ndarray], method: str, params: dict[str, Any] | None,
                  classes: Sequence[Sequence[int]] | None, seed: int, size: int,
                  prepared: Sequence[np.ndarray] | None, probabilities: np.ndarray | None) -> list[list[ClassMap]]:
    """The gradient CAMs over many images: one layer pass for ``size`` (image,
    class) pairs at a time (every pair its own class where the adapter takes one
    target per row, else one pass per class), the maps made by the method's own
    :meth:`~xai_core.explainers.cam_family.ClassActivationMap.maps_from_layer` (what
    its one-item ``run`` makes of its own layer pass), with no per-item service call.
    ``classes=None``: each image against its predicted class, found in the same pass."""
    from xai_core.adapters.base import EACH_PREDICTED
    from xai_core.explainers import get_explainer
    from xai_core.explainers.base import Context
    from xai_core.service import check_method, prepare_inputs, resolve_target

    explainer = get_explainer(method)
    check_method(adapter, method)
    parsed = explainer.params(params)
    layer = explainer.map_layer(adapter, None)
    start = time.perf_counter()
    xs = np.asarray(prepared, np.float32) if prepared is not None else \
        np.stack([prepare_inputs(adapter, image)[0] for image in images])
    in_pass = classes is None
    if in_pass:
        probs = np.zeros((len(xs), adapter.num_classes), np.float32)
        wanted = [[None] for _ in xs]
    else:
        probs = probabilities if probabilities is not None else adapter.predict(xs, size)
        wanted = [[resolve_target(adapter, c, probs[i]) for c in cs] for i, cs in enumerate(classes)]
    pairs = [(i, k, c) for i, cs in enumerate(wanted) for k, c in enumerate(cs)]
    if in_pass or getattr(adapter, "targets_per_row", False):
        groups = [pairs[s:s + size] for s in range(0, len(pairs), size)]
    else:
        by_class: dict[int, list[tuple[int, int, Any]]] = {}
        for pair in pairs:
            by_class.setdefault(pair[2], []).append(pair)
        groups = [members[s:s + size] for members in by_class.values() for s in range(0, len(members), size)]
    out: list[list[Any]] = [[None] * len(cs) for cs in wanted]
    signed = parsed.rectify == "none"
    for group in groups:
        rows = [i for i, _, _ in group]
        if in_pass:
            target: Any = EACH_PREDICTED
        elif getattr(adapter, "targets_per_row", False):
            target = np.array([c for _, _, c in group], np.int64)
        else:
            target = group[0][2]
        acts, grads, _, p = adapter.layer_activations_and_gradients(xs[rows], target, layer, return_probs=True)
        if in_pass:
            probs[rows] = p
            targets = [int(c) for c in np.argmax(p, axis=1)]  # the pass's own choice (ModelAdapter._pick)
        else:
            targets = [c for _, _, c in group]

        def context(j: int, group=group, targets=targets) -> Context:
            ctx = Context(adapter, xs[group[j][0]], targets[j], seed, size, layer=layer, probs=probs[group[j][0]])
            ctx.params = parsed
            return ctx

        maps = np.nan_to_num(explainer.maps_from_layer(context, parsed, layer, acts, grads, xs.shape[1:3]),
                             nan=0.0, posinf=0.0, neginf=0.0)
        for j, (i, k, _) in enumerate(group):
            # one layer pass, as the one-item path counts it (its probabilities come from that pass)
            out[i][k] = ClassMap(targets[j], maps[j], 1, signed, probabilities=probs[i] if in_pass else None)
    elapsed = (time.perf_counter() - start) / max(1, len(pairs))
    for row in out:
        for m in row:
            m.elapsed_s = elapsed
    return out


__all__ = ["BATCHED_OPS", "Batcher", "ClassMap", "batched_view", "explain_items", "predicts_in_pass", "shares_batches"]
