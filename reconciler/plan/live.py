"""What Vertex AI holds right now, as read by a refresh: data only, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model import (
    KEY_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    REQUEST_LABEL,
    SPEC_LABEL,
    V1,
    short_state,
    state_text,
)


@dataclass(frozen=True)
class LiveJob:
    """One TuningJob as the API returned it; `raw` is the whole resource. `api_version`: the
    REST version it was read through (a v1 read cannot show v1beta1's fields)."""

    name: str
    state: str
    labels: dict[str, str]
    create_time: str = ""
    update_time: str = ""
    end_time: str = ""
    error_message: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    tuning_state: str = ""  # v1beta1's tuningJobState (TUNING_JOB_STATE_*), when the service gave it
    api_version: str = V1

    @classmethod
    def from_api(cls, job: dict, api_version: str = V1) -> "LiveJob":
        error = job.get("error") or {}
        tuning_state = job.get("tuningJobState")
        return cls(
            name=str(job.get("name", "")),
            state=str(job.get("state", "JOB_STATE_UNSPECIFIED")),
            labels=dict(job.get("labels") or {}),
            create_time=str(job.get("createTime", "")),
            update_time=str(job.get("updateTime", "")),
            end_time=str(job.get("endTime", "")),
            error_message=str(error.get("message", "")) if isinstance(error, dict) else "",
            raw=job,
            tuning_state=tuning_state if isinstance(tuning_state, str) else "",
            api_version=api_version,
        )

    @property
    def managed(self) -> bool:
        return self.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE

    @property
    def key(self) -> str | None:
        return self.labels.get(KEY_LABEL) if self.managed else None

    @property
    def spec_label(self) -> str | None:
        return self.labels.get(SPEC_LABEL)

    @property
    def request_label(self) -> str | None:
        return self.labels.get(REQUEST_LABEL)

    @property
    def short_state(self) -> str:
        return short_state(self.state)

    @property
    def state_text(self) -> str:
        """`RUNNING`, or `RUNNING (TUNING)` with v1beta1's finer state."""
        return state_text(self.state, self.tuning_state)


def labels_changed(job: LiveJob, key: str, imported: bool = False) -> bool:
    """Whether `job`'s identity labels no longer say it belongs to `key`. A job brought in by
    `import` may never have had them; labelled for another key, it has still changed."""
    return job.key != key and not (imported and job.key is None)


@dataclass
class LiveView:
    """Managed jobs listed per (project, location), plus `get`s for state jobs the list missed.

    `fetched[name] is None` means the get answered 404: the job no longer exists.
    `unmanaged`: jobs without our labels that state does not track, per (project, location);
    None when they were not looked for.
    """

    listed: dict[tuple[str, str], list[LiveJob]] = field(default_factory=dict)
    fetched: dict[str, LiveJob | None] = field(default_factory=dict)
    unmanaged: dict[tuple[str, str], list[LiveJob]] | None = None

    def __post_init__(self) -> None:
        self._by_name: dict[str, LiveJob] = {}
        self._by_key: dict[tuple[str, str, str], list[LiveJob]] = {}
        for (project, location), jobs in self.listed.items():
            for job in jobs:
                self._by_name[job.name] = job
                if job.key:
                    self._by_key.setdefault((project, location, job.key), []).append(job)

    def job(self, name: str) -> LiveJob | None:
        """The job by name, from the list or a get; None when unknown or gone."""
        found = self._by_name.get(name)
        return found if found is not None else self.fetched.get(name)

    def gone(self, name: str) -> bool:
        return name not in self._by_name and name in self.fetched and self.fetched[name] is None

    def jobs_for_key(self, project: str, location: str, key: str) -> list[LiveJob]:
        """Labelled jobs for a key, newest first."""
        jobs = self._by_key.get((project, location, key), [])
        return sorted(jobs, key=lambda j: (j.create_time, j.name), reverse=True)

    def all_jobs(self) -> list[LiveJob]:
        return list(self._by_name.values())
