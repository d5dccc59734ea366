"""`reconciler jobs`: the tuning jobs as they are now, like `kubectl get` (one list per project+location)."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.options import add_state_option, add_target_options, defaults

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import TextIO

    from reconciler.render.jobs import JobRow

HELP = "list tuning jobs (managed ones unless --all), optionally watching until they finish"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_options(parser)
    add_state_option(parser, lock_timeout=False,
                     help="also list the projects+locations this state tracks: a file or gs://BUCKET/PATH.json "
                          "(default: $RECONCILER_STATE, else %(default)s)")
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


def _emit(rows: list[JobRow], args: argparse.Namespace, out: TextIO, parents: int) -> None:
    import json

    from reconciler.render.jobs import render_table, to_document

    if args.format == "json":
        doc = to_document(rows)
        # With --watch, one document per line (JSON Lines) so each refresh parses on its own.
        out.write(json.dumps(doc, sort_keys=True) + "\n" if args.watch else json.dumps(doc, indent=2, sort_keys=True)
                  + "\n")
    elif args.format == "yaml":
        import yaml

        out.write(("---\n" if args.watch else "") + yaml.safe_dump(to_document(rows), sort_keys=True))
    else:
        from reconciler.render.style import Style, use_color

        style = Style(use_color(out, args.no_color))
        out.write(render_table(rows, style if style.enabled else None, show_location=parents > 1))
    out.flush()


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from reconciler import operations
    from reconciler.errors import ConfigError
    from reconciler.render.jobs import job_row

    if args.interval <= 0:
        raise ConfigError("--interval must be a positive number of seconds")
    given = defaults(args)
    if (given.project or given.location) and not given.parent:
        raise ConfigError("give both a project and a location (--project/--location or "
                          "$GOOGLE_CLOUD_PROJECT/$GOOGLE_CLOUD_LOCATION)")
    parents = operations.job_parents(given.parent, args.state)
    versions = operations.job_versions(args.state)
    out = sys.stdout
    redraw = args.watch and args.format == "table" and out.isatty()
    with operations.open_client(operations.Connection(endpoint=args.endpoint)) as client:
        shown: str | None = None
        while True:
            now = time.time()
            rows = [job_row(j.job.raw, j.project, j.location, now)
                    for j in operations.list_jobs(client, parents, args.all, args.filter, versions)]
            if args.watch:
                # A terminal is redrawn in place; a log or pipe gets a refresh only when something changed.
                snapshot = json.dumps([(r.name, r.state, r.tuning_job_state, r.endpoint) for r in rows])
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
