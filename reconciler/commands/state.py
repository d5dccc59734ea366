"""`reconciler state list|show|rm|mv|pull|push|migrate`: inspect and edit the state by hand, or copy it."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.options import add_state_option, state_ref

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from reconciler.state.model import StateEntry

HELP = ("inspect the state, stop tracking keys or move one, copy it around "
        "(state list | show KEY | rm KEY... | mv FROM TO | pull | push FILE | migrate --to LOCATION)")
FORMAT_VERSION = "1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="state_command", metavar="SUBCOMMAND", required=True)

    p_list = sub.add_parser("list", help="list the tracked keys with their jobs",
                            description="List the tracked keys with their current jobs.")
    add_state_option(p_list)
    p_list.add_argument("--json", action="store_true", help="machine-readable output")

    p_show = sub.add_parser("show", help="show everything the state knows about one key",
                            description="Show a key's entry: current job, spec hash, last "
                            "known job state and earlier jobs. KEY is a manifest key or a "
                            "full address PROJECT/LOCATION/KEY.")
    add_state_option(p_show)
    p_show.add_argument("key", metavar="KEY", help="key or PROJECT/LOCATION/KEY")
    p_show.add_argument("--json", action="store_true", help="machine-readable output")

    p_rm = sub.add_parser("rm", help="stop tracking keys (the jobs themselves are not touched)",
                          description="Remove keys from the state. Nothing is cancelled or "
                          "deleted in Vertex AI.")
    add_state_option(p_rm)
    p_rm.add_argument("keys", metavar="KEY", nargs="+", help="key or PROJECT/LOCATION/KEY")
    p_rm.add_argument("--dry-run", action="store_true", help="show what would be removed")

    p_mv = sub.add_parser("mv", help="track a key under another project spelling (id or number)",
                          description="Move an entry to another address with the same key and "
                          "location, e.g. when a manifest names its project by number instead of "
                          "id. Nothing is changed in Vertex AI.")
    add_state_option(p_mv)
    p_mv.add_argument("source", metavar="FROM", help="PROJECT/LOCATION/KEY tracked now")
    p_mv.add_argument("target", metavar="TO", help="PROJECT/LOCATION/KEY to track it as")

    p_pull = sub.add_parser("pull", help="print the current state as JSON",
                            description="Print the state as it is now (a local state file's JSON), "
                            "e.g. `reconciler state pull --state gs://BUCKET/PATH.json > copy.json`.")
    add_state_option(p_pull, lock_timeout=False)

    p_push = sub.add_parser("push", help="replace the state with a state file",
                            description="Write FILE as the state. Refused when FILE has another lineage, an "
                            "older serial, or the same serial with other content, unless --force.")
    add_state_option(p_push)
    p_push.add_argument("file", metavar="FILE", help="a state file (from `state pull`, or a recovery file)")
    p_push.add_argument("--force", action="store_true", help="push even another lineage or an older state")

    p_migrate = sub.add_parser("migrate", help="copy the state to another location (local <-> gs://)",
                               description="Copy the state to --to (under both locks) and read it back to check. "
                               "The target must hold no state yet; the source is left as it was.")
    add_state_option(p_migrate)
    p_migrate.add_argument("--to", required=True, metavar="LOCATION", dest="to",
                           help="where to copy it: a file or gs://BUCKET/PATH.json")


def run(args: argparse.Namespace) -> int:
    if args.state_command == "list":
        return _list(args)
    if args.state_command == "show":
        return _show(args)
    if args.state_command == "mv":
        return _mv(args)
    if args.state_command == "pull":
        return _pull(args)
    if args.state_command == "push":
        return _push(args)
    if args.state_command == "migrate":
        return _migrate(args)
    return _rm(args)


def _entry_json(entry: StateEntry) -> dict[str, Any]:
    from reconciler.state.model import entry_to_dict

    return {"address": entry.address, **entry_to_dict(entry)}


def _list(args: argparse.Namespace) -> int:
    from reconciler.model import short_state
    from reconciler.operations import read_state

    state, exists = read_state(args.state)
    entries = [state.entries[a] for a in sorted(state.entries)]
    if args.json:
        _print_json({
            "format_version": FORMAT_VERSION,
            "state": {"path": args.state, "lineage": state.lineage if exists else None,
                      "serial": state.serial},
            "entries": [_entry_json(e) for e in entries],
        })
        return 0
    if not entries:
        where = "is empty" if exists else "does not exist yet"
        print(f"State file {args.state} {where}: no keys are tracked.", file=sys.stderr)
        return 0
    rows = [("ADDRESS", "STATE", "JOB")] + [
        (e.address, short_state(e.job_state) or "-", e.job_name or "-") for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for address, job_state, job in rows:
        print(f"{address:<{widths[0]}}  {job_state:<{widths[1]}}  {job}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from reconciler.operations import find_entries, read_state
    from reconciler.text import clean

    state, _ = read_state(args.state)
    found = find_entries(state, args.key, args.state)
    if args.json:
        _print_json({"format_version": FORMAT_VERSION, "entries": [_entry_json(e) for e in found]})
        return 0
    for i, entry in enumerate(found):
        if i:
            print()
        print(f"# {entry.address}")
        pairs = [
            ("key", entry.key), ("project", entry.project), ("location", entry.location),
            ("job_name", entry.job_name), ("job_state", entry.job_state),
            ("update_time", entry.update_time), ("spec_hash", entry.spec_hash),
            ("request_id", entry.request_id),
            ("prevent_cancel", "true" if entry.prevent_cancel else "false"),
        ]
        width = max(len(k) for k, _ in pairs + [("history", "")])
        for name, value in pairs:
            print(f"{name:<{width}} = {value if value is not None else '-'}")
        if entry.history:
            print(f"{'history':<{width}} = {entry.history[0]}")
            for name in entry.history[1:]:
                print(f"{'':<{width}}   {name}")
        else:
            print(f"{'history':<{width}} = -")
        for path, value in sorted(entry.inputs.items()):  # what a job built from others' outputs got
            print(f"{'input':<{width}} = {clean(path)}: {clean(value)}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    from reconciler.operations import remove_entries

    removed, state = remove_entries(state_ref(args), args.keys, dry_run=args.dry_run)
    lines = [f"{e.address}" + (f" (job {e.job_name})" if e.job_name else "") for e in removed]
    if args.dry_run:
        for line in lines:
            print(f"Would remove {line}")
        return 0
    for line in lines:
        print(f"Removed {line}")
    noun = "entry" if len(removed) == 1 else "entries"
    print(f"Removed {len(removed)} {noun} from {args.state} (serial {state.serial}). "
          "The jobs themselves were not changed.")
    return 0


def _mv(args: argparse.Namespace) -> int:
    from reconciler.operations import move_entry

    state = move_entry(state_ref(args), args.source, args.target)
    print(f"Moved {args.source} to {args.target} (serial {state.serial}). The job itself was not changed.")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from reconciler.operations import pull_state
    from reconciler.state.model import state_to_json

    sys.stdout.write(state_to_json(pull_state(args.state)))
    return 0


def _push(args: argparse.Namespace) -> int:
    from reconciler.operations import push_state

    result = push_state(state_ref(args), args.file, force=args.force)
    state = result.state
    if not result.written:
        print(f"{args.state} already holds this state (serial {state.serial}): nothing pushed.")
        return 0
    if result.overridden:
        print(f"--force: pushed although {result.overridden}.", file=sys.stderr)
    print(f"Pushed {args.file} to {args.state}: serial {state.serial}, {len(state.entries)} keys, "
          f"lineage {state.lineage}.")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from reconciler.errors import ConfigError
    from reconciler.operations import migrate_state
    from reconciler.state.url import resolve

    try:
        target = resolve(args.to, None, {})
    except ConfigError as exc:
        raise ConfigError(f"--to: {exc}") from None
    result = migrate_state(state_ref(args), target)
    state = result.state
    what = "Copied" if result.copied else "Already there:"
    print(f"{what} state {args.state} (lineage {state.lineage}, serial {state.serial}, {len(state.entries)} keys) "
          f"to {target}; read back and identical.")
    print(f"{args.state} was left as it was: once everyone uses {target}, delete it or keep it as a backup.")
    return 0


def _print_json(data: dict[str, Any]) -> None:
    import json

    print(json.dumps(data, indent=2, sort_keys=True))
