"""`reconciler force-unlock LOCK_ID`: remove a state lock left behind by a crashed run."""

from __future__ import annotations

import argparse
import sys

HELP = "remove a stale state lock by its ID (as printed by the command that found it locked)"
# Same default as reconciler.cli.add_state_option; --lock-timeout would mean nothing here.
DEFAULT_STATE = "state/default.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lock_id", metavar="LOCK_ID", help="the lock ID to remove")
    parser.add_argument("--state", default=DEFAULT_STATE, metavar="FILE",
                        help="state file (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="do not ask for confirmation (needed when not on a terminal)")


def run(args: argparse.Namespace) -> int:
    from reconciler.errors import StateError
    from reconciler.state.store import describe_lock, force_unlock, lock_holder_alive, read_lock

    info = read_lock(args.state)
    if info is None:
        raise StateError(f"state file {args.state} is not locked")
    if info.id != args.lock_id:
        raise StateError(f"lock ID {args.lock_id} does not match the lock on state file "
                         f"{args.state} ({describe_lock(info)})")
    alive = lock_holder_alive(info)
    warning = {
        True: "WARNING: the process holding this lock is still running; removing its lock "
              "lets another run change the state at the same time.",
        None: f"The lock holder runs on another host ({info.host}); make sure it has stopped.",
        False: "The process holding this lock is no longer running.",
    }[alive]
    if not args.force:
        if not sys.stdin.isatty():
            raise StateError("refusing to force-unlock without confirmation: not on a terminal "
                             "(use --force)")
        print(f"State file {args.state} is locked: {describe_lock(info)}.")
        print(warning)
        print("Do you really want to force-unlock?\n  Only 'yes' will be accepted to confirm.\n")
        try:
            answer = input("  Enter a value: ")
        except EOFError:
            answer = ""
        if answer.strip() != "yes":
            print("force-unlock cancelled.", file=sys.stderr)
            return 1
    elif alive:
        print(warning, file=sys.stderr)
    force_unlock(args.state, args.lock_id)
    print(f"Lock {args.lock_id} on {args.state} removed; the state can be used again.")
    return 0
