"""`reconciler jobs`: the tuning jobs as they are now, like `kubectl get` (one list per project+location)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

HELP = "list tuning jobs (managed ones unless --all), optionally watching until they finish"
FORMAT_VERSION = "1.0"
COLUMNS = ("KEY", "JOB ID", "STATE", "BASE MODEL", "CREATED", "DURATION", "TUNED MODEL ENDPOINT")
_STATE_COLORS = {"SUCCEEDED": "32", "FAILED": "31", "EXPIRED": "31", "CANCELLED": "35", "CANCELLING": "35",
                 "RUNNING": "33", "PENDING": "36", "QUEUED": "36"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reconciler.cli import add_target_options

    add_target_options(parser)
    parser.add_argument("--state", default="state/default.json", metavar="FILE",
                        help="also list the projects+locations this state file tracks (default: %(default)s)")
    parser.add_argument("--all", action="store_true", help="include jobs without the managed-by label")
    parser.add_argument("--filter", metavar="EXPR",
                        help='the API\'s list filter, e.g. \'state=JOB_STATE_RUNNING\' or \'labels.team="nlp"\'')
    parser.add_argument("--format", choices=("table", "json", "yaml"), default="table",
                        help="default: %(default)s")
    parser.add_argument("--watch", "-w", action="store_true",
                        help="refresh until every job shown has finished")
    parser.add_argument("--interval", type=float, default=10.0, metavar="SECONDS",
                        help="seconds between refreshes with --watch (default: %(default)s)")
    parser.add_argument("--no-color", action="store_true", help="never colour the output")


@dataclass(frozen=True)
class JobRow:
    key: str | None  # reconciler-key label of a managed job
    managed: bool
    name: str
    job_id: str
    project: str  # as the user named it (the parent listed), not the number in `name`
    location: str
    state: str
    base_model: str
    create_time: str
    start_time: str | None
    end_time: str | None
    duration_seconds: float | None  # from start to end, or to now while it runs
    tuned_model: str | None
    endpoint: str | None

    @property
    def finished(self) -> bool:
        from reconciler.model import FINISHED_STATES

        return self.state in FINISHED_STATES


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def job_row(job: dict, project: str, location: str, now: float) -> JobRow:
    from reconciler.plan.live import LiveJob
    from reconciler.model import FINISHED_STATES

    live = LiveJob.from_api(job)
    start, end = _parse_time(job.get("startTime")), _parse_time(job.get("endTime"))
    duration = None
    if start is not None:
        stop = end.timestamp() if end is not None else None if live.state in FINISHED_STATES else now
        duration = max(0.0, stop - start.timestamp()) if stop is not None else None
    tuned = job.get("tunedModel") if isinstance(job.get("tunedModel"), dict) else {}
    return JobRow(
        key=live.key, managed=live.managed, name=live.name, job_id=live.name.rsplit("/", 1)[-1], project=project,
        location=location, state=live.state, base_model=str(job.get("baseModel", "")),
        create_time=live.create_time, start_time=job.get("startTime"), end_time=job.get("endTime") or None,
        duration_seconds=duration, tuned_model=tuned.get("model"), endpoint=tuned.get("endpoint"),
    )


def format_duration(seconds: float | None) -> str:
    """kubectl style: 45s, 3m12s, 2h5m, 3d4h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def _created(value: str) -> str:
    parsed = _parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%SZ") if parsed else (value or "-")


def render_table(rows: list[JobRow], color: Callable[[str, str], str] | None = None,
                 show_location: bool = False) -> str:
    from reconciler.render.plan_text import clean

    if not rows:
        return "No tuning jobs found.\n"
    headers = (("PROJECT/LOCATION",) if show_location else ()) + COLUMNS
    table = []
    for r in rows:
        cells = ((f"{r.project}/{r.location}",) if show_location else ()) + (
            r.key if r.key is not None else "-", r.job_id, r.state.removeprefix("JOB_STATE_"), r.base_model or "-",
            _created(r.create_time), format_duration(r.duration_seconds), r.endpoint or "-")
        table.append(tuple(clean(c) for c in cells))
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    state_col = headers.index("STATE")
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for t in table:
        cells = [c.ljust(w) for c, w in zip(t, widths)]
        if color is not None:
            code = _STATE_COLORS.get(t[state_col])
            if code:
                cells[state_col] = color(code, cells[state_col])
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def to_document(rows: list[JobRow]) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "jobs": [asdict(r) for r in rows]}


def list_rows(client, parents: list[tuple[str, str]], show_all: bool, user_filter: str | None,
              now: float) -> list[JobRow]:
    """One paginated list per project+location. Managed jobs are filtered on the server and
    checked again here (how exactly the server filters labels is not documented)."""
    from reconciler.plan.refresh import MANAGED_FILTER

    api_filter = user_filter
    if not show_all:
        api_filter = f"{MANAGED_FILTER} AND ({user_filter})" if user_filter else MANAGED_FILTER
    rows: list[JobRow] = []
    for project, location in parents:
        for job in client.list_jobs(f"projects/{project}/locations/{location}", filter=api_filter):
            row = job_row(job, project, location, now)
            if show_all or row.managed:
                rows.append(row)
    return sorted(rows, key=lambda r: (r.project, r.location, r.key is None, r.key or "", r.create_time, r.name))


def _parents(args: argparse.Namespace) -> list[tuple[str, str]]:
    from reconciler.errors import ConfigError
    from reconciler.state.store import StateStore

    parents: set[tuple[str, str]] = set()
    project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    location = args.location or os.environ.get("GOOGLE_CLOUD_LOCATION")
    if project and location:
        parents.add((project, location))
    elif project or location:
        raise ConfigError("give both a project and a location (--project/--location or "
                          "$GOOGLE_CLOUD_PROJECT/$GOOGLE_CLOUD_LOCATION)")
    store = StateStore(args.state)
    if store.exists():
        parents |= {(e.project, e.location) for e in store.load().entries.values()}  # read-only, no lock
    if not parents:
        raise ConfigError("no project and location to list: pass --project and --location (or set "
                          "$GOOGLE_CLOUD_PROJECT and $GOOGLE_CLOUD_LOCATION), or point --state at a state file")
    return sorted(parents)


def _emit(rows: list[JobRow], args: argparse.Namespace, out: TextIO, parents: int) -> None:
    if args.format == "json":
        doc = to_document(rows)
        # With --watch, one document per line (JSON Lines) so each refresh parses on its own.
        out.write(json.dumps(doc, sort_keys=True) + "\n" if args.watch else json.dumps(doc, indent=2, sort_keys=True)
                  + "\n")
    elif args.format == "yaml":
        import yaml

        out.write(("---\n" if args.watch else "") + yaml.safe_dump(to_document(rows), sort_keys=True))
    else:
        from reconciler.render.plan_text import Style, use_color

        style = Style(use_color(out, args.no_color))
        out.write(render_table(rows, style if style.enabled else None, show_location=parents > 1))
    out.flush()


def run(args: argparse.Namespace) -> int:
    from reconciler.errors import ConfigError
    from reconciler.operations import open_client

    if args.interval <= 0:
        raise ConfigError("--interval must be a positive number of seconds")
    parents = _parents(args)
    out = sys.stdout
    redraw = args.watch and args.format == "table" and out.isatty()
    with open_client(args) as client:
        shown: str | None = None
        while True:
            rows = list_rows(client, parents, args.all, args.filter, time.time())
            if args.watch:
                # A terminal is redrawn in place; a log or pipe gets a refresh only when something changed.
                snapshot = json.dumps([(r.name, r.state, r.endpoint) for r in rows])
                if redraw or snapshot != shown:
                    if redraw:
                        out.write("\x1b[H\x1b[2J")
                    elif shown is not None and args.format == "table":
                        out.write("\n")
                    _emit(rows, args, out, len(parents))
                    shown = snapshot
            else:
                _emit(rows, args, out, len(parents))
            if not args.watch or all(r.finished for r in rows):
                return 0
            time.sleep(args.interval)
