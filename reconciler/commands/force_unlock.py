"""`reconciler force-unlock LOCK_ID`: remove a state lock left behind by a crashed run."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.options import add_state_option

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from reconciler.state.lock import LockInfo

HELP = "remove a stale state lock by its ID (as printed by the command that found it locked)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lock_id", metavar="LOCK_ID", help="the lock ID to remove")
    add_state_option(parser, lock_timeout=False)  # --lock-timeout would mean nothing here
    parser.add_argument("--force", action="store_true",
                        help="do not ask for confirmation (needed when not on a terminal)")


def run(args: argparse.Namespace) -> int:
    from reconciler import operations
    from reconciler.errors import StateError
    from reconciler.state.lock import describe_lock

    def confirm(info: LockInfo, alive: bool | None) -> bool:
        warning = {
            True: "WARNING: the process holding this lock is still running; removing its lock "
                  "lets another run change the state at the same time.",
            None: f"The lock holder runs on another host ({info.host}); make sure it has stopped.",
            False: "The process holding this lock is no longer running.",
        }[alive]
        if args.force:
            if alive:
                print(warning, file=sys.stderr)
            return True
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
        return answer.strip() == "yes"

    if not operations.force_unlock(args.state, args.lock_id, confirm):
        print("force-unlock cancelled.", file=sys.stderr)
        return 1
    print(f"Lock {args.lock_id} on {args.state} removed; the state can be used again.")
    return 0
