"""The command line, a thin layer over :mod:`xai_core.service` (DESIGN.md section 3): this
module only lists the subcommands; each lives in its own module over :mod:`xai_core.cli.common`.

Bad input exits 2 with one line ``error: ...`` on stderr and no traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from xai_core.cli import catalogue, explain, sets, tabular
from xai_core.cli.common import Parser, check_common_args, report_errors
from xai_core.types import InputError

SUBCOMMANDS = (explain, tabular, sets, catalogue)


def build_parser() -> Parser:
    parser = Parser(prog="python -m xai_core", description="Explain image classifiers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()

    def run() -> int:
        args = parser.parse_args(argv)
        if not 0 <= getattr(args, "alpha", 0.5) <= 1:
            raise InputError("--alpha must be between 0 and 1")
        check_common_args(args)
        return args.func(args)

    return report_errors(run, "lower --batch-size or the method's sample count")
