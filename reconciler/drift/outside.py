"""What changed outside the tool since state was written (`plan --refresh-only`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TextIO

from reconciler.plan.live import LiveView, labels_changed
from reconciler.render.plan_text import clean
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
                                       f"{(entry.job_state or 'unknown').removeprefix('JOB_STATE_')} -> "
                                       f"{job.short_state}"))
    return found


def print_outside_changes(found: list[OutsideChange], out: TextIO, as_json: bool = False) -> None:
    if as_json:
        out.write(json.dumps({"format_version": "1.0", "outside_changes": [f.to_json() for f in found]},
                             indent=2, sort_keys=True) + "\n")
        return
    if not found:
        out.write("No changes. State matches what exists in Vertex AI.\n")
        return
    out.write("Changes outside tuning-reconciler since the last apply:\n\n")
    for f in found:
        out.write(f"  ~ {clean(f.key)}: {clean(f.detail)} ({clean(f.job_name)})\n")
    out.write(f"\n{len(found)} outside change(s).\n")
