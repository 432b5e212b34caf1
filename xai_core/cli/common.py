"""What every subcommand shares: the parser class, model and metric arguments,
`--param` parsing, output folders and the one-line error report."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from xai_core.loading.registry import framework_keys
from xai_core.types import InputError, XaiError


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise InputError(f"--{what} must be comma-separated numbers like 0.485,0.456,0.406; got {text!r}") from None
    if not values:
        raise InputError(f"--{what} is empty")
    return values


def size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--input-size must be H or H,W in pixels; got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise InputError(f"--input-size must be H or H,W; got {text!r}")
    return parts[0], parts[1]


def resize(text: str) -> int | tuple[int, int]:
    """--resize: 'none' (the whole photo to the input size, 0), an edge E (the
    shortest edge to E, then the centre crop) or H,W (to H x W, then the crop)."""
    if text.strip().lower() in ("none", "whole", "0"):
        return 0
    try:
        parts = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise InputError(f"--resize must be none, a shortest edge E or H,W in pixels; got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def spec_overrides(args) -> Any:
    """The preprocessing flags the user gave (--input-size, --mean, --std,
    --grayscale, --resize, --interpolation) as SpecOverrides."""
    from xai_core.loading.spec import SpecOverrides

    return SpecOverrides(
        size=size(args.input_size) if getattr(args, "input_size", None) else None,
        mean=floats(args.mean, "mean") if getattr(args, "mean", None) else None,
        std=floats(args.std, "std") if getattr(args, "std", None) else None,
        grayscale=True if getattr(args, "grayscale", False) else None,
        resize=resize(args.resize) if getattr(args, "resize", None) else None,
        interpolation=getattr(args, "interpolation", None),
    )


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
    load = getattr(args, "deadline_load", None)
    if load is not None:
        if not 0 < load < 1e6:
            raise InputError("--deadline-load must be a positive number of seconds")
        os.environ["XAI_LOAD_DEADLINE"] = str(load)
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


def open_model_from_args(args) -> Any:
    from xai_core.inputs.labels import read_labels
    from xai_core.loading.models import open_model

    overrides = spec_overrides(args)
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


def add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", required=required, help="model file or zoo name (see `models`)")
    p.add_argument("--framework", choices=framework_keys(), help="inferred from the file when omitted")
    p.add_argument("--arch", help="architecture for bare weights: a zoo or torchvision name (e.g. resnet18, "
                   "digits_cnn) or timm:NAME for a timm model (e.g. timm:convnext_atto)")
    p.add_argument("--input-size", help="model input H or H,W in pixels")
    p.add_argument("--mean", help="normalisation mean, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", help="normalisation std, e.g. 0.229,0.224,0.225")
    p.add_argument("--grayscale", action="store_true", help="feed a single gray channel")
    add_resize_args(p)
    p.add_argument("--labels", help="labels file: one per line, or a JSON list/dict")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--batch-size", type=int, default=None, help="images per model call (default 16)")
    add_trust_args(p)


def add_resize_args(p: argparse.ArgumentParser) -> None:
    """--resize and --interpolation: how a photo reaches the input size (the model's
    own rule by default: a Hugging Face processor's, timm's data config)."""
    from xai_core.types import INTERPOLATIONS

    p.add_argument("--resize", help="how the photo reaches the input size: none (the whole photo, no crop), E "
                   "(shortest edge to E pixels, then the centre crop) or H,W (to H x W, then the centre crop)")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, help="the resize's filter (PIL's)")


def add_trust_args(p: argparse.ArgumentParser) -> None:
    """--trust-code (alias --trust-pickle) and --deadline, shared with explain-tabular."""
    p.add_argument("--trust-code", "--trust-pickle", dest="trust_pickle", action="store_true",
                   help="where no kernel confinement is available, allow model files that carry code "
                        "(TorchScript, .pt2, SavedModel, pickled modules, Keras Lambda layers): only "
                        "for files you trust")
    p.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                   help="wall-clock limit per call into the model worker (default 600)")
    p.add_argument("--deadline-load", type=float, default=None, metavar="SECONDS",
                   help="limit for starting the model worker, loading the file and its probe forward pass, in the "
                        "worker's CPU seconds (default 30 s + 40 s per GB of the file)")


def add_metric_args(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("--metrics", nargs="+", action="extend", metavar="NAMES",
                   help=f"faithfulness and sanity metrics to compute, comma-separated (e.g. {example}, or all); "
                        "values go to results.json")
    p.add_argument("--metric-param", nargs="+", action="extend", metavar="METRIC.KEY=VALUE",
                   help="a metric's parameter, e.g. deletion.steps=32")


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
