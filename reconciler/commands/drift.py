"""`reconciler drift`: how the world differs from manifests and state; exit 0 none, 2 drift, 1 error."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.options import add_plan_inputs, plan_request
from reconciler.defaults import DEFAULT_IGNORE_FILE

HELP = "report drift: pending changes, out-of-band changes, orphans and unmanaged jobs (exit 2 on drift)"
FORMATS = ("text", "json", "markdown", "github")  # render.drift.RENDERERS (a test keeps them equal)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_plan_inputs(parser)
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (terminal), json (schemas/drift-report.schema.json), markdown (a pull-request "
                             "comment under GitHub's 65,536-character limit) or github (workflow annotations); "
                             "default: %(default)s")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of standard output")
    parser.add_argument("--include-unmanaged", action="store_true",
                        help="also report jobs without the managed-by label (made by hand); one unfiltered list "
                             "per project+location (not with --target: unmanaged jobs have no key)")
    parser.add_argument("--ignore-file", metavar="FILE",
                        help=f"accepted drift to ignore (default: {DEFAULT_IGNORE_FILE} if it exists)")


def _write(path: str, text: str) -> None:
    from pathlib import Path

    from reconciler.errors import ReconcilerError

    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReconcilerError(f"cannot write the report to {path}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    from reconciler import operations
    from reconciler.drift.report import headline
    from reconciler.render.drift import render
    from reconciler.render.style import Style, use_color

    report = operations.drift(operations.DriftRequest(
        plan_request(args), include_unmanaged=args.include_unmanaged, ignore_file=args.ignore_file))
    if args.output:
        _write(args.output, render(report, args.format))
        print(f"Wrote the drift report ({args.format}) to {args.output}", file=sys.stderr)
    else:
        style = Style(args.format == "text" and use_color(sys.stdout, args.no_color))
        sys.stdout.write(render(report, args.format, style=style))
    if args.output or args.format in ("json", "markdown"):
        print(headline(report), file=sys.stderr)  # stdout stays machine-readable
    return 2 if report.has_drift else 0
