"""`reconciler show FILE`: render a saved plan."""

from __future__ import annotations

import argparse
import sys

HELP = "show a saved plan as text or JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan_file", metavar="PLANFILE", help="a plan saved with `plan --out`")
    parser.add_argument("--json", action="store_true", help="print it as JSON")
    parser.add_argument("--no-color", action="store_true", help="never colour the output")


def run(args: argparse.Namespace) -> int:
    from reconciler.plan.planfile import load_plan
    from reconciler.render.plan_text import plan_json, print_plan

    plan = load_plan(args.plan_file)
    if args.json:
        sys.stdout.write(plan_json(plan))
    else:
        print_plan(plan, sys.stdout, no_color=args.no_color)
    return 0
