"""`reconciler plan`: show what apply would do, optionally save it."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.options import add_plan_inputs, plan_request

HELP = "show the changes apply would make (create, replace, cancel, rebase, adopt, forget)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_plan_inputs(parser)
    parser.add_argument("--out", metavar="FILE", help="save the plan for `apply FILE`")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                        help="text (default), json (format_version 1.0) or markdown (a pull-request comment)")
    parser.add_argument("--json", action="store_true", help="same as --format json")
    parser.add_argument("--detailed-exitcode", action="store_true",
                        help="exit 0 with no changes, 1 on error, 2 when there are changes")
    parser.add_argument("--refresh-only", action="store_true",
                        help="only show what changed outside the tool since state was written")


def run(args: argparse.Namespace) -> int:
    from reconciler import operations
    from reconciler.drift.outside import outside_changes
    from reconciler.plan.planfile import save_plan
    from reconciler.render.plan_markdown import render_plan_markdown
    from reconciler.render.plan_text import plan_json, print_outside_changes, print_plan

    planned = operations.make_plan(plan_request(args))
    fmt = "json" if args.json else args.format
    if args.refresh_only:
        found = outside_changes(planned.state, planned.live)
        print_outside_changes(found, sys.stdout, as_json=fmt == "json")
        return 2 if (found and args.detailed_exitcode) else 0
    p = planned.plan
    if fmt == "json":
        sys.stdout.write(plan_json(p))
    elif fmt == "markdown":
        sys.stdout.write(render_plan_markdown(p))
    else:
        print_plan(p, sys.stdout, no_color=args.no_color)
    if args.out and not p.problems:
        save_plan(p, args.out)
        print(f"\nSaved the plan to: {args.out}\nTo perform exactly these actions, run:\n"
              f"  reconciler apply {args.out}", file=sys.stderr)
    if p.problems:
        return 1
    return 2 if (args.detailed_exitcode and p.has_changes) else 0
