"""``explain-tabular``: explain rows of a CSV with one or more methods.

    python -m xai_core explain-tabular --model M --data CSV --row N [N ...]
        --method M [M ...] --out DIR [--label-column NAME] [--features A,B,...]
        [--target INDEX|LABEL] [--param KEY=VALUE ...] [--seed N]
        [--framework torch|keras|onnx] [--arch NAME] [--labels A,B,...] [--trust-code] [--deadline S]

Rows are 0-based data rows (0 = the first line after the header). Columns are
matched to a model that knows its feature names (a sidecar's ``feature_names``)
by name, in any order; a missing or extra column is an error naming it. For each row x
method, DIR gets ``row<N>__<method>.png`` (signed bar chart) and one
``results.json``: a list of records with ``row``, ``method``, ``target``,
``target_label``, ``predictions``, ``attributions`` ({feature: value}),
``base_value``, ``params``, ``model_evals``, ``elapsed_s`` (and ``output``,
``feature_values``, ``extras``, ``chart``). Bad input exits 2 with one line
``error: ...`` on stderr and no traceback.

The main command line adds this subcommand with :func:`add_parser` and runs it
with :func:`run`; ``python -m xai_core.cli.tabular explain-tabular ...`` works alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from xai_core.loading.registry import framework_keys
from xai_core.types import InputError

COMMAND = "explain-tabular"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``explain-tabular`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        COMMAND,
        help="explain rows of a CSV table with one or more methods",
        description="Explain rows of a CSV table (0-based data rows) with lime, kernel_shap or "
                    "integrated_gradients; writes results.json and one bar chart PNG per row x method.",
    )
    p.add_argument("--model", required=True, help="model file (.pt/.pt2/.keras/.onnx) or tabular zoo name")
    p.add_argument("--data", help="CSV with a header (default for a zoo model: its sample CSV)")
    p.add_argument("--row", nargs="+", required=True, metavar="N",
                   help="0-based data row(s): N, a range A-B (inclusive), or all; with several rows each method "
                        "also writes <method>__summary.csv and <method>__importance.csv (mean |attribution|)")
    p.add_argument("--method", nargs="+", required=True, metavar="M", help="lime, kernel_shap, integrated_gradients")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--label-column", help="column that is the label, not a feature (default: the model's own label "
                                          "column, else a column named target, label, class, y or outcome)")
    p.add_argument("--features", help="comma-separated feature columns in model input order (default: the model's "
                                      "feature names, matched by name, when it has them; else all others in file order)")
    p.add_argument("--columns-in-order", action="store_true",
                   help="take the feature columns (--features, else every column but the label, in file order) as "
                        "the model's inputs in its input order, not by name: for a model whose inputs carry no "
                        "names of their own (Keras input_layer_1, ONNX input.1)")
    p.add_argument("--target", help="output index or name to explain (default: each row's largest output)")
    p.add_argument("--param", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="method parameter, KEY=VALUE for every method that has it or METHOD.KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--framework", choices=framework_keys(rows=True), help="inferred from the file when omitted")
    p.add_argument("--arch", help="architecture of a bare PyTorch state_dict (tabular_mlp)")
    p.add_argument("--labels", help="comma-separated output names")
    from xai_core.cli.common import add_metric_args, add_trust_args

    add_trust_args(p)
    add_metric_args(p, "deletion,insertion,correlation,sensitivity")
    p.set_defaults(func=run)
    return p


def parse_tabular_params(items: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, str]]:
    """``KEY=VALUE`` (every method that has KEY) or ``METHOD.KEY=VALUE`` -> per-method dicts."""
    from xai_core.cli.common import parse_param_args
    from xai_core.service.rows import get_tabular_explainer

    return parse_param_args(items, methods, get_tabular_explainer)


def run(args: argparse.Namespace) -> int:
    """Run ``explain-tabular``; 0 on success, 2 (one ``error:`` line on stderr) on bad input."""
    from xai_core.cli.common import check_common_args, report_errors

    def checked() -> int:
        check_common_args(args)
        return _run(args)

    return report_errors(checked, "lower the method's sample count")


def _run(args: argparse.Namespace) -> int:
    from model_zoo.tabular import TABULAR_ZOO
    from xai_core.cli.common import parse_metric_args, print_metrics
    from xai_core.inputs.tables import default_label_column, load_table, model_columns, read_columns
    from xai_core.loading.models import open_model
    from xai_core.metrics import Modality
    from xai_core.metrics.service import evaluate_row
    from xai_core.metrics.service import records as metric_records
    from xai_core.render.bars import save_bar_png
    from xai_core.render.words import fit_notes
    from xai_core.service.quality import quality_notes
    from xai_core.service.rows import check_tabular_method, explain_rows, get_tabular_explainer

    metric_names, metric_params = parse_metric_args(args.metrics, args.metric_param, Modality.ROWS)
    methods = list(dict.fromkeys(args.method))
    for method in methods:
        get_tabular_explainer(method)
    per_method = parse_tabular_params(args.param or [], methods)
    for method in methods:  # fail on a bad value before loading anything
        get_tabular_explainer(method).params(per_method[method])
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    data_path, label_column = args.data, args.label_column
    zoo = TABULAR_ZOO.get(args.model) if not Path(args.model).exists() else None
    if data_path is None:
        if zoo is None:
            raise InputError("--data is required (a CSV with a header) unless --model is a tabular zoo model")
        data_path = zoo.csv_path
        label_column = label_column or zoo.label_column
    model = open_model(args.model, framework=args.framework, arch=args.arch, labels=labels,
                       trust_pickle=args.trust_pickle, rows=True)
    features = [c.strip() for c in args.features.split(",") if c.strip()] if args.features else None
    model_features = model_columns(model)
    if label_column is None:
        label_column = default_label_column(read_columns(data_path), model_label=model.label_column,
                                            model_features=model_features)
    data = load_table(data_path, label_column=label_column, feature_columns=features, n_features=model.n_features,
                      model_features=model_features, columns_in_order=args.columns_in_order)
    from xai_core.cli.common import make_output_dir
    from xai_core.render.files import write_file

    out = make_output_dir(args.out)
    rows = parse_rows(args.row, data.n_rows)
    for method in methods:  # what the model cannot serve is said before the estimate measures it
        check_tabular_method(model, method)
    found: dict[tuple[int, str], dict] = {}
    from xai_core.service.estimate import estimate_rows, total

    # the cost before any work (a model in its worker is timed there, as the runs will be)
    print(total([estimate_rows(model, data, rows, m, per_method[m]) for m in methods]).line)
    for method in methods:
        # all rows in one call (in the model's worker for a file): the method's setup (the
        # Kernel SHAP background summary, LIME's statistics) is made once, not per row;
        # without --target each row explains its own predicted output
        summary = explain_rows(model, data, rows, method, per_method[method], target=args.target, seed=args.seed,
                               per_row_target=args.target is None)
        explained = summary.explanations
        for expl in explained:
            chart = save_bar_png(expl, out / f"row{expl.row}__{method}.png")
            found[(expl.row, method)] = expl.record() | {"chart": chart.name}
            if expl.layer_attribution is not None:  # layer methods: one value per unit
                import numpy as np

                np.save(out / f"row{expl.row}__{method}__layer.npy", np.asarray(expl.layer_attribution, np.float32))
            extra = ""
            if expl.additivity_error is not None:
                extra = f"  base {expl.base_value:.4g}, additivity error {expl.additivity_error:.2e}"
            top = ", ".join(f"{f} {v:+.3g}" for f, v in expl.ranked()[:3])
            print(f"row {expl.row} {method}: {expl.target_label} {expl.output:.4g}; top {top}{extra}")
            for note in quality_notes(method, expl.extras, expl.base_value) + fit_notes(expl):
                print(f"  note: {note}")
            if metric_names:
                results = evaluate_row(model, data, expl, metric_names, metric_params)
                found[(expl.row, method)]["metrics"] = metric_records(results)
                print_metrics(results)
        if len(rows) > 1:
            summary.table(label=False).to_csv(out / f"{method}__summary.csv", index=False)
            mean_abs = summary.mean_abs
            mean_abs.rename_axis("feature").to_csv(out / f"{method}__importance.csv")
            top = ", ".join(f"{f} {v:.3g}" for f, v in mean_abs.head(5).items())
            print(f"{method} over {len(rows)} rows, mean |attribution|: {top}")
    records = [found[(row, method)] for row in rows for method in methods]
    write_file(out / "results.json", (json.dumps(records, indent=2) + "\n").encode())
    print(f"wrote {len(records)} record(s) to {out / 'results.json'}")
    return 0


def parse_rows(items: Sequence[str], n_rows: int) -> list[int]:
    """'--row' items: N, A-B (inclusive) or all -> row indices (duplicates dropped, order kept)."""
    rows: list[int] = []
    for item in items:
        text = str(item).strip().lower()
        if text == "all":
            rows.extend(range(n_rows))
        elif "-" in text.lstrip("-") and text[0] != "-":
            low, _, high = text.partition("-")
            if not (low.isdigit() and high.isdigit()) or int(low) > int(high):
                raise InputError(f"--row {item!r}: a range is A-B with A <= B")
            rows.extend(range(int(low), int(high) + 1))
        else:
            try:
                rows.append(int(text))
            except ValueError:
                raise InputError(f"--row {item!r}: give a row number, a range A-B, or all") from None
    for index in rows:  # before any work (the estimate reads the first row)
        if not 0 <= index < n_rows:
            raise InputError(f"row {index} is out of range: the table has {n_rows} rows (0..{n_rows - 1})")
    return list(dict.fromkeys(rows))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m xai_core.cli.tabular")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_parser(sub)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
