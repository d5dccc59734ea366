"""The options several commands share, their defaults (defined once, here and in `model`), and
how parsed arguments become the typed requests of `reconciler.operations`. This module is the
only place besides the command modules that sees an argparse Namespace."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

from reconciler.defaults import DEFAULT_STATE_PATH

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from reconciler.model import Defaults
    from reconciler.operations import Connection, PlanRequest, StateRef

DEFAULT_PARALLELISM = 8
STATE_ENV = "RECONCILER_STATE"  # also in state/url.py (not imported here: start-up time)


def _number(kind: type, low: float, strict: bool) -> Callable[[str], float]:
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


class _StateAction(argparse.Action):
    """`--state` and `--workspace` together name one state (in either order): a prefix ending in
    '/' takes the workspace; see `reconciler.state.url.resolve`. The result is `args.state`."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from reconciler.errors import ConfigError
        from reconciler.state.url import resolve

        given = {"state": getattr(namespace, "_state_given", None), "workspace": namespace.workspace}
        given[self.dest] = values
        namespace._state_given = given["state"]
        namespace.workspace = given["workspace"]
        try:
            namespace.state = resolve(given["state"], given["workspace"], os.environ)
        except ConfigError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def _default_state() -> str:
    """What names the state when no option does: $RECONCILER_STATE, else state/default.json."""
    if not os.environ.get(STATE_ENV):
        return DEFAULT_STATE_PATH
    from reconciler.errors import ConfigError
    from reconciler.state.url import resolve

    try:
        return resolve(None, None, os.environ)
    except ConfigError:
        return os.environ[STATE_ENV]  # refused, with its message, when the state is opened


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Where manifests without metadata.project/location go, and which API to talk to."""
    parser.add_argument("--project", help="default project for manifests without metadata.project "
                        "(else $GOOGLE_CLOUD_PROJECT)")
    parser.add_argument("--location", help="default location for manifests without metadata.location "
                        "(else $GOOGLE_CLOUD_LOCATION)")
    parser.add_argument("--endpoint", help="API endpoint, e.g. http://127.0.0.1:8080 for the emulator "
                        "(else $RECONCILER_ENDPOINT, else the regional Google endpoint)")


def add_state_option(parser: argparse.ArgumentParser, lock_timeout: bool = True,
                     help: str = "state: a file, gs://BUCKET/PATH.json, or a prefix ending in '/' for "
                                 "workspaces (default: $RECONCILER_STATE, else %(default)s)") -> None:
    parser.add_argument("--state", dest="state", default=_default_state(), action=_StateAction,
                        metavar="LOCATION", help=help)
    parser.add_argument("--workspace", dest="workspace", default=None, action=_StateAction, metavar="NAME",
                        help="the state NAME.json under the --state prefix (default: state/)")
    if lock_timeout:
        parser.add_argument("--lock-timeout", type=non_negative_float, default=0.0, metavar="SECONDS",
                            help="wait this long for the state lock (default: fail at once)")


def add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="manifest files or directories, searched recursively for .yaml/.yml "
                             "(default: manifests/)")


def add_cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cache", dest="use_cache", action="store_false",
                        help="read and check every manifest file again (the cache of unchanged files "
                             "lives in $XDG_CACHE_HOME/tuning-reconciler/)")


def add_plan_inputs(parser: argparse.ArgumentParser) -> None:
    """What plan, apply and drift read: manifests, state, the API, and which keys."""
    add_paths(parser)
    add_cache_option(parser)
    add_target_options(parser)
    add_state_option(parser)
    parser.add_argument("--target", action="append", metavar="KEY", help="limit to this key (repeatable)")
    parser.add_argument("--parallelism", type=positive_int, default=DEFAULT_PARALLELISM, metavar="N",
                        help="concurrent API calls (default: %(default)s)")
    parser.add_argument("--no-color", action="store_true", help="never colour the output")


# --- Namespace -> typed requests -----------------------------------------------------------


def defaults(args: argparse.Namespace) -> Defaults:
    from reconciler.model import Defaults

    return Defaults.resolve(args.project, args.location, os.environ)


def state_ref(args: argparse.Namespace) -> StateRef:
    from reconciler.operations import StateRef

    return StateRef(args.state, getattr(args, "lock_timeout", 0.0))


def connection(args: argparse.Namespace) -> Connection:
    from reconciler.operations import Connection

    return Connection(endpoint=args.endpoint, parallelism=getattr(args, "parallelism", DEFAULT_PARALLELISM))


def plan_request(args: argparse.Namespace, paths: list[str] | None = None) -> PlanRequest:
    """The plan inputs of `add_plan_inputs` (`paths` overrides the positional paths)."""
    from reconciler.operations import PlanRequest

    return PlanRequest(paths=tuple(args.paths if paths is None else paths), defaults=defaults(args),
                       state=state_ref(args), connection=connection(args),
                       targets=tuple(args.target) if getattr(args, "target", None) else None,
                       use_cache=getattr(args, "use_cache", True))
