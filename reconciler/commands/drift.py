"""`reconciler drift`: how the world differs from manifests and state; exit 0 none, 2 drift, 1 error."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.api.client import TuningClient
    from reconciler.plan.live import LiveJob, LiveView
    from reconciler.state.model import State

HELP = "report drift: pending changes, out-of-band changes, orphans and unmanaged jobs (exit 2 on drift)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reconciler.render.drift import FORMATS
    from reconciler.drift.ignore import DEFAULT_IGNORE_FILE
    from reconciler.operations import add_plan_inputs

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


def _default_parent(args: argparse.Namespace) -> tuple[str, str] | None:
    """--project/--location (or the environment): where hand-made jobs are looked for even when
    no manifest or state entry names that project+location."""
    project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    location = args.location or os.environ.get("GOOGLE_CLOUD_LOCATION")
    return (project, location) if project and location else None


def _list_everything(client: TuningClient, parents: list[tuple[str, str]], state: State,
                     parallelism: int) -> tuple[LiveView, dict[tuple[str, str], list[LiveJob]]]:
    """One unfiltered paginated list per project+location, split into managed and unmanaged
    jobs (managed ones are not listed a second time); state jobs the list did not return are
    fetched with `get`, None when 404, as `refresh` does. Returns (LiveView, unmanaged)."""
    from concurrent.futures import ThreadPoolExecutor

    from reconciler.api.client import NotFoundError
    from reconciler.plan.live import LiveJob, LiveView

    def listed(parent: tuple[str, str]) -> list[LiveJob]:
        return [LiveJob.from_api(j) for j in client.list_jobs(f"projects/{parent[0]}/locations/{parent[1]}")]

    def get(name: str) -> LiveJob | None:
        try:
            return LiveJob.from_api(client.get_job(name))
        except NotFoundError:
            return None

    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(parents) or 1)),
                            thread_name_prefix="drift") as pool:
        everything = dict(zip(parents, pool.map(listed, parents)))
        seen = {j.name: j for jobs in everything.values() for j in jobs}
        missing = sorted({e.job_name for e in state.entries.values() if e.job_name and e.job_name not in seen})
        fetched: dict[str, LiveJob | None] = dict(zip(missing, pool.map(get, missing)))
    # A job state tracks whose labels were removed by hand is out-of-band drift, not a hand-made job.
    tracked = {n for e in state.entries.values() for n in [e.job_name, *e.history] if n}
    managed = {p: [j for j in jobs if j.managed] for p, jobs in everything.items()}
    unmanaged = {p: [j for j in jobs if not j.managed and j.name not in tracked] for p, jobs in everything.items()}
    fetched.update({n: seen[n] for n in tracked if n in seen and not seen[n].managed})
    return LiveView(listed=managed, fetched=fetched), unmanaged


def _write(path: str, text: str) -> None:
    from pathlib import Path

    from reconciler.errors import ReconcilerError

    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReconcilerError(f"cannot write the report to {path}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    from reconciler.drift.report import build_report, headline
    from reconciler.render.drift import render
    from reconciler.drift.ignore import DEFAULT_IGNORE_FILE, load_ignore
    from reconciler.plan.planner import plan
    from reconciler.plan.refresh import parents_of, refresh
    from reconciler.render.plan_text import Style, use_color
    from reconciler.state.store import StateStore
    from reconciler.operations import load_desired, open_client

    rules = load_ignore(args.ignore_file or DEFAULT_IGNORE_FILE, required=args.ignore_file is not None)
    desired = load_desired(args)
    store = StateStore(args.state)
    parallelism = max(1, args.parallelism)
    with store.lock("drift", timeout=args.lock_timeout), open_client(args) as client:
        state = store.load()
        unmanaged = None
        if args.include_unmanaged:
            parents = parents_of(desired, state)
            default = _default_parent(args)
            if default and default not in parents:
                parents = sorted([*parents, default])
            live, unmanaged = _list_everything(client, parents, state, parallelism)
        else:
            live = refresh(client, desired, state, parallelism=parallelism)
    report = build_report(desired, state, live, plan(desired, state, live, targets=args.target),
                          unmanaged=unmanaged, rules=rules, targets=args.target)
    if args.output:
        text = render(report, args.format)
        _write(args.output, text)
        print(f"Wrote the drift report ({args.format}) to {args.output}", file=sys.stderr)
    else:
        style = Style(args.format == "text" and use_color(sys.stdout, args.no_color))
        sys.stdout.write(render(report, args.format, style=style))
    if args.output or args.format in ("json", "markdown"):
        print(headline(report), file=sys.stderr)  # stdout stays machine-readable
    return 2 if report.has_drift else 0
