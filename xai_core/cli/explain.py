"""`explain`: images x methods -> overlays, attributions and results.json (DESIGN.md section 3)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xai_core.cli.common import (
    add_metric_args,
    add_model_args,
    make_output_dir,
    open_model_from_args,
    parse_metric_args,
    parse_param_args,
    print_metrics,
)
from xai_core.cli.display_args import add_grid_scale_arg
from xai_core.render.files import npy_bytes, write_file
from xai_core.types import InputError


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="explain images with one or more methods")
    add_model_args(p)
    p.add_argument("--image", nargs="+", required=True)
    p.add_argument("--method", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--target", help="class index or label (default: the predicted class)")
    p.add_argument("--layer", help="layer name or index for the methods that work at a layer (see `layers`)")
    p.add_argument("--classes", help="explain several classes in one run: topK (e.g. top4), all (up to 100 "
                                     "classes) or a comma-separated list; files get a __c<class> suffix and "
                                     "<method>__grid.png shows one row per image, one column per class")
    p.add_argument("--explains", choices=("logit", "probability"),
                   help="for a model ending in a softmax: explain the logit (the softmax stripped) or the "
                        "probability (default: the model's own output)")
    p.add_argument("--input", nargs="+", action="extend", default=[], metavar="NAME=FILE",
                   help="for a model with several inputs: what feeds input NAME (an image file, or a .npy/.csv "
                        "row of feature values); image inputs not named get the --image picture")
    p.add_argument("--param", nargs="+", action="extend", metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0..1")
    p.add_argument("--figure", action="store_true",
                   help="also write <image>__<method>__figure.png: the overlay with a colour bar in the map's "
                        "units, the method, the class and its probability (report-ready)")
    add_grid_scale_arg(p)
    add_metric_args(p, "deletion,insertion,road,randomization,sensitivity")
    p.add_argument("--metric-background", nargs="+", action="extend", default=[], metavar="NAME=FILE",
                   help="for a model with a feature-vector input NAME: background rows (.csv or .npy) whose mean "
                        "a removed feature takes in the metrics (default 0) and whose std scales their noise")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args) -> int:

    from xai_core import render
    from xai_core.explainers import REGISTRY, get_explainer
    from xai_core.inputs.images import load_image
    from xai_core.metrics import Modality
    from xai_core.metrics.service import evaluate_inputs
    from xai_core.metrics.service import records as metric_records
    from xai_core.service import check_method, explain, explain_classes, prepare_inputs
    from xai_core.service.quality import quality_notes

    metric_names, metric_params = parse_metric_args(args.metrics, args.metric_param, Modality.IMAGE)
    if args.metric_background and not metric_names:
        raise InputError("--metric-background is for the metrics; give --metrics too")
    for method in args.method:
        get_explainer(method)
    per_method = parse_param_args(args.param or [], args.method)
    for method in args.method:
        get_explainer(method).params(per_method[method])  # fail before loading anything
    if getattr(args, "classes", None) and args.target not in (None, ""):
        raise InputError("give --target (one class) or --classes (several), not both")
    if args.layer:
        takes = {name for name, e in REGISTRY.items() if e.uses_layer or e.accepts_layer}
        unused = [m for m in args.method if m not in takes]
        if unused:
            users = ", ".join(sorted(takes)) or "none"
            raise InputError(f"--layer is not used by {', '.join(unused)}; methods that take a layer: {users}")
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    images = [(Path(p), load_image(p)) for p in args.image]
    adapter = open_model_from_args(args)
    for method in args.method:
        check_method(adapter, method)
    if args.layer:
        adapter.resolve_layer(args.layer)  # a wrong name or index fails before any work
    metric_backgrounds = _metric_backgrounds(adapter, args.metric_background, args.seed)
    given = _named_inputs(adapter, getattr(args, "input", []) or [])
    classes = getattr(args, "classes", None)
    if args.target not in (None, ""):  # a wrong target fails before the estimate line, as one error line
        from xai_core.service import resolve_class

        resolve_class(args.target, adapter.labels, 0)
    first = _input_items(adapter, images[0][1], given)
    print_estimate(adapter, prepare_inputs(adapter, first if adapter.multi_input else images[0][1]), per_method,
                   len(images), class_count(adapter, classes), args.batch_size,
                   metric_names, metric_params)
    out = make_output_dir(args.out)
    records = []
    stems: dict[str, int] = {}
    grids: dict[str, list] = {m: [] for m in args.method}
    for path, image in images:
        stem = path.stem
        stems[stem] = stems.get(stem, 0) + 1
        if stems[stem] > 1:
            stem = f"{stem}_{stems[stem]}"
        items = _input_items(adapter, image, given)
        fed = items if adapter.multi_input else image
        for method in args.method:
            common = {"layer": args.layer, "seed": args.seed, "batch_size": args.batch_size,
                      "output": getattr(args, "explains", None)}
            if classes:
                exps = explain_classes(adapter, fed, method, per_method[method], classes=classes, **common)
                grids[method].append((image, exps))
            else:
                exps = [explain(adapter, fed, method, per_method[method], target=args.target, **common)]
            for rank, exp in enumerate(exps):
                base = f"{stem}__{method}"
                record = _write_explanation(out, base, f"__c{exp.target}" if classes else "", rank == 0,
                                            adapter, exp, items, args.alpha, figure=args.figure)
                records.append({"image": str(path), **record})
                top = exp.predictions[0]
                print(
                    f"{path.name}  {method:<22} target={exp.target} ({exp.target_label})  "
                    f"top={top.label} {top.probability:.3f}  evals={exp.model_evals}  {exp.elapsed_s:.2f}s"
                )
                for note in quality_notes(method, exp.extras):
                    print(f"  note: {note}")
                if metric_names:
                    per_input = evaluate_inputs(adapter, prepare_inputs(adapter, fed), exp, metric_names,
                                                metric_params, batch_size=args.batch_size,
                                                backgrounds=metric_backgrounds)
                    if adapter.multi_input:  # one set of metrics per input, keyed by the input's name
                        records[-1]["metrics"] = {name: metric_records(r) for name, r in per_input.items()}
                    else:
                        records[-1]["metrics"] = metric_records(next(iter(per_input.values())))
                    for name, results in per_input.items():
                        if adapter.multi_input:
                            print(f"  input {name}:")
                        print_metrics(results)
    for method, rows in grids.items():
        if rows:
            grid = render.class_grid(rows, alpha=args.alpha, names=[p.name for p, _ in images],
                                     scale=args.grid_scale)
            write_file(out / f"{method}__grid.png", render.to_png(grid))
    write_file(out / "results.json", (json.dumps(records, indent=2) + "\n").encode())
    print(f"wrote {len(records)} explanation(s) to {out}")
    return 0


def class_count(adapter, classes: str | None) -> int:
    """How many classes ``--classes`` asks for (1 without it)."""
    if not classes:
        return 1
    text = classes.strip().lower()
    if text == "all":
        return int(adapter.num_classes)
    if text.startswith("top") and text[3:].isdigit():
        return int(text[3:])
    return len([c for c in text.split(",") if c.strip()])


def print_estimate(adapter, items: list, per_method: dict[str, dict], inputs: int, classes: int,
                   batch_size: int | None, metric_names: Sequence[str] = (),
                   metric_params: dict | None = None) -> None:
    """One line on stdout before any work: 'estimated ~N s (E model evaluations)'
    for every input x method (x class), and the metrics (timing the model first).
    Not stderr: there a failure is one ``error:`` line and nothing else (DESIGN.md 3)."""
    from xai_core.metrics.estimate import estimate_metrics
    from xai_core.service.estimate import estimate_explain, total

    parts = []
    for method, params in per_method.items():
        parts += [estimate_explain(adapter, items, method, params, classes=classes,
                                   batch_size=batch_size)] * inputs
        if metric_names:
            per_metric = estimate_metrics(adapter, items, [(method, params)], metric_names, metric_params or {})
            parts += [total(per_metric)] * inputs * classes
    print(total(parts).line, flush=True)


def _write_explanation(out: Path, base: str, class_suffix: str, first: bool, adapter, exp, items: list,
                       alpha: float, figure: bool = False) -> dict[str, Any]:
    """Files for one explanation: per input ``<base>[__c<class>][__<input>].png/.npy``
    (the unsuffixed ``<base>.png/.npy`` always hold the first input's, of the first
    class), the variance where the method has one; returns its results.json record."""
    import numpy as np

    from xai_core import render

    files = []
    for i, spec in enumerate(adapter.inputs):
        suffix = class_suffix + (f"__{spec.name}" if i or adapter.multi_input else "")
        png_path, npy_path = out / f"{base}{suffix}.png", out / f"{base}{suffix}.npy"
        picture = items[i] if spec.kind == "image" else None
        names = spec.names() if spec.kind == "vector" else None
        write_file(png_path, render.to_png(render.draw_input(exp, i, picture, names, alpha=alpha)))
        write_file(npy_path, npy_bytes(exp.attributions[i].astype(np.float32)))
        files.append({"input": spec.name, "kind": spec.kind, "overlay": str(png_path), "attribution": str(npy_path)})
        if figure and spec.kind == "image":  # the report-ready figure: colour bar with units, method, class, p
            from xai_core.render.figure import report_figure

            fig_path = out / f"{base}{suffix}__figure.png"
            write_file(fig_path, render.to_png(report_figure(picture, render.input_view(exp, i), alpha=alpha)))
            files[-1]["figure"] = str(fig_path)
        if i == 0 and suffix and first:
            for src, dst in ((png_path, out / f"{base}.png"), (npy_path, out / f"{base}.npy")):
                write_file(dst, src.read_bytes())
    record = {**exp.record(), "overlay": files[0]["overlay"] if class_suffix else str(out / f"{base}.png"),
              "attribution": files[0]["attribution"] if class_suffix else str(out / f"{base}.npy")}
    if "figure" in files[0]:
        record["figure"] = files[0]["figure"]
    variances = exp.extras.get("variances") or ([exp.extras["variance"]] if "variance" in exp.extras else [])
    for i, variance in enumerate(variances):
        if isinstance(variance, np.ndarray):  # shap_gradient: the variance of the estimate
            suffix = class_suffix + (f"__{adapter.inputs[i].name}" if i else "")
            var_path = out / f"{base}{suffix}__variance.npy"
            write_file(var_path, npy_bytes(variance.astype(np.float32)))
            record.setdefault("variance", str(var_path))
    if exp.layer_attribution is not None:  # per-unit values at the layer (C x h x w, or units)
        layer_path = out / f"{base}{class_suffix}__layer.npy"
        np.save(layer_path, exp.layer_attribution.astype(np.float32))
        record["layer_attribution"] = str(layer_path)
    if adapter.multi_input:
        record["input_files"] = files
    return record


def _metric_backgrounds(adapter, items: list[str], seed: int) -> list | None:
    """--metric-background NAME=FILE pairs -> one background (rows N x F) or None per input."""
    from xai_core.inputs.backgrounds import MAX_BACKGROUND, load_background

    if not items:
        return None
    specs = {s.name: i for i, s in enumerate(adapter.inputs)}
    found: list = [None] * len(adapter.inputs)
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not file:
            raise InputError(f"--metric-background {item!r} must look like NAME=FILE")
        vectors = [s.name for s in adapter.inputs if s.kind == "vector"]
        if name not in specs or adapter.inputs[specs[name]].kind != "vector":
            raise InputError(f"--metric-background {name!r}: not a feature-vector input of the model; "
                             f"those are: {', '.join(vectors) or 'none'}")
        found[specs[name]] = load_background(file, adapter.inputs[specs[name]], MAX_BACKGROUND, seed)
    return found


def _named_inputs(adapter, items: list[str]) -> dict[str, Any]:
    """--input NAME=FILE pairs -> {input name: RGB image or 1-D feature row}."""
    from xai_core.inputs.feature_rows import read_feature_row
    from xai_core.inputs.images import load_image

    specs = {s.name: s for s in adapter.inputs}
    found: dict[str, Any] = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not file:
            raise InputError(f"--input {item!r} must look like NAME=FILE")
        if name not in specs:
            raise InputError(f"--input {name!r}: the model has no such input; inputs: {', '.join(specs)}")
        path = Path(file)
        if not path.is_file():
            raise InputError(f"--input {name}: no such file {file}")
        if specs[name].kind == "image":
            found[name] = load_image(path)
            continue
        found[name] = read_feature_row(path.read_bytes(), path.name, specs[name])
    return found


def _input_items(adapter, image, given: dict[str, Any]) -> list:
    """One item per model input: what --input named, else the --image picture."""
    items = []
    for spec in adapter.inputs:
        if spec.name in given:
            items.append(given[spec.name])
        elif spec.kind == "image":
            items.append(image)
        else:
            raise InputError(f"input {spec.name!r} takes feature values: give them with --input {spec.name}=FILE (.npy or .csv)")
    return items
