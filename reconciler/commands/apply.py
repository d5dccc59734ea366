"""`reconciler apply [PLANFILE]`: carry out a plan, recording every step in state."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.options import add_plan_inputs, plan_request, positive_float

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from reconciler.apply.executor import Outcome, Progress
    from reconciler.plan.model import Plan

HELP = "make the changes a plan describes (plans first unless given a saved plan)"

PROMPT = ("\nDo you want to perform these actions?\n"
          "  tuning-reconciler will perform the actions described above.\n"
          "  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_plan_inputs(parser)
    parser.add_argument("--plan", dest="plan_file", metavar="PLANFILE",
                        help="apply this saved plan (same as a .plan/.json positional argument)")
    parser.add_argument("--auto-approve", action="store_true", help="skip the interactive approval")
    parser.add_argument("--max-creates-per-minute", type=positive_float, metavar="N",
                        help="cap job submissions (creates, replaces, rebases) per minute, per project and "
                             "location (as Vertex AI's quota)")
    parser.add_argument("--wait", action="store_true", help="follow submitted jobs until they finish")
    parser.add_argument("--poll-interval", type=positive_float, default=10.0, metavar="SECONDS",
                        help="seconds between polls with --wait (default: %(default)s)")
    parser.add_argument("--wait-timeout", type=positive_float, metavar="SECONDS", help="stop waiting after this long")


class TerminalUI:
    """Shows the plan on stdout and asks for `yes` on the terminal."""

    def __init__(self, auto_approve: bool, no_color: bool) -> None:
        self.auto_approve, self.no_color = auto_approve, no_color

    def show_plan(self, plan: Plan) -> None:
        from reconciler.render.plan_text import print_plan

        print_plan(plan, sys.stdout, no_color=self.no_color)

    def approve(self, plan: Plan) -> bool:
        from reconciler.errors import PlanError

        if self.auto_approve:
            return True
        if not sys.stdin.isatty():
            raise PlanError("refusing to apply without approval: standard input is not a terminal; "
                            "review the plan and pass --auto-approve (or apply a saved plan)")
        print(PROMPT, end="", flush=True)
        return sys.stdin.readline().strip() == "yes"

    def progress(self) -> Progress:
        from reconciler.render.progress import Progress

        return Progress(sys.stdout)


def _split_plan_file(plan_file: str | None, paths: list[str]) -> tuple[str | None, list[str]]:
    """`apply FILE`: a positional that is a saved plan rather than a manifest."""
    from reconciler.plan.planfile import is_saved_plan

    if plan_file:
        return plan_file, paths
    for i, path in enumerate(paths):
        if is_saved_plan(path):
            return path, paths[:i] + paths[i + 1:]
    return None, paths


def run(args: argparse.Namespace) -> int:
    from reconciler import operations

    plan_file, paths = _split_plan_file(args.plan_file, list(args.paths))
    request = operations.ApplyRequest(
        plan=plan_request(args, paths), saved_plan=plan_file,
        max_creates_per_minute=args.max_creates_per_minute, wait=args.wait,
        poll_interval=args.poll_interval, wait_timeout=args.wait_timeout)
    result = operations.apply(request, TerminalUI(args.auto_approve, args.no_color))
    if result.blocked:
        return 1
    if not result.approved:
        print("\nApply cancelled.")
        return 1
    _summary(result.outcomes)
    _graph_summary(result)
    for o in result.failed:
        print(f"Error: {o.change.key}: {o.change.action.value} failed: {o.message}", file=sys.stderr)
    for address, why in sorted(result.upstream_blocked.items()):
        print(f"Error: {address.rsplit('/', 1)[-1]}: not started: {why}", file=sys.stderr)
    if result.unfinished:
        print(f"Error: --wait-timeout reached with {result.unfinished} job(s) still running; "
              "`reconciler jobs --watch` follows them", file=sys.stderr)
    return 0 if result.ok else 1


def _graph_summary(result) -> None:
    """What a job graph left for later: changes waiting for upstream jobs (the next apply, or
    `apply --wait`, starts them)."""
    from reconciler.text import clean

    if result.not_started:
        names = ", ".join(clean(a.rsplit("/", 1)[-1]) for a in sorted(result.not_started))
        print(f"{len(result.not_started)} change(s) wait for upstream jobs: {names}. "
              "Run apply again once those have succeeded (or `apply --wait` to wait for them).")


def _summary(outcomes: list[Outcome]) -> None:
    from reconciler.plan.model import Action

    done = [o for o in outcomes if o.ok and o.change.action.changes_anything and not o.waiting]
    n = {a: sum(1 for o in done if o.change.action is a) for a in Action}
    failed = sum(1 for o in outcomes if not o.ok)
    head = "Apply complete!" if not failed else f"Apply finished with {failed} failed change(s)."
    print(f"\n{head} Jobs: {n[Action.CREATE]} created, {n[Action.REPLACE]} replaced, "
          f"{n[Action.CANCEL]} cancelled, {n[Action.REBASE]} rebased, {n[Action.ADOPT]} adopted, "
          f"{n[Action.FORGET]} forgotten.")
