"""The `jobs` view: one row per tuning job (kubectl style table, or a JSON/YAML document)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from reconciler.model import FINISHED_STATES, state_text
from reconciler.plan.live import LiveJob
from reconciler.text import clean, format_duration

FORMAT_VERSION = "1.0"
COLUMNS = ("KEY", "JOB ID", "STATE", "BASE MODEL", "CREATED", "DURATION", "TUNED MODEL ENDPOINT")
_STATE_COLORS = {"SUCCEEDED": "32", "FAILED": "31", "EXPIRED": "31", "CANCELLED": "35", "CANCELLING": "35",
                 "RUNNING": "33", "PENDING": "36", "QUEUED": "36"}


@dataclass(frozen=True)
class JobRow:
    key: str | None  # reconciler-key label of a managed job
    managed: bool
    name: str
    job_id: str
    project: str  # as the user named it (the parent listed), not the number in `name`
    location: str
    state: str
    base_model: str
    create_time: str
    start_time: str | None
    end_time: str | None
    duration_seconds: float | None  # from start to end, or to now while it runs
    tuned_model: str | None
    endpoint: str | None
    tuning_job_state: str | None = None  # v1beta1's finer state, when the service gave it

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def job_row(job: dict, project: str, location: str, now: float) -> JobRow:
    live = LiveJob.from_api(job)
    start, end = _parse_time(job.get("startTime")), _parse_time(job.get("endTime"))
    duration = None
    if start is not None:
        stop = end.timestamp() if end is not None else None if live.state in FINISHED_STATES else now
        duration = max(0.0, stop - start.timestamp()) if stop is not None else None
    tuned = job.get("tunedModel") if isinstance(job.get("tunedModel"), dict) else {}
    return JobRow(
        key=live.key, managed=live.managed, name=live.name, job_id=live.name.rsplit("/", 1)[-1], project=project,
        location=location, state=live.state, base_model=str(job.get("baseModel", "")),
        create_time=live.create_time, start_time=job.get("startTime"), end_time=job.get("endTime") or None,
        duration_seconds=duration, tuned_model=tuned.get("model"), endpoint=tuned.get("endpoint"),
        tuning_job_state=live.tuning_state or None,
    )


def _created(value: str) -> str:
    parsed = _parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%SZ") if parsed else (value or "-")


def render_table(rows: list[JobRow], color: Callable[[str, str], str] | None = None,
                 show_location: bool = False) -> str:
    if not rows:
        return "No tuning jobs found.\n"
    headers = (("PROJECT/LOCATION",) if show_location else ()) + COLUMNS
    table = []
    for r in rows:
        cells = ((f"{r.project}/{r.location}",) if show_location else ()) + (
            r.key if r.key is not None else "-", r.job_id, state_text(r.state, r.tuning_job_state), r.base_model or "-",
            _created(r.create_time), format_duration(r.duration_seconds), r.endpoint or "-")
        table.append(tuple(clean(c) for c in cells))
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    state_col = headers.index("STATE")
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for t in table:
        cells = [c.ljust(w) for c, w in zip(t, widths)]
        if color is not None:
            code = _STATE_COLORS.get(t[state_col].split(" ", 1)[0])
            if code:
                cells[state_col] = color(code, cells[state_col])
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def to_document(rows: list[JobRow]) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "jobs": [asdict(r) for r in rows]}
