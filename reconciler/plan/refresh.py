"""Read live state: one paginated, label-filtered `list` per project+location, in parallel,
plus a `get` only for state jobs the list did not return. Never one `get` per job."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from reconciler.plan.live import LiveJob, LiveView
from reconciler.model import MANAGED_BY_LABEL, MANAGED_BY_VALUE, DesiredJob
from reconciler.state.model import State

MANAGED_FILTER = f'labels.{MANAGED_BY_LABEL}="{MANAGED_BY_VALUE}"'
# The biggest page the API serves (larger values are lowered): the fewest round trips.
LIST_PAGE_SIZE = 1000
# Output-only fields the planner reads (LiveJob); the settable ones come from the snapshot.
_PLAN_OUTPUT_FIELDS = ("name", "state", "labels", "createTime", "updateTime", "endTime", "error")


@lru_cache(maxsize=1)
def plan_fields() -> str:
    """A partial-response selection with just what planning needs: every settable field
    (for the diff) and the identity, state and times, but not the bulky output-only parts
    (tuning data statistics, checkpoints), which dominate a listed job's size."""
    from reconciler.apischema.normalize import TUNING_JOB_SCHEMA, discovery_schemas, is_output_only

    props = discovery_schemas()[TUNING_JOB_SCHEMA]["properties"]
    settable = [name for name, prop in props.items() if not is_output_only(prop)]
    wanted = list(dict.fromkeys([*_PLAN_OUTPUT_FIELDS, *settable]))
    return f"nextPageToken,tuningJobs({','.join(wanted)})"


def parents_of(desired: Iterable[DesiredJob], state: State) -> list[tuple[str, str]]:
    pairs = {(d.project, d.location) for d in desired}
    pairs |= {(e.project, e.location) for e in state.entries.values()}
    return sorted(pairs)


def list_managed(client, project: str, location: str, fields: str | None = None) -> list[LiveJob]:
    """Managed jobs of one project+location (`fields`: a partial response, None: whole jobs).
    Labels are checked here too: how exactly the server applies a label filter is not
    documented, so it is never trusted alone."""
    jobs = client.list_jobs(f"projects/{project}/locations/{location}", filter=MANAGED_FILTER,
                            page_size=LIST_PAGE_SIZE, fields=fields)
    return [job for job in map(LiveJob.from_api, jobs) if job.managed]


def _get_or_none(client, name: str) -> LiveJob | None:
    from reconciler.api.client import NotFoundError

    try:
        return LiveJob.from_api(client.get_job(name))
    except NotFoundError:
        return None


def refresh(client, desired: Iterable[DesiredJob], state: State, parallelism: int = 8,
            fields: str | None = None) -> LiveView:
    """`fields=plan_fields()` reads only what the planner needs; None reads whole jobs
    (drift reports on tuned models and token counts)."""
    parents = parents_of(desired, state)
    workers = max(1, min(parallelism, len(parents) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
        listed = dict(zip(parents, pool.map(lambda pl: list_managed(client, *pl, fields), parents)))
        view = LiveView(listed=listed)
        missing = sorted({e.job_name for e in state.entries.values() if e.job_name and view.job(e.job_name) is None})
        fetched = dict(zip(missing, pool.map(lambda name: _get_or_none(client, name), missing)))
    return LiveView(listed=listed, fetched=fetched)
