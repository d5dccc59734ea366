"""`reconciler workspace list|show|delete`: the states under one prefix (local or gs://)."""

from __future__ import annotations

import argparse
import sys

from reconciler.commands.options import add_state_option, state_ref

HELP = "list, show or delete workspaces: the NAME.json states under a prefix (workspace list | show | delete NAME)"

_ROOT_HELP = ("the workspace prefix: a directory or gs://BUCKET/PREFIX/ ending in '/' "
              "(default: $RECONCILER_STATE, else %(default)s)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="workspace_command", metavar="SUBCOMMAND", required=True)
    p_list = sub.add_parser("list", help="list the workspaces under the prefix",
                            description="List the workspaces (NAME.json states) under the prefix; `*` marks the "
                            "one --workspace (default: default) selects.")
    add_state_option(p_list, lock_timeout=False, help=_ROOT_HELP)
    p_show = sub.add_parser("show", help="show a workspace: where it is, its serial, keys and lock",
                            description="Show the selected workspace (--workspace NAME, default: default): its "
                            "location, lineage, serial, how many keys it tracks, and who holds its lock.")
    add_state_option(p_show, lock_timeout=False, help=_ROOT_HELP)
    p_delete = sub.add_parser("delete", help="delete a workspace's state (never `default`)",
                              description="Delete the state of workspace NAME. One that still tracks keys needs "
                              "--force (its jobs stay in Vertex AI, untracked); `default` is never deleted.")
    p_delete.add_argument("name", metavar="NAME", help="the workspace to delete")
    add_state_option(p_delete, help=_ROOT_HELP)
    p_delete.add_argument("--force", action="store_true", help="delete even if it still tracks keys")


def run(args: argparse.Namespace) -> int:
    if args.workspace_command == "list":
        return _list(args)
    if args.workspace_command == "show":
        return _show(args)
    return _delete(args)


def _list(args: argparse.Namespace) -> int:
    from reconciler.operations import list_workspaces
    from reconciler.text import clean

    root, found = list_workspaces(args.state)
    if not found:
        print(f"No workspaces under {root} yet.", file=sys.stderr)
        return 0
    for name, location in found.items():
        print(f"{'*' if location == args.state else ' '} {clean(name)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from reconciler.operations import show_workspace
    from reconciler.state.lock import describe_lock

    ws = show_workspace(args.state)
    print(f"workspace  {ws.name}")
    print(f"location   {ws.location}")
    if not ws.exists:
        print("state      none yet")
    else:
        print(f"lineage    {ws.lineage}\nserial     {ws.serial}\nkeys       {ws.keys}")
    print(f"lock       {describe_lock(ws.lock) if ws.lock else 'not locked'}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from reconciler.errors import ConfigError
    from reconciler.operations import StateRef, delete_workspace
    from reconciler.state.url import join, root_of

    if args.workspace and args.workspace != args.name:
        raise ConfigError(f"give the workspace once: NAME {args.name} or --workspace {args.workspace}")
    location = join(root_of(args.state), args.name)
    ws = delete_workspace(StateRef(location, state_ref(args).lock_timeout), force=args.force)
    print(f"Deleted workspace {ws.name} ({location}, serial {ws.serial}, {ws.keys} keys). "
          "Its jobs, if any, were not touched.")
    return 0
