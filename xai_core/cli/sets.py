"""``explain-set``: evaluate a model on a labelled set and explain a selection of it.

    python -m xai_core explain-set --model M --data SET --select misclassified --top 10
        --classes all --method shap_gradient [M ...] --out DIR
        [--select all|class|cell|random|misclassified] [--class C] [--cell TRUE,PRED]
        [--kind image|rows] [--label-column NAME] [--param KEY=VALUE ...] [--seed N]
        [--engine local|ray] [--workers N] [--address HOST:PORT] [--batch-size N]
        (+ the model options of ``explain``)

DIR gets ``evaluation.csv`` (every item: label, prediction, loss, probabilities),
per selected item x method ``items/<item>__<method>.npz`` (the C x H x W or C x F
attributions, classes, probabilities, the model input), the item x class grids
``grid__<method>__<page>.png`` (20 items a page, in selection order),
``summary__<method>.npz`` / ``.png`` (class-mean maps) or ``.csv`` (mean |attribution|
per feature), and one ``results.json``. A rerun with the same model, set, method,
parameters, seed and classes skips the items whose files exist. Attributions are
streamed to disk: memory holds one chunk of items and the running summaries.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from xai_core.cli.display_args import add_grid_scale_arg, parse_image_shape
from xai_core.types import InputError

COMMAND = "explain-set"
GRID_ROWS = 20


def add_parser(subparsers) -> argparse.ArgumentParser:
    from xai_core.cli.common import add_model_args

    p = subparsers.add_parser(
        COMMAND, help="evaluate a model on a labelled set and explain a selection (e.g. the worst mistakes)",
        description="Evaluate a model on a labelled set (class folders, a zip of them, a CSV, an .npz) and "
                    "explain a selection of its items against chosen classes.")
    add_model_args(p)
    p.add_argument("--data", required=True, help="folder of class folders, .zip, .csv or .npz with x and y")
    p.add_argument("--kind", choices=("image", "rows"), help="the model's input (default: rows for a tabular "
                   "zoo model, else image)")
    p.add_argument("--label-column", help="the label column of a CSV (default: label/class/target/y)")
    p.add_argument("--image-shape", metavar="HxW[xC]",
                   help="a CSV of pixel columns: the picture shape (default: inferred when the count is a square, "
                        "e.g. 784 -> 28x28)")
    add_grid_scale_arg(p)
    p.add_argument("--select", default="misclassified", choices=("misclassified", "all", "class", "cell", "random"))
    p.add_argument("--top", type=int, help="keep the first N selected items (random: the sample size)")
    p.add_argument("--class", dest="cls", help="class index or name for --select class")
    p.add_argument("--cell", help="TRUE,PREDICTED class indices or names for --select cell")
    p.add_argument("--classes", default="all", help="explain against: predicted, true, all, or class list A,B")
    p.add_argument("--method", nargs="+", required=True)
    p.add_argument("--param", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--engine", default="local", choices=("local", "ray"))
    p.add_argument("--workers", type=int, default=2, help="Ray workers, one model replica each (default 2); more "
                   "than the cluster has room for starts as many as fit")
    p.add_argument("--address", help="Ray cluster address HOST:PORT of ray start --head, or auto (default: a local "
                   "Ray instance); Ray workers run this project's code: use clusters you control")
    p.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs per Ray worker (default: 1 on a cluster with GPUs, so one replica per GPU; else 0)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from xai_core.cli.common import report_errors

    return report_errors(lambda: _run(args), "lower --batch-size or the method's sample count")


def _item_stem(index: int, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).with_suffix("").as_posix()).strip("._") or "item"
    return f"{index:05d}_{safe[:60]}"


def _progress(prefix: str, every_s: float = 2.0):
    """Progress lines on stderr (items done, items/s, time left, per worker): at
    most one every ``every_s`` seconds, and the last."""
    last = [-1.0]

    def show(fraction: float, text: str) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last[0] >= every_s:
            last[0] = now
            print(f"{prefix}{fraction * 100:5.1f}%  {text}", file=sys.stderr, flush=True)

    return show


def _say(text: str) -> None:
    print(f"engine: {text}", file=sys.stderr, flush=True)


def _read_item(path: Path, key: str):
    """An item file written by an earlier run with the same key, else None."""
    from xai_core.sets.model import ItemExplanation

    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                return None
            return ItemExplanation(int(f["index"]), str(f["name"]), int(f["label"]), int(f["prediction"]),
                                   f["probabilities"], f["classes"].tolist(), f["attributions"], int(f["model_evals"]),
                                   float(f["elapsed_s"]), bool(f["signed"]), f["input"])
    except (OSError, KeyError, ValueError, EOFError):
        return None


def _write_item(path: Path, key: str, item) -> None:
    from xai_core.render.files import npz_bytes, write_file

    write_file(path, npz_bytes(
        key=np.array(key), index=item.index, name=np.array(item.name), label=item.label, prediction=item.prediction,
        probabilities=item.probabilities.astype(np.float32), classes=np.array(item.classes, np.int64),
        attributions=item.attributions.astype(np.float32), model_evals=item.model_evals, elapsed_s=item.elapsed_s,
        signed=item.signed, input=np.asarray(item.input, np.float32)))


def _resolve_class(text: str, names: list[str], what: str) -> int:
    from xai_core.service import resolve_class

    try:
        return resolve_class(text, names, 0)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    from xai_core.cli.common import make_output_dir, spec_overrides
    from xai_core.inputs.labels import read_labels
    from xai_core.render.files import safe_csv, write_file
    from xai_core.sets.data import open_set
    from xai_core.sets.evaluate import evaluate
    from xai_core.sets.explain import ExplainRequest, SetSummary, explain_selection, parse_classes
    from xai_core.sets.model import ModelRef, guess_kind
    from xai_core.sets.runners import open_engine

    started = time.perf_counter()
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if args.top is not None and args.top < 1:
        raise InputError("--top must be at least 1")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    if args.engine == "ray" and args.address:
        from xai_core.sets.ray import check_address

        check_address(args.address)  # before the model and the set are opened: a wrong address fails at once
    kind = args.kind or guess_kind(args.model)
    ref = ModelRef(
        args.model, kind, args.framework, args.arch,
        spec_overrides(args),
        tuple(read_labels(args.labels)) if args.labels else None,
        args.trust_pickle, args.device, args.batch_size or (64 if kind == "image" else 256),
    )
    model = ref.open()
    names = model.class_names
    per_method = _method_params(model, args)
    dataset = open_set(args.data, names, kind=kind, label_column=args.label_column,
                       image_shape=parse_image_shape(args.image_shape))
    model.check_set(dataset)
    classes = parse_classes(args.classes, names)
    out = make_output_dir(args.out)
    (out / "items").mkdir(exist_ok=True)

    with open_engine(args.engine, model, dataset, workers=args.workers, address=args.address,
                     gpus_per_worker=args.gpus_per_worker, say=_say) as engine:
        evaluation = evaluate(model, dataset, engine=engine, batch_size=ref.batch_size,
                              progress=_progress("evaluate "))
        metrics = evaluation.metrics()
        write_file(out / "evaluation.csv", safe_csv(evaluation.table()))
        print(f"{dataset.source}: {metrics['evaluated']} item(s) evaluated, accuracy {metrics['accuracy']}, "
              f"{metrics['misclassified']} misclassified, {metrics['failed']} failed")
        for i, message in sorted(evaluation.errors.items())[:20]:
            print(f"  skipped item {i}: {message}", file=sys.stderr)

        if args.select == "cell" and (not args.cell or len(args.cell.split(",")) != 2):
            raise InputError("--select cell needs --cell TRUE,PREDICTED")
        selection = evaluation.select(
            args.select, top=args.top, seed=args.seed,
            cls=_resolve_class(args.cls, names, "--class") if args.cls else None,
            cell=tuple(_resolve_class(v, names, "--cell") for v in args.cell.split(",")) if args.cell else None)
        background = _background(model, dataset, evaluation) if kind == "rows" else None
        method_records = []
        errors: dict[int, str] = {}
        for method in args.method:
            request = ExplainRequest(method, per_method[method], args.seed, classes, background,
                                     tuple(dataset.feature_names))
            key = json.dumps({**request.key(), "model": model.name, "set": dataset.fingerprint()}, sort_keys=True)
            paths = {i: out / "items" / f"{_item_stem(i, dataset.names[i])}__{method}.npz" for i in selection}
            # the summaries fold each item in as it is written (or read back when an earlier run wrote it)
            summary = SetSummary(names)
            todo = []
            for i in selection:
                done = _read_item(paths[i], key)
                if done is None:
                    todo.append(i)
                else:
                    summary.add(done)
            if len(todo) < len(selection):
                print(f"{method}: {len(selection) - len(todo)} item(s) already done in {out}, skipped")
            for item in explain_selection(model, dataset, todo, request, engine=engine, errors=errors,
                                          progress=_progress(f"{method} ")):
                _write_item(paths[item.index], key, item)
                summary.add(item)
            method_records.append(_finish_method(out, method, request, selection, paths, key, model, dataset,
                                                 evaluation, errors, summary, grid_scale=args.grid_scale))
        all_errors = {**evaluation.errors, **errors}
        record = {
            "command": COMMAND,
            "model": args.model,
            "model_name": model.name,
            "kind": kind,
            "data": str(args.data),
            "classes": names,
            "engine": engine.name,
            "workers": engine.workers,
            "engine_notes": engine.notes,
            "seed": args.seed,
            "metrics": metrics,
            "evaluation": "evaluation.csv",
            "selection": {"how": args.select, "top": args.top, "explain_against": args.classes,
                          "items": selection},
            "methods": method_records,
            "errors": [{"item": i, "name": evaluation.names[i], "error": m} for i, m in sorted(all_errors.items())],
            "elapsed_s": round(time.perf_counter() - started, 3),
        }
    write_file(out / "results.json", (json.dumps(record, indent=2) + "\n").encode())
    print(f"wrote {len(selection)} item(s) x {len(args.method)} method(s) to {out}")
    return 0


def _method_params(model, args) -> dict[str, dict[str, Any]]:
    from xai_core.cli.common import parse_param_args

    if model.kind == "rows":
        from xai_core.service.rows import get_tabular_explainer as lookup
    else:
        from xai_core.explainers import get_explainer as lookup
    for method in args.method:
        lookup(method)
    per_method = parse_param_args(args.param or [], args.method, lookup)
    for method in args.method:
        model.check_method(method)
        model.method_params(method, per_method[method])  # fail before the run
    return per_method


def _background(model, dataset, evaluation) -> np.ndarray:
    """Rows: the set's readable rows are the methods' background (N x F)."""
    ok = [i for i in range(len(dataset)) if i not in evaluation.errors]
    return np.stack([model.prepare(dataset.read(i)) for i in ok]).astype(np.float32)


def _finish_method(out: Path, method: str, request, selection: list[int], paths: dict[int, Path], key: str,
                   model, dataset, evaluation, errors: dict[int, str], summary,
                   grid_scale: str = "shared") -> dict[str, Any]:
    """Stream the item files back (a page of the grid at a time) into the grids; write
    the ``summary`` folded during the run."""
    from xai_core import render
    from xai_core.render.files import npz_bytes, safe_csv, write_file
    from xai_core.render.sets import class_mean_maps, set_grid

    names = model.class_names
    grids, items, page = [], [], []
    loss = evaluation.loss()
    for n, i in enumerate(selection):
        item = _read_item(paths[i], key) if i not in errors else None
        if item is not None:
            page.append(item)
            items.append({
                "item": i, "name": item.name, "label": item.label, "label_name": names[item.label],
                "prediction": item.prediction, "prediction_name": names[item.prediction],
                "probability_true": round(float(item.probabilities[item.label]), 6),
                "probability_predicted": round(float(item.probabilities[item.prediction]), 6),
                "loss": round(float(loss[i]), 6), "classes": item.classes, "model_evals": item.model_evals,
                "file": str(paths[i].relative_to(out)), "grid": f"grid__{method}__{len(grids) + 1:03d}.png",
            })
        if page and (len(page) == GRID_ROWS or n == len(selection) - 1):
            grid = out / f"grid__{method}__{len(grids) + 1:03d}.png"
            write_file(grid, render.to_png(set_grid(page, names, feature_names=dataset.feature_names, method=method,
                                                    scale=grid_scale)))
            grids.append(grid.name)
            page = []
    record: dict[str, Any] = {"method": method, "params": request.key()["params"], "items": items, "grids": grids,
                              "summary": {"mean_abs_per_class": summary.per_class()}}
    if summary.classes:
        write_file(out / f"summary__{method}.npz", npz_bytes(**summary.arrays()))
        record["summary"]["file"] = f"summary__{method}.npz"
        if model.kind == "rows":
            write_file(out / f"summary__{method}.csv", safe_csv(summary.per_feature(dataset.feature_names).reset_index()))
            record["summary"]["per_feature"] = f"summary__{method}.csv"
        else:
            write_file(out / f"summary__{method}.png", render.to_png(class_mean_maps(summary, names)))
            record["summary"]["class_mean_maps"] = f"summary__{method}.png"
    return record
