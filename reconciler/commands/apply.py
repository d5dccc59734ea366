"""`reconciler apply [PLANFILE]`: carry out a plan, recording every step in state."""

from __future__ import annotations

import argparse
import sys

HELP = "make the changes a plan describes (plans first unless given a saved plan)"

PROMPT = ("\nDo you want to perform these actions?\n"
          "  tuning-reconciler will perform the actions described above.\n"
          "  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reconciler.cli import positive_float
    from reconciler.operations import add_plan_inputs

    add_plan_inputs(parser)
    parser.add_argument("--plan", dest="plan_file", metavar="PLANFILE",
                        help="apply this saved plan (same as a .plan/.json positional argument)")
    parser.add_argument("--auto-approve", action="store_true", help="skip the interactive approval")
    parser.add_argument("--max-creates-per-minute", type=positive_float, metavar="N",
                        help="cap job submissions (creates, replaces, rebases) per minute")
    parser.add_argument("--wait", action="store_true", help="follow submitted jobs until they finish")
    parser.add_argument("--poll-interval", type=positive_float, default=10.0, metavar="SECONDS",
                        help="seconds between polls with --wait (default: %(default)s)")
    parser.add_argument("--wait-timeout", type=positive_float, metavar="SECONDS", help="stop waiting after this long")


def _split_plan_file(args: argparse.Namespace) -> str | None:
    """`apply FILE`: a positional that is a saved plan (JSON of our kind) rather than a manifest."""
    import json

    from reconciler.plan.planfile import KIND

    if args.plan_file:
        return args.plan_file
    for path in list(args.paths):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            data = json.loads(text) if text.lstrip().startswith("{") else None
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(data, dict) and data.get("kind") == KIND:
            args.paths.remove(path)
            return path
    return None


def _approved(args: argparse.Namespace) -> bool:
    from reconciler.errors import PlanError

    if args.auto_approve:
        return True
    if not sys.stdin.isatty():
        raise PlanError("refusing to apply without approval: standard input is not a terminal; "
                        "review the plan and pass --auto-approve (or apply a saved plan)")
    print(PROMPT, end="", flush=True)
    answer = sys.stdin.readline().strip()
    return answer == "yes"


def run(args: argparse.Namespace) -> int:
    from reconciler.plan.actions import Action
    from reconciler.errors import PlanError
    from reconciler.apply.executor import ApplyOptions, Executor
    from reconciler.apply.follow import follow
    from reconciler.plan.planfile import desired_from_plan, load_plan
    from reconciler.render.progress import Progress
    from reconciler.render.plan_text import print_plan
    from reconciler.state.store import StateStore
    from reconciler.operations import make_plan, open_client

    plan_file = _split_plan_file(args)
    saved = load_plan(plan_file) if plan_file else None
    if saved is not None and args.paths:
        raise PlanError("give either a saved plan or manifest paths, not both")
    if saved is not None and saved.problems:
        raise PlanError(f"saved plan {plan_file} has problems to fix first: "
                        + "; ".join(f"{p.address}: {p.message}" for p in saved.problems))
    store = StateStore(args.state)
    with store.lock("apply", timeout=args.lock_timeout), open_client(args) as client:
        if saved is not None:
            args.target = [c.address for c in saved.changes]
            planned = make_plan(args, store, client, desired=desired_from_plan(saved))
            _check_fresh(saved, planned, plan_file, args.state)
            if planned.plan.problems:
                raise PlanError("Saved plan can no longer be applied: " + "; ".join(
                    f"{p.address}: {p.message}" for p in planned.plan.problems) + ". Run plan again.")
            plan = saved
        else:
            planned = make_plan(args, store, client)
            plan = planned.plan
            print_plan(plan, sys.stdout, no_color=args.no_color)
            if plan.problems:
                return 1
            if plan.has_changes and not _approved(args):
                print("\nApply cancelled.")
                return 1
        options = ApplyOptions(parallelism=args.parallelism, max_creates_per_minute=args.max_creates_per_minute)
        try:
            with Progress(sys.stdout) as progress:
                executor = Executor(client, store, planned.state, progress, options)
                outcomes = executor.run(plan)
                failed = [o for o in outcomes if not o.ok]
                waited_failures = unfinished = 0
                if args.wait and not failed:
                    submitted = [o.change.address for o in outcomes
                                 if o.ok and (o.change.action.starts_a_job or o.change.action is Action.ADOPT)]
                    final = follow(client, store, executor.entries, submitted, progress.line,
                                   interval=args.poll_interval, timeout=args.wait_timeout,
                                   status=progress.status)
                    waited_failures = sum(1 for j in final.values() if j.state != "JOB_STATE_SUCCEEDED")
                    followed = [a for a in submitted if a in executor.entries and executor.entries[a].job_name]
                    unfinished = len(followed) - len(final)
        finally:
            store.commit()
    _summary(outcomes)
    for o in failed:
        print(f"Error: {o.change.key}: {o.change.action.value} failed: {o.message}", file=sys.stderr)
    if unfinished:
        print(f"Error: --wait-timeout reached with {unfinished} job(s) still running; "
              "`reconciler jobs --watch` follows them", file=sys.stderr)
    return 1 if failed or waited_failures or unfinished else 0


def _check_fresh(saved, planned, plan_file: str, state_path: str) -> None:
    """Refuse a saved plan from another lineage, or one the world has moved on from."""
    from reconciler.errors import PlanError
    from reconciler.plan.planfile import stale_reasons

    state = planned.state
    if saved.lineage is None:
        reasons = [f"state {state_path} was written since"] if state.serial > 0 else []
    elif saved.lineage != state.lineage:
        raise PlanError(f"saved plan {plan_file} was made for another state (lineage {saved.lineage}, "
                        f"{state_path} has {state.lineage}); run plan again")
    else:
        reasons = [] if state.serial == saved.serial else [
            f"state serial is {state.serial}, the plan was made at serial {saved.serial}"]
    reasons += stale_reasons(saved, planned.plan)
    if reasons:
        raise PlanError("Saved plan is stale: " + "; ".join(reasons) + ". Run plan again.")


def _summary(outcomes) -> None:
    from reconciler.plan.actions import Action

    done = [o for o in outcomes if o.ok and o.change.action.changes_anything]
    n = {a: sum(1 for o in done if o.change.action is a) for a in Action}
    failed = sum(1 for o in outcomes if not o.ok)
    head = "Apply complete!" if not failed else f"Apply finished with {failed} failed change(s)."
    print(f"\n{head} Jobs: {n[Action.CREATE]} created, {n[Action.REPLACE]} replaced, "
          f"{n[Action.CANCEL]} cancelled, {n[Action.REBASE]} rebased, {n[Action.ADOPT]} adopted, "
          f"{n[Action.FORGET]} forgotten.")
