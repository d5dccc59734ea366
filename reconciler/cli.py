"""Argument parsing in one place, and the one error handler.

Each subcommand is a module of `reconciler/commands/` with `HELP: str`,
`add_arguments(parser)` and `run(args) -> int`; it parses nothing else, and imports what it
runs inside `run`, so that `--help` stays fast. Expected errors (`ReconcilerError`, OSError on
a path the user gave) become `Error: message` and exit 1; Ctrl-C exits 130, SIGTERM (what CI
sends a cancelled job) is handled as Ctrl-C and exits 143.

The terminal edge is here too: stdout, stderr and log lines pass through the redaction of
this run's own credentials (`reconciler.redact`), whatever a server echoed back.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


class Terminated(KeyboardInterrupt):
    """SIGTERM: handled exactly as Ctrl-C (apply stops starting work, records what is under
    way, folds its journal and releases the lock), then exit 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (the demo's inner runs)
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _redacted_output(verbose: int) -> Iterator[None]:
    """stdout, stderr and logging with this run's credentials redacted."""
    import logging  # after parsing: --help and usage errors never need it

    from reconciler import redact

    if isinstance(sys.stdout, redact.RedactingStream):
        yield  # a run inside a run (the demo): the outer one has set all this up
        return
    redact.forget_all()  # a new run: only its own credentials count
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = redact.RedactingStream(stdout), redact.RedactingStream(stderr)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(redact.RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING - 10 * min(verbose, 2))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        sys.stdout, sys.stderr = stdout, stderr


def _error(message: object) -> None:
    from reconciler.text import cap_message

    print(f"Error: {cap_message(str(message))}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "paths") and not any(a.startswith("-") for a in extra):
        # argparse stops filling `PATH...` at the first option: `import KEY JOB --state X manifests/`.
        args.paths = [*(args.paths or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    with _redacted_output(args.verbose), _sigterm_as_interrupt():
        try:
            return int(args._run(args))
        except ReconcilerError as exc:
            _error(exc)
            return 1
        except Terminated:
            print("Terminated.", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print("Interrupted.", file=sys.stderr)
            return 130
        except BrokenPipeError:
            return 1
        except OSError as exc:  # a path the user gave: unwritable, missing, a directory ...
            _error(exc)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
