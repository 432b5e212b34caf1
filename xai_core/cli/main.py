"""The command line, a thin layer over :mod:`xai_core.service` (DESIGN.md section 3).

Bad input exits 2 with one line ``error: ...`` on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from xai_core.cli.display_args import add_grid_scale_arg
from xai_core.render.files import npy_bytes, write_file
from xai_core.types import InputError, XaiError


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise InputError(f"--{what} must be comma-separated numbers like 0.485,0.456,0.406; got {text!r}") from None
    if not values:
        raise InputError(f"--{what} is empty")
    return values


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--input-size must be H or H,W in pixels; got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise InputError(f"--input-size must be H or H,W; got {text!r}")
    return parts[0], parts[1]


def parse_param_args(
    items: Sequence[str], methods: Sequence[str], lookup: Callable[[str], Any] | None = None
) -> dict[str, dict[str, str]]:
    """``KEY=VALUE`` (every method that has KEY) or ``METHOD.KEY=VALUE`` -> per-method dicts.

    ``lookup`` maps a method name to its explainer (image explainers by default)."""
    if lookup is None:
        from xai_core.explainers import get_explainer as lookup

    per_method: dict[str, dict[str, str]] = {m: {} for m in methods}
    for item in items:
        if "=" not in item:
            raise InputError(f"--param {item!r} must look like KEY=VALUE (or METHOD.KEY=VALUE)")
        key, value = item.split("=", 1)
        key = key.strip()
        scope = None
        if "." in key:
            scope, key = key.split(".", 1)
            if scope not in per_method:
                raise InputError(f"--param {item!r} names method {scope!r}, which is not in --method")
        targets = [scope] if scope else list(methods)
        used = False
        for method in targets:
            names = {p.name for p in lookup(method).param_infos()}
            if key in names:
                per_method[method][key] = value
                used = True
        if not used:
            options = sorted({p.name for m in targets for p in lookup(m).param_infos()})
            raise InputError(
                f"--param {key!r} is not a parameter of {', '.join(targets)}; "
                f"parameters: {', '.join(options) or 'none'}"
            )
    return per_method


def make_output_dir(path: str | Path) -> Path:
    """The --out folder, created if needed; an InputError when it cannot be."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    return out


MAX_SEED = 2**32 - 1


def check_common_args(args: argparse.Namespace) -> None:
    """--seed range and --deadline (which sets the model worker's per-call limit)."""
    if not 0 <= getattr(args, "seed", 0) <= MAX_SEED:
        raise InputError(f"--seed must be between 0 and {MAX_SEED}")
    deadline = getattr(args, "deadline", None)
    if deadline is not None:
        if not 0 < deadline < 1e6:
            raise InputError("--deadline must be a positive number of seconds")
        os.environ["XAI_WORKER_DEADLINE"] = str(deadline)
def parse_metric_args(text: Sequence[str] | None, items: Sequence[str] | None, modality: Any):
    """--metrics NAMES and --metric-param METRIC.KEY=VALUE -> (names, per-metric values),
    checked before any model is loaded."""
    from xai_core.metrics import get_metric, parse_metric_names

    names = parse_metric_names(list(text or []), modality)
    per_metric: dict[str, dict[str, str]] = {n: {} for n in names}
    for item in items or []:
        key, sep, value = item.partition("=")
        metric, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise InputError(f"--metric-param {item!r} must look like METRIC.KEY=VALUE")
        if metric not in per_metric:
            raise InputError(f"--metric-param {item!r} names metric {metric!r}, which is not in --metrics")
        per_metric[metric][name] = value
    for name in names:
        get_metric(name).params(per_metric[name])  # fail early on a bad value
    return names, per_metric


def print_metrics(results: dict[str, Any]) -> None:
    for name, r in results.items():
        base = "" if r.baseline is None else f"  random baseline {r.baseline:.4f}"
        verdict = {True: "ok", False: "FAILS", None: ""}[r.passed]
        print(f"    {name:<14} {r.value:.4f} ({r.direction.value}){base}  {verdict}  "
              f"evals={r.model_evals}  {r.elapsed_s:.2f}s")
        if r.warning:
            print(f"    warning: {r.warning}")


def _open(args) -> Any:
    from xai_core.inputs.labels import read_labels
    from xai_core.loading.models import SpecOverrides, open_model

    overrides = SpecOverrides(
        size=_size(args.input_size) if getattr(args, "input_size", None) else None,
        mean=_floats(args.mean, "mean") if getattr(args, "mean", None) else None,
        std=_floats(args.std, "std") if getattr(args, "std", None) else None,
        grayscale=True if getattr(args, "grayscale", False) else None,
    )
    labels = read_labels(args.labels) if getattr(args, "labels", None) else None
    return open_model(
        args.model,
        framework=getattr(args, "framework", None),
        arch=getattr(args, "arch", None),
        overrides=overrides,
        labels=labels,
        trust_pickle=getattr(args, "trust_pickle", False),
        device=getattr(args, "device", "auto"),
        batch_size=getattr(args, "batch_size", None) or 16,
    )


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
    adapter = _open(args)
    for method in args.method:
        check_method(adapter, method)
    if args.layer:
        adapter.resolve_layer(args.layer)  # a wrong name or index fails before any work
    metric_backgrounds = _metric_backgrounds(adapter, args.metric_background, args.seed)
    out = make_output_dir(args.out)
    records = []
    stems: dict[str, int] = {}
    given = _named_inputs(adapter, getattr(args, "input", []) or [])
    classes = getattr(args, "classes", None)
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


def cmd_models(args) -> int:
    import model_zoo

    for entry in model_zoo.ZOO.values():
        h, w = entry.spec.size
        offline = "offline" if entry.offline else "needs weights file"
        print(f"{entry.name:<20} {entry.framework:<6} {h}x{w}{' gray' if entry.spec.grayscale else ''}  "
              f"[{offline}]  {entry.description}")
    from model_zoo.tabular import TABULAR_ZOO

    print("\ntabular models (explain-tabular):")
    for name, tab in TABULAR_ZOO.items():
        print(f"{name:<24} {tab.framework:<6} {getattr(tab, 'description', '')}")
    return 0


def cmd_methods(args) -> int:
    from xai_core.explainers import REGISTRY

    adapter = _open(args) if args.model else None
    for explainer in REGISTRY.values():
        if explainer.input_kind != "image":
            continue
        missing = explainer.missing_capabilities(adapter) if adapter else []
        status = f"  (not available: needs {', '.join(missing)})" if missing else ""
        print(f"{explainer.name:<22} {explainer.label}{status}")
        for p in explainer.param_infos():
            rng = ""
            if p.choices:
                rng = f" one of {'/'.join(map(str, p.choices))}"
            elif p.low is not None:
                rng = f" in [{p.low}, {p.high}]"
            print(f"    {p.name}={p.default}{rng}  {p.help}")
    return 0


def cmd_layers(args) -> int:
    from model_zoo.tabular import TABULAR_ZOO
    from xai_core.types import UnsupportedError

    if args.model in TABULAR_ZOO and not Path(args.model).exists():  # a table's model: rows have layers too
        from xai_core.tabular import open_tabular_model

        adapter = open_tabular_model(args.model)
    else:
        adapter = _open(args)
    layers = adapter.layers()
    if not layers:
        if getattr(adapter, "kind", "") == "torchscript":
            raise UnsupportedError(
                f"{adapter.name} is TorchScript: its layers cannot be hooked. Save the model as a "
                ".pt2 torch.export program or a state_dict to use Grad-CAM"
            )
        raise UnsupportedError(f"{adapter.name} has no layer whose output is a feature map or a vector")
    default = adapter.default_cam_layer()
    print(f"{'index':>7}  {'layer':<40} {'kind':<24} output")
    for info in layers:
        mark = "  <- default for grad_cam and cam" if info.name == default else ""
        shape = "x".join(str(v) for v in info.output_shape)
        index = info.index if info.index is not None else "-"
        print(f"{index:>7}  {info.name:<40} {info.kind:<24} {shape}{mark}")
    print("\n--layer takes a name or an index (PyTorch: position among the leaf modules of "
          "named_modules(); Keras: position in model.layers)")
    return 0


def _add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", required=required, help="model file or zoo name (see `models`)")
    p.add_argument("--framework", choices=("torch", "keras", "onnx"), help="inferred from the file when omitted")
    p.add_argument("--arch", help="architecture for a bare PyTorch state_dict (e.g. resnet18, digits_cnn)")
    p.add_argument("--input-size", help="model input H or H,W in pixels")
    p.add_argument("--mean", help="normalisation mean, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", help="normalisation std, e.g. 0.229,0.224,0.225")
    p.add_argument("--grayscale", action="store_true", help="feed a single gray channel")
    p.add_argument("--labels", help="labels file: one per line, or a JSON list/dict")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--batch-size", type=int, default=None, help="images per model call (default 16)")
    add_trust_args(p)


def add_trust_args(p: argparse.ArgumentParser) -> None:
    """--trust-code (alias --trust-pickle) and --deadline, shared with explain-tabular."""
    p.add_argument("--trust-code", "--trust-pickle", dest="trust_pickle", action="store_true",
                   help="where no kernel confinement is available, allow model files that carry code "
                        "(TorchScript, .pt2, SavedModel, pickled modules, Keras Lambda layers): only "
                        "for files you trust")
    p.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                   help="wall-clock limit per call into the model worker (default 600)")


def add_metric_args(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("--metrics", nargs="+", action="extend", metavar="NAMES",
                   help=f"faithfulness and sanity metrics to compute, comma-separated (e.g. {example}, or all); "
                        "values go to results.json")
    p.add_argument("--metric-param", nargs="+", action="extend", metavar="METRIC.KEY=VALUE",
                   help="a metric's parameter, e.g. deletion.steps=32")


def build_parser() -> Parser:
    parser = Parser(prog="python -m xai_core", description="Explain image classifiers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("explain", help="explain images with one or more methods")
    _add_model_args(p)
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
    from xai_core.cli.tabular import add_parser as add_tabular_parser

    add_tabular_parser(sub)
    from xai_core.cli.sets import add_parser as add_set_parser

    add_set_parser(sub)
    p = sub.add_parser("models", help="list the model zoo")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("methods", help="list explainers and their parameters")
    _add_model_args(p, required=False)
    p.set_defaults(func=cmd_methods)
    p = sub.add_parser("layers", help="list a model's layers with their indices, kinds and output shapes")
    _add_model_args(p)
    p.set_defaults(func=cmd_layers)
    return parser


def report_errors(fn: Callable[[], int], hint: str = "") -> int:
    """Run ``fn``; turn every failure into one ``error: ...`` line on stderr.

    Exit codes: 2 for the user's input (and argparse usage), 130 when
    interrupted, 1 for an unexpected failure (XAI_DEBUG=1 re-raises it)."""
    try:
        return fn()
    except UsageError as exc:
        print(f"error: {exc} (see python -m xai_core --help)", file=sys.stderr)
        return 2
    except XaiError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"error: out of memory; {hint or 'lower the sample count'}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - never a traceback for the user
        if os.environ.get("XAI_DEBUG"):
            raise
        text = " ".join(str(exc).split())[:300]
        print(f"error: unexpected failure ({type(exc).__name__}: {text}); rerun with XAI_DEBUG=1 for details",
              file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()

    def run() -> int:
        args = parser.parse_args(argv)
        if not 0 <= getattr(args, "alpha", 0.5) <= 1:
            raise InputError("--alpha must be between 0 and 1")
        check_common_args(args)
        return args.func(args)

    return report_errors(run, "lower --batch-size or the method's sample count")
