"""Read live state: one paginated, label-filtered `list` per project+location, in parallel,
plus a `get` only for state jobs the list did not return. Never one `get` per job."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from reconciler.live import LiveJob, LiveView
from reconciler.model import MANAGED_BY_LABEL, MANAGED_BY_VALUE, DesiredJob
from reconciler.state import State

MANAGED_FILTER = f'labels.{MANAGED_BY_LABEL}="{MANAGED_BY_VALUE}"'


def parents_of(desired: Iterable[DesiredJob], state: State) -> list[tuple[str, str]]:
    pairs = {(d.project, d.location) for d in desired}
    pairs |= {(e.project, e.location) for e in state.entries.values()}
    return sorted(pairs)


def list_managed(client, project: str, location: str) -> list[LiveJob]:
    """Managed jobs of one project+location. Labels are checked here too: how exactly the
    server applies a label filter is not documented, so it is never trusted alone."""
    jobs = client.list_jobs(f"projects/{project}/locations/{location}", filter=MANAGED_FILTER)
    return [job for job in map(LiveJob.from_api, jobs) if job.managed]


def _get_or_none(client, name: str) -> LiveJob | None:
    from reconciler.client import NotFoundError

    try:
        return LiveJob.from_api(client.get_job(name))
    except NotFoundError:
        return None


def refresh(client, desired: Iterable[DesiredJob], state: State, parallelism: int = 8) -> LiveView:
    parents = parents_of(desired, state)
    workers = max(1, min(parallelism, len(parents) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh") as pool:
        listed = dict(zip(parents, pool.map(lambda pl: list_managed(client, *pl), parents)))
        view = LiveView(listed=listed)
        missing = sorted({e.job_name for e in state.entries.values() if e.job_name and view.job(e.job_name) is None})
        fetched = dict(zip(missing, pool.map(lambda name: _get_or_none(client, name), missing)))
    return LiveView(listed=listed, fetched=fetched)
