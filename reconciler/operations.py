"""The steps plan, apply and drift share: load manifests, open state and client, refresh, plan."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from reconciler.plan.live import LiveView
from reconciler.model import DesiredJob
from reconciler.plan.model import Plan
from reconciler.state.model import State

DEFAULT_PATHS = ["manifests"]


def add_plan_inputs(parser: argparse.ArgumentParser) -> None:
    from reconciler.cli import add_state_option, add_target_options, positive_int

    parser.add_argument("paths", nargs="*", metavar="PATH", help="manifest files or directories (default: manifests/)")
    add_target_options(parser)
    add_state_option(parser)
    parser.add_argument("--target", action="append", metavar="KEY", help="limit to this key (repeatable)")
    parser.add_argument("--parallelism", type=positive_int, default=8, metavar="N",
                        help="concurrent API calls (default: %(default)s)")
    parser.add_argument("--no-color", action="store_true", help="never colour the output")


def open_client(args: argparse.Namespace):
    from reconciler.api.client import ClientOptions, TuningClient

    return TuningClient(ClientOptions(endpoint=getattr(args, "endpoint", None),
                                      max_connections=max(1, getattr(args, "parallelism", 8))))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. Planning builds a few long-lived objects per job
    and almost no cycles, yet every full collection walks all of them again: at 50,000 jobs
    that was a quarter of the plan's time. Reference counting still frees everything else."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class Planned:
    desired: list[DesiredJob]
    state: State
    live: LiveView
    plan: Plan


def load_desired(args: argparse.Namespace) -> list[DesiredJob]:
    from reconciler.manifests.loader import load_desired as load

    return load(args.paths or DEFAULT_PATHS, args.project, args.location)


def make_plan(args: argparse.Namespace, store, client, desired: list[DesiredJob] | None = None) -> Planned:
    """Plan from manifests (or the given desired jobs) against state and a fresh refresh.
    The caller holds the state lock."""
    from reconciler.plan.planner import plan
    from reconciler.plan.refresh import plan_fields, refresh

    from_manifests = desired is None
    with gc_paused():
        if desired is None:
            desired = load_desired(args)
        state = store.load()
        if from_manifests and args.target:
            _check_targets(args.target, desired, state)
        live = refresh(client, desired, state, parallelism=args.parallelism, fields=plan_fields())
        planned = plan(desired, state, live, targets=args.target)
    if not store.exists():
        planned.lineage = None  # no state yet: its lineage is fixed only by the first write
    return Planned(desired, state, live, planned)


def _check_targets(targets: list[str], desired: list[DesiredJob], state: State) -> None:
    """A --target that names nothing is a typo, not an empty plan to wave through."""
    from reconciler.errors import ConfigError

    from reconciler.plan.planner import targeted

    known = {d.address for d in desired} | set(state.entries)
    unknown = [t for t in targets if not any(targeted(a, {t}) for a in known)]
    if unknown:
        raise ConfigError(f"--target {', '.join(unknown)}: no such key in the manifests or the state "
                          "(give a key or project/location/key)")
