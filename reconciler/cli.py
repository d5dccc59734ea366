"""Argument parsing in one place, and the one error handler.

Each subcommand lives in `reconciler/commands/<name>.py` and exposes
`HELP: str`, `add_arguments(parser)` and `run(args) -> int`. Command modules import
their heavy dependencies inside `run` so that `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import re
import sys

from reconciler import __version__
from reconciler.errors import ReconcilerError

# name on the command line -> module under reconciler.commands
COMMANDS: dict[str, str] = {
    "validate": "validate",
    "plan": "plan",
    "apply": "apply",
    "show": "show",
    "drift": "drift",
    "jobs": "jobs",
    "import": "import_job",
    "state": "state",
    "force-unlock": "force_unlock",
    "schema": "schema",
    "emulator": "emulator",
    "demo": "demo",
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
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"reconciler.commands.{module_name}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that talks to Vertex AI shares."""
    parser.add_argument("--project", help="default project for manifests without metadata.project "
                        "(else $GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--location", help="default location for manifests without metadata.location "
                        "(else $GOOGLE_CLOUD_LOCATION)")
    parser.add_argument("--endpoint", help="API endpoint, e.g. http://127.0.0.1:8080 for the emulator "
                        "(else $RECONCILER_ENDPOINT, else the regional Google endpoint)")


def _number(kind: type, low: float, strict: bool):
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'greater than' if strict else 'at least'} {low:g}")
        return value
    return parse


positive_int = _number(int, 0, strict=True)
positive_float = _number(float, 0.0, strict=True)
non_negative_float = _number(float, 0.0, strict=False)


WORKSPACE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _workspace(name: str) -> str:
    if not WORKSPACE_PATTERN.match(name) or ".." in name:
        raise argparse.ArgumentTypeError(f"invalid workspace name {name!r} (letters, digits, '_', '-', '.')")
    return f"state/{name}.json"


def add_state_option(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--state", default="state/default.json", metavar="FILE",
                       help="state file (default: %(default)s)")
    group.add_argument("--workspace", dest="state", type=_workspace, metavar="NAME",
                       help="use the state file state/NAME.json")
    parser.add_argument("--lock-timeout", type=non_negative_float, default=0.0, metavar="SECONDS",
                        help="wait this long for the state lock (default: fail at once)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "paths") and not any(a.startswith("-") for a in extra):
        # argparse stops filling `PATH...` at the first option: `import KEY JOB --state X manifests/`.
        args.paths = [*(args.paths or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
