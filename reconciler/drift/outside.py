"""What changed outside the tool since state was written (`plan --refresh-only`)."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model import short_state
from reconciler.plan.live import LiveView, labels_changed
from reconciler.state.model import State


@dataclass(frozen=True)
class OutsideChange:
    address: str
    key: str
    job_name: str
    kind: str  # state-changed | gone | labels-changed
    detail: str

    def to_json(self) -> dict:
        return {"address": self.address, "key": self.key, "job": self.job_name, "kind": self.kind,
                "detail": self.detail}


def outside_changes(state: State, live: LiveView) -> list[OutsideChange]:
    found: list[OutsideChange] = []
    for address, entry in sorted(state.entries.items()):
        if not entry.job_name:
            continue
        job = live.job(entry.job_name)
        if job is None:
            if live.gone(entry.job_name):
                found.append(OutsideChange(address, entry.key, entry.job_name, "gone", "job no longer exists"))
            continue
        if labels_changed(job, entry.key, entry.imported):
            found.append(OutsideChange(address, entry.key, job.name, "labels-changed",
                                       "identity labels were changed or removed"))
        if job.state != entry.job_state:
            found.append(OutsideChange(address, entry.key, job.name, "state-changed",
                                       f"{short_state(entry.job_state) or 'unknown'} -> "
                                       f"{job.short_state}"))
    return found
