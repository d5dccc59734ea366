"""Argument parsing in one place, and the one error handler.

Each subcommand is a module of `reconciler/commands/` with `HELP: str`,
`add_arguments(parser)` and `run(args) -> int`; it parses nothing else, and imports what it
runs inside `run`, so that `--help` stays fast. Expected errors (`ReconcilerError`, OSError on
a path the user gave) become `Error: message` and exit 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import functools
import sys
from types import ModuleType

from reconciler import __version__
from reconciler.commands import (
    apply,
    demo,
    drift,
    emulator,
    force_unlock,
    graph,
    import_job,
    jobs,
    plan,
    schema,
    show,
    state,
    validate,
    workspace,
)
from reconciler.errors import ReconcilerError

# name on the command line -> its module, in the order `--help` lists them
COMMANDS: dict[str, ModuleType] = {
    "validate": validate,
    "plan": plan,
    "apply": apply,
    "show": show,
    "drift": drift,
    "graph": graph,
    "jobs": jobs,
    "import": import_job,
    "state": state,
    "workspace": workspace,
    "force-unlock": force_unlock,
    "schema": schema,
    "emulator": emulator,
    "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="Terraform-style plan/apply for Vertex AI tuning jobs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output on stderr (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        # The demo runs the other commands as a user would: through this same entry point.
        run = functools.partial(module.run, cli=main) if module is demo else module.run
        cmd.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "paths") and not any(a.startswith("-") for a in extra):
        # argparse stops filling `PATH...` at the first option: `import KEY JOB --state X manifests/`.
        args.paths = [*(args.paths or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    import logging  # after parsing: --help and usage errors never need it

    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args._run(args))
    except ReconcilerError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:  # a path the user gave: unwritable, missing, a directory ...
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
