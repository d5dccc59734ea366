"""`reconciler graph [PATHS]`: the job graph the manifests' references make, offline."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.options import add_paths, add_target_options, defaults

HELP = "show which jobs use other jobs' outputs (${jobs.KEY.OUTPUT}), offline: text, mermaid or dot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_paths(parser)
    parser.add_argument("--format", choices=("text", "mermaid", "dot"), default="text",
                        help="text (stages, default), mermaid (GitHub renders it in Markdown) or dot (Graphviz)")
    add_target_options(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler import operations
    from reconciler.render.graph import render_dot, render_mermaid, render_text

    graph = operations.job_graph(operations.GraphRequest(tuple(args.paths), defaults(args)))
    render = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}[args.format]
    sys.stdout.write(render(graph))
    return 0
