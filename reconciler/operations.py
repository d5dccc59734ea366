"""The operations the commands run, each taking one typed request: plan, apply, drift, import,
the state edits, force-unlock and the jobs listing. Here the stages meet (manifests, state,
refresh, planner, executor); commands only parse arguments into a request and print results.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from reconciler.defaults import DEFAULT_IGNORE_FILE, DEFAULT_STATE_PATH
from reconciler.errors import ConfigError, PlanError, StateError
from reconciler.model import V1, Defaults, DesiredJob, targeted

if TYPE_CHECKING:
    from reconciler.api.client import TuningClient
    from reconciler.apply.executor import Outcome, Progress
    from reconciler.drift.report import DriftReport
    from reconciler.graph.graph import JobGraph
    from reconciler.plan.live import LiveJob, LiveView
    from reconciler.plan.model import Plan
    from reconciler.state.backend import StateBackend
    from reconciler.state.lock import LockInfo
    from reconciler.state.model import State, StateEntry


# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateRef:
    """Which state (a file or gs://BUCKET/PATH.json), and how long to wait for its lock."""

    path: str = DEFAULT_STATE_PATH
    lock_timeout: float = 0.0


@dataclass(frozen=True)
class Connection:
    """Where the API is (None: $RECONCILER_ENDPOINT, else the regional Google endpoint) and how
    many calls may run at once."""

    endpoint: str | None = None
    parallelism: int = 8


@dataclass(frozen=True)
class PlanRequest:
    paths: tuple[str, ...] = ()  # manifest files or directories; () = manifests/
    defaults: Defaults = field(default_factory=Defaults)
    state: StateRef = field(default_factory=StateRef)
    connection: Connection = field(default_factory=Connection)
    targets: tuple[str, ...] | None = None  # --target: keys or project/location/key
    use_cache: bool = True  # unchanged manifest files come from the cache (--no-cache: never)


@dataclass(frozen=True)
class ApplyRequest:
    plan: PlanRequest
    saved_plan: str | None = None  # apply exactly this plan file
    max_creates_per_minute: float | None = None
    wait: bool = False
    poll_interval: float = 10.0
    wait_timeout: float | None = None


@dataclass(frozen=True)
class DriftRequest:
    plan: PlanRequest
    include_unmanaged: bool = False
    ignore_file: str | None = None  # None: .reconcilerignore if it exists


@dataclass(frozen=True)
class GraphRequest:
    paths: tuple[str, ...] = ()  # manifest files or directories; () = manifests/
    defaults: Defaults = field(default_factory=Defaults)


@dataclass(frozen=True)
class ImportRequest:
    key: str  # a key or project/location/key the manifests declare
    job_name: str  # a full job name or a bare id
    plan: PlanRequest


# --- results -------------------------------------------------------------------------------


@dataclass
class Planned:
    desired: list[DesiredJob]
    state: State
    live: LiveView
    plan: Plan


@dataclass
class ApplyResult:
    outcomes: list[Outcome]
    approved: bool = True  # False: the user said no; nothing was done
    blocked: bool = False  # the plan (shown) has problems; nothing was done
    waited_failures: int = 0  # jobs followed with --wait that did not succeed
    unfinished: int = 0  # jobs still running when --wait-timeout ran out
    # Job graphs: changes that wait for upstream jobs, and why each was not started (address ->
    # reason): blocked by an upstream that failed, or deferred/still waiting for a later apply.
    upstream_blocked: dict[str, str] = field(default_factory=dict)
    not_started: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def waiting(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.waiting]

    @property
    def ok(self) -> bool:
        return (self.approved and not self.blocked and not self.failed and not self.waited_failures
                and not self.unfinished and not self.upstream_blocked)


class ApplyUI(Protocol):
    """What apply shows and asks while it runs (the command's terminal)."""

    def show_plan(self, plan: Plan) -> None: ...

    def approve(self, plan: Plan) -> bool: ...

    def progress(self) -> Progress: ...


# --- shared steps --------------------------------------------------------------------------


def open_client(connection: Connection) -> TuningClient:
    from reconciler.api.client import ClientOptions, TuningClient

    return TuningClient(ClientOptions(endpoint=connection.endpoint, max_connections=connection.parallelism))


def open_store(ref: StateRef) -> StateBackend:
    """The backend the location names: a local file, or an object in Cloud Storage."""
    from reconciler.state.backend import open_backend

    return open_backend(ref.path)


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


def load_desired(request: PlanRequest) -> list[DesiredJob]:
    from reconciler.manifests.cache import ManifestCache
    from reconciler.manifests.loader import load_desired as load

    return load(list(request.paths) or None, request.defaults, ManifestCache() if request.use_cache else None)


def _check_targets(targets: tuple[str, ...], desired: list[DesiredJob], state: State) -> None:
    """A --target that names nothing is a typo, not an empty plan to wave through."""
    known = {d.address for d in desired} | set(state.entries)
    unknown = [t for t in targets if not any(targeted(a, {t}) for a in known)]
    if unknown:
        raise ConfigError(f"--target {', '.join(unknown)}: no such key in the manifests or the state "
                          "(give a key or project/location/key)")


def _make_plan(request: PlanRequest, store: StateBackend, client: TuningClient,
               desired: list[DesiredJob] | None = None) -> Planned:
    """Plan from the manifests (or the given desired jobs) against state and a fresh refresh.
    The caller holds the state lock."""
    from reconciler.plan.planner import plan
    from reconciler.plan.refresh import parents_of, plan_fields, read_versions, refresh

    from_manifests = desired is None
    with gc_paused():
        if desired is None:
            desired = load_desired(request)
        state = store.load()
        if from_manifests and request.targets:
            _check_targets(request.targets, desired, state)
        live = refresh(client, parents_of(desired, state), state, parallelism=request.connection.parallelism,
                       fields=plan_fields, versions=read_versions(desired, state))
        planned = plan(desired, state, live, targets=request.targets)
    if not store.exists():
        planned.lineage = None  # no state yet: its lineage is fixed only by the first write
    return Planned(desired, state, live, planned)


# --- plan ----------------------------------------------------------------------------------


def make_plan(request: PlanRequest) -> Planned:
    store = open_store(request.state)
    with store.lock("plan", timeout=request.state.lock_timeout), open_client(request.connection) as client:
        return _make_plan(request, store, client)


# --- apply ---------------------------------------------------------------------------------


def _problems(plan: Plan) -> str:
    return "; ".join(f"{p.address}: {p.message}" for p in plan.problems)


def apply(request: ApplyRequest, ui: ApplyUI) -> ApplyResult:
    """Plan (or take the saved plan, refused if stale), ask, then carry it out under the lock,
    recording every step; with `wait`, follow the jobs it started until they finish."""
    from reconciler.apply.executor import ApplyOptions, Executor
    from reconciler.apply.follow import GraphRun, follow
    from reconciler.plan.planfile import desired_from_plan, load_plan, stale_reasons

    saved = load_plan(request.saved_plan) if request.saved_plan else None
    if saved is not None and request.plan.paths:
        raise PlanError("give either a saved plan or manifest paths, not both")
    if saved is not None and saved.problems:
        raise PlanError(f"saved plan {request.saved_plan} has problems to fix first: {_problems(saved)}")
    planning = request.plan
    store = open_store(planning.state)
    with store.lock("apply", timeout=planning.state.lock_timeout), open_client(planning.connection) as client:
        if saved is not None:
            planning = replace(planning, targets=tuple(c.address for c in saved.changes))
            planned = _make_plan(planning, store, client, desired=desired_from_plan(saved))
            reasons = stale_reasons(saved, planned.plan, request.saved_plan or "", planning.state.path)
            if reasons:
                raise PlanError("Saved plan is stale: " + "; ".join(reasons) + ". Run plan again.")
            if planned.plan.problems:
                raise PlanError(f"Saved plan can no longer be applied: {_problems(planned.plan)}. Run plan again.")
            plan = saved
        else:
            planned = _make_plan(planning, store, client)
            plan = planned.plan
            ui.show_plan(plan)
            if plan.problems:
                return ApplyResult([], blocked=True)
            if plan.has_changes and not ui.approve(plan):
                return ApplyResult([], approved=False)
        options = ApplyOptions(parallelism=planning.connection.parallelism,
                               max_creates_per_minute=request.max_creates_per_minute)
        result = ApplyResult([])
        try:
            with ui.progress() as progress:
                executor = Executor(client, store, planned.state, progress, options)
                result.outcomes = executor.run(plan)
                if request.wait and not result.failed:
                    _follow_graph(client, store, executor, plan, result, request, progress, follow, GraphRun)
                else:
                    for o in result.waiting:
                        progress.line(f"{_label(o.change)}: waits for "
                                      f"{', '.join(u.rsplit('/', 1)[-1] for u in o.change.waits_for)} to succeed")
                        result.not_started[o.change.address] = "waits for upstream jobs"
        finally:
            store.commit()
    return result


def _label(change) -> str:
    from reconciler.text import clean

    return clean(change.key)


def _follow_graph(client, store, executor, plan, result: ApplyResult, request: ApplyRequest, progress,
                  follow, graph_run) -> None:
    """`--wait`: follow the started jobs and start each waiting change once its upstream jobs
    have succeeded, until everything has finished or is blocked (or the timeout ran out)."""
    graph = graph_run.of(plan.changes, result.outcomes, executor.entry, executor.run_changes)
    started = executor.started_jobs(result.outcomes)
    final = follow(client, store, started, progress.line, interval=request.poll_interval,
                   timeout=request.wait_timeout, status=progress.status, graph=graph)
    waiting = {o.change.address for o in graph.outcomes}
    result.outcomes = [o for o in result.outcomes if o.change.address not in waiting] + graph.outcomes
    followed = set(started) | {o.change.address for o in graph.outcomes if o.ok}
    result.waited_failures = sum(1 for a, j in final.items() if j.state != "JOB_STATE_SUCCEEDED")
    result.unfinished = len(followed - set(final))
    result.upstream_blocked = dict(graph.blocked)
    result.not_started = {**graph.deferred, **{a: "still waiting when --wait-timeout ran out" for a in graph.waiting}}
    if graph.waiting:
        result.unfinished += len(graph.waiting)


# --- drift ---------------------------------------------------------------------------------


def drift(request: DriftRequest) -> DriftReport:
    """Pending, out-of-band, orphan (and with `include_unmanaged`, hand-made) drift: one list
    per project+location, whole jobs (the report shows tuned models and token counts)."""
    from reconciler.drift.ignore import load_ignore
    from reconciler.drift.report import build_report
    from reconciler.plan.planner import plan
    from reconciler.plan.refresh import parents_of, read_versions, refresh

    planning = request.plan
    rules = load_ignore(request.ignore_file or DEFAULT_IGNORE_FILE, required=request.ignore_file is not None)
    desired = load_desired(planning)
    store = open_store(planning.state)
    with store.lock("drift", timeout=planning.state.lock_timeout), open_client(planning.connection) as client:
        state = store.load()
        parents = parents_of(desired, state)
        default = planning.defaults.parent
        if request.include_unmanaged and default and default not in parents:
            parents.append(default)  # hand-made jobs are looked for where the user works, too
        live = refresh(client, parents, state, parallelism=planning.connection.parallelism,
                       include_unmanaged=request.include_unmanaged, versions=read_versions(desired, state))
    return build_report(desired, state, live, plan(desired, state, live, targets=planning.targets),
                        unmanaged=live.unmanaged, rules=rules, targets=planning.targets)


# --- graph ---------------------------------------------------------------------------------


def job_graph(request: GraphRequest) -> JobGraph:
    """The graph of the manifests' references (offline; a manifest problem is an error)."""
    from reconciler.graph.graph import build_graph

    return build_graph(load_desired(PlanRequest(paths=request.paths, defaults=request.defaults)))


# --- import --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    address: str
    job: LiveJob


def _job_id(job_name: str, location: str) -> str:
    """The numeric id of `job_name` (a full name or a bare id), checking a full name's location."""
    parts = job_name.strip("/").split("/")
    if len(parts) == 1 and parts[0].isdigit():
        return parts[0]
    if (len(parts) == 6 and parts[0] == "projects" and parts[2] == "locations" and parts[4] == "tuningJobs"
            and parts[5].isdigit()):
        if parts[3] != location:
            raise PlanError(f"{job_name} is in location {parts[3]}, but the key is in {location}")
        return parts[5]
    raise PlanError(f"invalid job name {job_name!r}: expected projects/P/locations/L/tuningJobs/ID or the bare ID")


def import_job(request: ImportRequest) -> Imported:
    """Start tracking a job made outside the tool for a key the manifests declare."""
    from reconciler.api.errors import NotFoundError
    from reconciler.apischema.normalize import spec_hash
    from reconciler.plan.live import LiveJob
    from reconciler.state.model import StateEntry

    key = request.key
    matches = [d for d in load_desired(request.plan) if d.key == key or d.address == key]
    if not matches:
        raise PlanError(f"no manifest declares key {key!r}: add it to the manifests before importing")
    if len(matches) > 1:
        raise PlanError(f"key {key!r} is declared in several locations: "
                        + ", ".join(d.address for d in matches) + "; give project/location/key")
    d = matches[0]
    job_id = _job_id(request.job_name, d.location)
    store = open_store(request.plan.state)
    with (store.lock("import", timeout=request.plan.state.lock_timeout),
          open_client(replace(request.plan.connection, parallelism=1)) as client):
        state = store.load()
        existing = state.entries.get(d.address)
        if existing and existing.job_name:
            raise PlanError(f"{d.address} already tracks {existing.job_name}; "
                            f"run `reconciler state rm {d.key}` first to import another job")
        # Fetched through the key's own project and location: a job of another project is a 404.
        try:
            job = LiveJob.from_api(client.get_job(f"{d.parent}/tuningJobs/{job_id}", api_version=d.api_version),
                                   d.api_version)
        except NotFoundError:
            raise PlanError(f"no tuning job {job_id} in {d.parent} (the project and location of "
                            f"{d.address})") from None
        for other in state.entries.values():
            if job.name == other.job_name or (job.name in other.history and other.address != d.address):
                raise PlanError(f"{job.name} is already tracked as {other.address}")
        if job.key is not None and job.key != d.key:
            raise PlanError(f"{job.name} is labelled for key {job.key!r}, not {d.key!r}")
        entry = StateEntry(key=d.key, project=d.project, location=d.location, job_name=job.name,
                           spec_hash=spec_hash(job.raw), job_state=job.state, update_time=job.update_time,
                           history=list(existing.history) if existing else [], imported=job.key is None,
                           api_version=None if d.api_version == V1 else d.api_version)
        store.record(entry, d.address)
        store.commit()
    return Imported(d.address, job)


# --- state edits ---------------------------------------------------------------------------


def read_state(path: str) -> tuple[State, bool]:
    """The state and whether its file exists. No lock: a read-only view (a running apply's
    journal is folded in memory only)."""
    store = open_store(StateRef(path))
    return store.load(), store.exists()


def find_entries(state: State, key: str, path: str) -> list[StateEntry]:
    """The entries `key` (a key or project/location/key) names; an error naming what is
    tracked when there is none."""
    found = state.find(key)
    if not found:
        known = sorted(state.entries)
        hint = f" (tracked: {', '.join(known[:10])}{', ...' if len(known) > 10 else ''})" if known else \
            " (it tracks nothing)"
        raise StateError(f"no entry for {key} in state file {path}{hint}")
    return found


def remove_entries(ref: StateRef, keys: list[str], dry_run: bool = False) -> tuple[list[StateEntry], State]:
    """Stop tracking `keys`, all or none (nothing is changed in Vertex AI)."""
    store = open_store(ref)
    if not store.exists():
        raise StateError(f"state file {ref.path} does not exist: nothing to remove")
    with store.lock("state rm", timeout=ref.lock_timeout):
        state = store.load()
        # Resolve every argument before changing anything: all or nothing.
        chosen: dict[str, StateEntry] = {}
        for key in keys:
            found = find_entries(state, key, ref.path)
            if len(found) > 1:
                raise StateError(
                    f"{key} matches several entries ({', '.join(e.address for e in found)}); "
                    "give the full PROJECT/LOCATION/KEY address"
                )
            chosen[found[0].address] = found[0]
        if not dry_run:
            for address in chosen:
                del state.entries[address]
            store.save(state)
    return list(chosen.values()), state


def move_entry(ref: StateRef, source: str, target: str) -> State:
    """Track `source` as `target`: the same key and location under another spelling of its
    project (id or number). Nothing is changed in Vertex AI."""
    parts = [source.split("/"), target.split("/")]
    if any(len(p) != 3 or not all(p) for p in parts):
        raise StateError("give both addresses in full, PROJECT/LOCATION/KEY")
    (_, loc, key), (project, new_loc, new_key) = parts
    if (loc, key) != (new_loc, new_key):
        # The job's labels name its key, and its name its location: neither can follow a move.
        raise StateError("state mv changes only the project spelling: key and location must stay the same")
    store = open_store(ref)
    if not store.exists():
        raise StateError(f"state file {ref.path} does not exist: nothing to move")
    with store.lock("state mv", timeout=ref.lock_timeout):
        state = store.load()
        entry = state.entries.get(source)
        if entry is None:
            find_entries(state, source, ref.path)  # raises, listing what is tracked
            raise AssertionError("unreachable")
        if target in state.entries:
            raise StateError(f"{target} is already tracked; `reconciler state rm` it first")
        del state.entries[source]
        state.entries[target] = replace(entry, project=project)
        store.save(state)
    return state


def force_unlock(path: str, lock_id: str, confirm: Callable[[LockInfo, bool | None], bool]) -> bool:
    """Remove the lock `lock_id` from state `path` once `confirm(lock, holder_alive)` agrees
    (holder_alive: None when it runs on another host). False when not confirmed."""
    from reconciler.state.lock import describe_lock, lock_holder_alive

    store = open_store(StateRef(path))
    info = store.current_lock()
    if info is None:
        raise StateError(f"state file {path} is not locked")
    if info.id != lock_id.strip():
        raise StateError(f"lock ID {lock_id} does not match the lock on state file {path} ({describe_lock(info)})")
    if not confirm(info, lock_holder_alive(info)):
        return False
    store.force_unlock(lock_id.strip())
    return True


# --- moving state: pull, push, migrate -----------------------------------------------------


def pull_state(path: str) -> State:
    """The state as it is now (no lock: a running apply's journal is folded in, in memory)."""
    store = open_store(StateRef(path))
    state = store.load()
    if not store.exists():
        raise StateError(f"no state at {path} yet")
    return state


@dataclass(frozen=True)
class Pushed:
    state: State
    written: bool  # False: it held exactly this state already
    overridden: str | None = None  # the refusal --force overrode


def push_state(ref: StateRef, source: str, force: bool = False) -> Pushed:
    """Write the state file `source` to `ref`, refusing another lineage, an older serial, or
    the same serial with other content unless `force`."""
    from pathlib import Path

    from reconciler.state.model import state_from_json
    from reconciler.state.transfer import push_refusal, pushed, unchanged

    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StateError(f"state file {source}: not UTF-8 text") from None
    except OSError as exc:
        raise StateError(f"cannot read state file {source}: {exc.strerror or exc}") from None
    incoming = state_from_json(text, source)
    store = open_store(ref)
    with store.lock("state push", timeout=ref.lock_timeout):
        loaded = store.load()
        current = loaded if store.exists() else None
        refusal = push_refusal(current, incoming)
        if refusal and not force:
            raise StateError(f"refusing to push {source} to {ref.path}: {refusal}. Use --force to push it anyway")
        if unchanged(current, incoming):
            return Pushed(loaded, written=False)
        out = pushed(current, incoming, force)
        store.overwrite(out)
    return Pushed(out, written=True, overridden=refusal)


@dataclass(frozen=True)
class Migrated:
    state: State
    copied: bool  # False: the target held this state already


def migrate_state(ref: StateRef, target: str) -> Migrated:
    """Copy the state at `ref` to `target` (a file or gs:// URL) under both locks, then read
    it back to check. The source is left as it was."""
    from contextlib import ExitStack

    from reconciler.state.transfer import migrate_refusal

    if target == ref.path:
        raise StateError(f"--to {target} is the state itself")
    source, destination = open_store(ref), open_store(StateRef(target))
    with ExitStack() as locks:
        # Both locks, always in the same order: two migrations the other way round cannot deadlock.
        for store in sorted((source, destination), key=lambda s: s.location):
            locks.enter_context(store.lock("state migrate", timeout=ref.lock_timeout))
        state = source.load()
        if not source.exists():
            raise StateError(f"nothing to migrate: no state at {ref.path}")
        there = destination.load()
        exists = destination.exists()
        refusal = migrate_refusal(state, there, exists)
        if refusal:
            raise StateError(f"refusing to migrate to {target}: {refusal}")
        if not exists:
            destination.overwrite(replace(state, entries=dict(state.entries)))
        check = open_store(StateRef(target)).load()  # read back through a store of its own
        if (check.lineage, check.serial, check.entries) != (state.lineage, state.serial, state.entries):
            raise StateError(f"migration to {target} did not verify: it reads back as lineage {check.lineage}, "
                             f"serial {check.serial}, {len(check.entries)} keys; {ref.path} is unchanged")
    return Migrated(state, copied=not exists)


# --- workspaces ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    name: str
    location: str
    exists: bool
    serial: int = 0
    lineage: str | None = None
    keys: int = 0
    lock: LockInfo | None = None


def list_workspaces(location: str) -> tuple[str, dict[str, str]]:
    """The workspace root of `location` and name -> location of each state under it."""
    from reconciler.state.url import root_of
    from reconciler.state.workspaces import list_workspaces as listing

    root = root_of(location)
    return root, listing(root)


def show_workspace(location: str) -> Workspace:
    from reconciler.state.url import workspace_name

    store = open_store(StateRef(location))
    state = store.load()
    exists = store.exists()
    return Workspace(workspace_name(location), location, exists, state.serial if exists else 0,
                     state.lineage if exists else None, len(state.entries), store.current_lock())


def delete_workspace(ref: StateRef, force: bool = False) -> Workspace:
    """Delete a workspace's state. Never `default`; one that tracks keys only with `force`
    (the jobs themselves are not touched)."""
    from reconciler.state.url import DEFAULT_WORKSPACE, workspace_name

    name = workspace_name(ref.path)
    if name == DEFAULT_WORKSPACE:
        raise StateError("the default workspace cannot be deleted")
    store = open_store(ref)
    with store.lock("workspace delete", timeout=ref.lock_timeout):
        state = store.load()
        if not store.exists():
            raise StateError(f"workspace {name} does not exist (no state at {ref.path})")
        if state.entries and not force:
            raise StateError(f"workspace {name} still tracks {len(state.entries)} key(s) (`reconciler state list "
                             f"--state {ref.path}`); delete it anyway with --force (the jobs stay in Vertex AI, "
                             "untracked)")
        store.delete()
    return Workspace(name, ref.path, exists=False, serial=state.serial, lineage=state.lineage,
                     keys=len(state.entries))


# --- jobs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedJob:
    project: str  # as the user named it (the parent listed), not the number in the job's name
    location: str
    job: LiveJob


def job_parents(given: tuple[str, str] | None, state_path: str) -> list[tuple[str, str]]:
    """Where to list: the given project+location and every one the state tracks."""
    parents = {given} if given else set()
    store = open_store(StateRef(state_path))
    if store.exists():
        parents |= {(e.project, e.location) for e in store.load().entries.values()}  # read-only, no lock
    if not parents:
        raise ConfigError("no project and location to list: pass --project and --location (or set "
                          "$GOOGLE_CLOUD_PROJECT and $GOOGLE_CLOUD_LOCATION), or point --state at a state file")
    return sorted(parents)


def job_versions(state_path: str) -> dict[tuple[str, str], str]:
    """The REST version to list each project+location through: v1beta1 where state tracks a
    v1beta1 job (so that its tuningJobState shows), else v1."""
    from reconciler.plan.refresh import read_versions

    store = open_store(StateRef(state_path))
    return read_versions((), store.load()) if store.exists() else {}  # read-only, no lock


def list_jobs(client: TuningClient, parents: list[tuple[str, str]], show_all: bool,
              user_filter: str | None, versions: dict[tuple[str, str], str] | None = None) -> list[ListedJob]:
    """One paginated list per project+location (through `versions`' REST version, default v1).
    Managed jobs are filtered on the server and checked again here (how exactly the server
    filters labels is not documented)."""
    from reconciler.model import MANAGED_FILTER, parent_of
    from reconciler.plan.live import LiveJob

    api_filter = user_filter
    if not show_all:
        api_filter = f"{MANAGED_FILTER} AND ({user_filter})" if user_filter else MANAGED_FILTER
    versions = versions or {}
    found = [ListedJob(project, location, job)
             for project, location in parents
             for version in [versions.get((project, location), V1)]
             for job in (LiveJob.from_api(j, version) for j in client.list_jobs(
                 parent_of(project, location), filter=api_filter, api_version=version))
             if show_all or job.managed]
    return sorted(found, key=lambda j: (j.project, j.location, j.job.key is None, j.job.key or "",
                                        j.job.create_time, j.job.name))
