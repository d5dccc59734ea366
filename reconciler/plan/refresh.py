"""Read live state: one paginated `list` per project+location, in parallel, plus a `get` only
for state jobs the list did not return. Never one `get` per job.

The list is label-filtered to our managed jobs, or unfiltered when hand-made jobs are wanted
too (`drift --include-unmanaged`): then managed jobs are not listed a second time.

Each location is read through one REST version: v1beta1 when any job the manifests or the state
place there is v1beta1 (a v1 read would leave their v1beta1 fields out), else v1."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from reconciler.api.errors import NotFoundError
from reconciler.model import MANAGED_FILTER, V1, DesiredJob, parent_of, read_version
from reconciler.plan.live import LiveJob, LiveView
from reconciler.state.model import State

# The biggest page the API serves (larger values are lowered): the fewest round trips.
LIST_PAGE_SIZE = 1000
# Output-only fields the planner reads (LiveJob); the settable ones come from the snapshot.
# `tunedModel(model,endpoint)`: the outputs other jobs' references use (not its checkpoints).
_PLAN_OUTPUT_FIELDS = ("name", "state", "labels", "createTime", "updateTime", "endTime", "error",
                       "tunedModel(model,endpoint)")


@lru_cache(maxsize=2)
def plan_fields(version: str = V1) -> str:
    """A partial-response selection with just what planning needs: every settable field of
    `version` (for the diff) and the identity, state and times, but not the bulky output-only
    parts (tuning data statistics, checkpoints), which dominate a listed job's size."""
    from reconciler.apischema.discovery import is_output_only, snapshot_schemas
    from reconciler.apischema.versions import surface

    props = snapshot_schemas(version)[surface(version).tuning_job]["properties"]
    settable = [name for name, prop in props.items() if not is_output_only(prop)]
    shown = ["tuningJobState"] if "tuningJobState" in props else []  # v1beta1's finer state
    wanted = list(dict.fromkeys([*_PLAN_OUTPUT_FIELDS, *shown, *settable]))
    return f"nextPageToken,tuningJobs({','.join(wanted)})"


Fields = str | Callable[[str], str] | None  # a selection, one per version (`plan_fields`), or whole jobs


def read_versions(desired: Iterable[DesiredJob], state: State) -> dict[tuple[str, str], str]:
    """The REST version each project+location is read through (see the module docstring)."""
    found: dict[tuple[str, str], set[str]] = {}
    for d in desired:
        found.setdefault((d.project, d.location), set()).add(d.api_version)
    for e in state.entries.values():
        found.setdefault((e.project, e.location), set()).add(e.api_version or V1)
    return {pair: read_version(versions) for pair, versions in found.items()}


def parents_of(desired: Iterable[DesiredJob], state: State) -> list[tuple[str, str]]:
    pairs = {(d.project, d.location) for d in desired}
    pairs |= {(e.project, e.location) for e in state.entries.values()}
    return sorted(pairs)


def list_jobs(client, project: str, location: str, fields: Fields = None,
              managed_only: bool = True, api_version: str = V1) -> list[LiveJob]:
    """The jobs of one project+location (`fields`: a partial response, None: whole jobs).
    Labels are checked here too: how exactly the server applies a label filter is not
    documented, so it is never trusted alone."""
    selection = fields(api_version) if callable(fields) else fields
    jobs = client.list_jobs(parent_of(project, location), filter=MANAGED_FILTER if managed_only else None,
                            page_size=LIST_PAGE_SIZE, fields=selection, api_version=api_version)
    return [job for job in (LiveJob.from_api(j, api_version) for j in jobs) if job.managed or not managed_only]


def recorded_numbers(state: State) -> dict[str, str]:
    """The project number state's job names carry for each project id, where they agree."""
    seen: dict[str, set[str]] = {}
    for e in state.entries.values():
        if not e.project.isdigit():
            seen.setdefault(e.project, set()).update(
                name.split("/")[1] for name in [e.job_name, *e.history] if name and name.startswith("projects/"))
    return {project: next(iter(numbers)) for project, numbers in seen.items() if len(numbers) == 1}


def _get_or_none(client, name: str, api_version: str = V1) -> LiveJob | None:
    try:
        return LiveJob.from_api(client.get_job(name, api_version=api_version), api_version)
    except NotFoundError:
        return None


def refresh(client, parents: Iterable[tuple[str, str]], state: State, parallelism: int = 8,
            fields: Fields = None, include_unmanaged: bool = False,
            versions: dict[tuple[str, str], str] | None = None) -> LiveView:
    """`fields=plan_fields` reads only what the planner needs (a selection per version); None
    reads whole jobs (drift reports on tuned models and token counts). `include_unmanaged` also
    returns the jobs without our labels that state does not track, as `LiveView.unmanaged`.
    `versions`: the REST version per project+location (`read_versions`; default: from state)."""
    parents = sorted(set(parents))
    versions = versions if versions is not None else read_versions((), state)
    if hasattr(client, "expect_project_number"):
        # A list naming jobs by another number than state did is about another project.
        for project, number in recorded_numbers(state).items():
            client.expect_project_number(project, number)
    workers = max(1, min(parallelism, len(parents) or 1))
    tracked = {n for e in state.entries.values() for n in [e.job_name, *e.history] if n}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
        everything = dict(zip(parents, pool.map(
            lambda pl: list_jobs(client, *pl, fields, managed_only=not include_unmanaged,
                                 api_version=versions.get(pl, V1)), parents)))
        listed = {p: [j for j in jobs if j.managed] for p, jobs in everything.items()}
        # A job state tracks whose labels were removed by hand is out-of-band drift, not a hand-made job.
        fetched: dict[str, LiveJob | None] = {
            j.name: j for jobs in everything.values() for j in jobs if not j.managed and j.name in tracked}
        unmanaged = {p: [j for j in jobs if not j.managed and j.name not in tracked]
                     for p, jobs in everything.items()} if include_unmanaged else None
        view = LiveView(listed=listed, fetched=fetched)
        missing = {e.job_name: versions.get((e.project, e.location), e.api_version or V1)
                   for e in state.entries.values() if e.job_name and view.job(e.job_name) is None}
        names = sorted(missing)
        fetched.update(zip(names, pool.map(lambda name: _get_or_none(client, name, missing[name]), names)))
    return LiveView(listed=listed, fetched=fetched, unmanaged=unmanaged)
