"""`apply --wait`: follow submitted jobs until they finish, with one list per project+location
per poll (not one get per job), recording each final state."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from reconciler.model import ACTIVE_STATES, V1, read_version
from reconciler.plan.live import LiveJob
from reconciler.plan.refresh import list_jobs
from reconciler.state.model import StateEntry
from reconciler.text import clean, key_labels


def follow(client, store, started: dict[str, StateEntry], say: Callable[[str], None],
           interval: float = 10.0, timeout: float | None = None,
           sleep: Callable[[float], None] = time.sleep,
           status: Callable[[str], None] | None = None) -> dict[str, LiveJob]:
    """Poll until every job in `started` (address -> its state entry) has finished; returns
    the final job per address, recording each new job state. `say` prints a finished job;
    `status` (default `say`) the running count, which a terminal redraws in place."""
    status = status or say
    pending = {a: e for a, e in started.items() if e.job_name}
    labels = key_labels((a, e.key, e.location) for a, e in pending.items())
    final: dict[str, LiveJob] = {}
    begun = time.monotonic()
    while pending:
        # Through v1beta1 where a followed job is v1beta1: its tuningJobState then shows.
        versions: dict[tuple[str, str], set[str]] = {}
        for e in pending.values():
            versions.setdefault((e.project, e.location), set()).add(e.api_version or V1)
        seen = {job.name: job for (p, l), vs in sorted(versions.items())
                for job in list_jobs(client, p, l, api_version=read_version(vs))}
        counts: dict[str, int] = {}
        for address, entry in sorted(pending.items()):
            version = entry.api_version or V1
            job = seen.get(entry.job_name) or LiveJob.from_api(
                client.get_job(entry.job_name, api_version=version), version)
            if job.state != entry.job_state:
                entry = replace(entry, job_state=job.state, update_time=job.update_time)
                store.record(entry, address)
                pending[address] = entry
            if job.state not in ACTIVE_STATES:
                final[address] = job
                del pending[address]
                say(f"{labels[address]}: {job.short_state}{_result(job)}")
            else:
                counts[job.state_text] = counts.get(job.state_text, 0) + 1
        if not pending:
            break
        elapsed = time.monotonic() - begun
        if timeout is not None and elapsed > timeout:
            say(f"Stopped waiting after {elapsed:.0f}s: {len(pending)} job(s) still active.")
            break
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        status(f"Waiting for {len(pending)} job(s): {summary} [{elapsed:.0f}s elapsed]")
        sleep(interval)
    return final


def _result(job: LiveJob) -> str:
    tuned = job.raw.get("tunedModel") or {}
    if job.state == "JOB_STATE_SUCCEEDED" and tuned.get("endpoint"):
        return f" -> endpoint {clean(tuned['endpoint'])}"
    if job.error_message:
        return f": {clean(job.error_message)}"
    return ""
