"""`reconciler state list|show|rm|mv`: inspect and edit the state file by hand."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from reconciler.cli import add_state_option

if TYPE_CHECKING:
    from reconciler.state.model import State, StateEntry

HELP = "inspect the state file, stop tracking keys or move one (state list | show KEY | rm KEY... | mv FROM TO)"
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


def run(args: argparse.Namespace) -> int:
    if args.state_command == "list":
        return _list(args)
    if args.state_command == "show":
        return _show(args)
    if args.state_command == "mv":
        return _mv(args)
    return _rm(args)


def _load_readonly(path: str) -> tuple[State, bool]:
    from reconciler.state.store import StateStore

    store = StateStore(path)
    # No lock: a read-only view (a running apply's journal is folded in memory only).
    return store.load(), store.exists()


def _entry_json(entry: StateEntry) -> dict[str, Any]:
    from reconciler.state.model import entry_to_dict

    return {"address": entry.address, **entry_to_dict(entry)}


def _list(args: argparse.Namespace) -> int:
    state, exists = _load_readonly(args.state)
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
        (e.address, _short_state(e.job_state), e.job_name or "-") for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for address, job_state, job in rows:
        print(f"{address:<{widths[0]}}  {job_state:<{widths[1]}}  {job}")
    return 0


def _short_state(job_state: str | None) -> str:
    if not job_state:
        return "-"
    return job_state.removeprefix("JOB_STATE_")


def _find(state: State, key: str, path: str) -> list[StateEntry]:
    from reconciler.errors import StateError

    found = state.find(key)
    if not found:
        known = sorted(state.entries)
        hint = f" (tracked: {', '.join(known[:10])}{', ...' if len(known) > 10 else ''})" if known else \
            " (it tracks nothing)"
        raise StateError(f"no entry for {key} in state file {path}{hint}")
    return found


def _show(args: argparse.Namespace) -> int:
    state, _ = _load_readonly(args.state)
    found = _find(state, args.key, args.state)
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
    return 0


def _rm(args: argparse.Namespace) -> int:
    from reconciler.errors import StateError
    from reconciler.state.store import StateStore

    store = StateStore(args.state)
    if not store.exists():
        raise StateError(f"state file {args.state} does not exist: nothing to remove")
    with store.lock("state rm", timeout=args.lock_timeout):
        state = store.load()
        # Resolve every argument before changing anything: all or nothing.
        chosen: dict[str, StateEntry] = {}
        for key in args.keys:
            found = _find(state, key, args.state)
            if len(found) > 1:
                raise StateError(
                    f"{key} matches several entries ({', '.join(e.address for e in found)}); "
                    "give the full PROJECT/LOCATION/KEY address"
                )
            chosen[found[0].address] = found[0]
        lines = [f"{address}" + (f" (job {e.job_name})" if e.job_name else "")
                 for address, e in chosen.items()]
        if args.dry_run:
            for line in lines:
                print(f"Would remove {line}")
            return 0
        for address in chosen:
            del state.entries[address]
        store.save(state)
    for line in lines:
        print(f"Removed {line}")
    noun = "entry" if len(chosen) == 1 else "entries"
    print(f"Removed {len(chosen)} {noun} from {args.state} (serial {state.serial}). "
          "The jobs themselves were not changed.")
    return 0


def _mv(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from reconciler.errors import StateError
    from reconciler.state.store import StateStore

    parts = [args.source.split("/"), args.target.split("/")]
    if any(len(p) != 3 or not all(p) for p in parts):
        raise StateError("give both addresses in full, PROJECT/LOCATION/KEY")
    (_, loc, key), (project, new_loc, new_key) = parts
    if (loc, key) != (new_loc, new_key):
        # The job's labels name its key, and its name its location: neither can follow a move.
        raise StateError("state mv changes only the project spelling: key and location must stay the same")
    store = StateStore(args.state)
    if not store.exists():
        raise StateError(f"state file {args.state} does not exist: nothing to move")
    with store.lock("state mv", timeout=args.lock_timeout):
        state = store.load()
        entry = state.entries.get(args.source)
        if entry is None:
            _find(state, args.source, args.state)  # raises, listing what is tracked
        if args.target in state.entries:
            raise StateError(f"{args.target} is already tracked; `reconciler state rm` it first")
        del state.entries[args.source]
        state.entries[args.target] = replace(entry, project=project)
        store.save(state)
    print(f"Moved {args.source} to {args.target} (serial {state.serial}). The job itself was not changed.")
    return 0


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))
