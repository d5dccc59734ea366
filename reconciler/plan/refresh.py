"""Read live state: one paginated `list` per project+location, in parallel, plus a `get` only
for state jobs the list did not return. Never one `get` per job.

The list is label-filtered to our managed jobs, or unfiltered when hand-made jobs are wanted
too (`drift --include-unmanaged`): then managed jobs are not listed a second time."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from reconciler.api.errors import NotFoundError
from reconciler.model import MANAGED_FILTER, DesiredJob, parent_of
from reconciler.plan.live import LiveJob, LiveView
from reconciler.state.model import State

# The biggest page the API serves (larger values are lowered): the fewest round trips.
LIST_PAGE_SIZE = 1000
# Output-only fields the planner reads (LiveJob); the settable ones come from the snapshot.
_PLAN_OUTPUT_FIELDS = ("name", "state", "labels", "createTime", "updateTime", "endTime", "error")


@lru_cache(maxsize=1)
def plan_fields() -> str:
    """A partial-response selection with just what planning needs: every settable field
    (for the diff) and the identity, state and times, but not the bulky output-only parts
    (tuning data statistics, checkpoints), which dominate a listed job's size."""
    from reconciler.apischema.discovery import TUNING_JOB_SCHEMA, is_output_only, snapshot_schemas

    props = snapshot_schemas()[TUNING_JOB_SCHEMA]["properties"]
    settable = [name for name, prop in props.items() if not is_output_only(prop)]
    wanted = list(dict.fromkeys([*_PLAN_OUTPUT_FIELDS, *settable]))
    return f"nextPageToken,tuningJobs({','.join(wanted)})"


def parents_of(desired: Iterable[DesiredJob], state: State) -> list[tuple[str, str]]:
    pairs = {(d.project, d.location) for d in desired}
    pairs |= {(e.project, e.location) for e in state.entries.values()}
    return sorted(pairs)


def list_jobs(client, project: str, location: str, fields: str | None = None,
              managed_only: bool = True) -> list[LiveJob]:
    """The jobs of one project+location (`fields`: a partial response, None: whole jobs).
    Labels are checked here too: how exactly the server applies a label filter is not
    documented, so it is never trusted alone."""
    jobs = client.list_jobs(parent_of(project, location), filter=MANAGED_FILTER if managed_only else None,
                            page_size=LIST_PAGE_SIZE, fields=fields)
    return [job for job in map(LiveJob.from_api, jobs) if job.managed or not managed_only]


def recorded_numbers(state: State) -> dict[str, str]:
    """The project number state's job names carry for each project id, where they agree."""
    seen: dict[str, set[str]] = {}
    for e in state.entries.values():
        if not e.project.isdigit():
            seen.setdefault(e.project, set()).update(
                name.split("/")[1] for name in [e.job_name, *e.history] if name and name.startswith("projects/"))
    return {project: next(iter(numbers)) for project, numbers in seen.items() if len(numbers) == 1}


def _get_or_none(client, name: str) -> LiveJob | None:
    try:
        return LiveJob.from_api(client.get_job(name))
    except NotFoundError:
        return None


def refresh(client, parents: Iterable[tuple[str, str]], state: State, parallelism: int = 8,
            fields: str | None = None, include_unmanaged: bool = False) -> LiveView:
    """`fields=plan_fields()` reads only what the planner needs; None reads whole jobs (drift
    reports on tuned models and token counts). `include_unmanaged` also returns the jobs
    without our labels that state does not track, as `LiveView.unmanaged`."""
    parents = sorted(set(parents))
    if hasattr(client, "expect_project_number"):
        # A list naming jobs by another number than state did is about another project.
        for project, number in recorded_numbers(state).items():
            client.expect_project_number(project, number)
    workers = max(1, min(parallelism, len(parents) or 1))
    tracked = {n for e in state.entries.values() for n in [e.job_name, *e.history] if n}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
        everything = dict(zip(parents, pool.map(
            lambda pl: list_jobs(client, *pl, fields, managed_only=not include_unmanaged), parents)))
        listed = {p: [j for j in jobs if j.managed] for p, jobs in everything.items()}
        # A job state tracks whose labels were removed by hand is out-of-band drift, not a hand-made job.
        fetched: dict[str, LiveJob | None] = {
            j.name: j for jobs in everything.values() for j in jobs if not j.managed and j.name in tracked}
        unmanaged = {p: [j for j in jobs if not j.managed and j.name not in tracked]
                     for p, jobs in everything.items()} if include_unmanaged else None
        view = LiveView(listed=listed, fetched=fetched)
        missing = sorted({e.job_name for e in state.entries.values() if e.job_name and view.job(e.job_name) is None})
        fetched.update(zip(missing, pool.map(lambda name: _get_or_none(client, name), missing)))
    return LiveView(listed=listed, fetched=fetched, unmanaged=unmanaged)
