"""A plan, as types only: what can be done to one key (`Action`) and why (`Reason`, for
display), one `Change` per key, and the problems that stop a plan from being applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reconciler.model import Lifecycle
from reconciler.plan.differ import FieldChange
from reconciler.plan.live import LiveJob

FORMAT_VERSION = "1.0"


class Action(str, Enum):
    CREATE = "create"
    REPLACE = "replace"
    CANCEL = "cancel"
    REBASE = "rebase"
    ADOPT = "adopt"
    FORGET = "forget"
    NOOP = "no-op"

    @property
    def changes_anything(self) -> bool:
        return self is not Action.NOOP

    @property
    def starts_a_job(self) -> bool:
        """Creates, replaces and rebases submit a billed job: they are paced."""
        return self in (Action.CREATE, Action.REPLACE, Action.REBASE)


class Reason(str, Enum):
    NEW_KEY = "new-key"
    JOB_GONE = "job-gone"  # the tracked job no longer exists: created again (onMissing=recreate)
    JOB_GONE_REPORTED = "job-gone-reported"  # ... reported, nothing done (onMissing=report)
    SPEC_CHANGED = "spec-changed"
    BASE_MODEL_CHANGED = "base-model-changed"
    WAITING_FOR_ACTIVE = "waiting-for-active-job"
    JOB_FAILED_REPORTED = "job-failed-reported"
    JOB_FAILED_RECREATE = "job-failed-recreate"
    UNCHANGED = "unchanged"
    UNTRACKED_JOB = "untracked-labelled-job"
    UNRECORDED_CREATE = "unrecorded-create"
    KEY_REMOVED_ACTIVE = "key-removed-active"
    KEY_REMOVED_FINISHED = "key-removed-finished"
    KEY_REMOVED_GONE = "key-removed-gone"
    KEY_MOVED = "key-moved"  # the old address's job is now tracked under a new address


@dataclass(frozen=True)
class JobRef:
    """The live job a change concerns, as it was when planned (updateTime detects staleness)."""

    name: str
    state: str
    update_time: str = ""
    create_time: str = ""
    end_time: str = ""
    error_message: str = ""

    @classmethod
    def of(cls, job: LiveJob) -> "JobRef":
        return cls(job.name, job.state, job.update_time, job.create_time, job.end_time, job.error_message)

    def to_json(self) -> dict:
        return {k: v for k, v in {
            "name": self.name, "state": self.state, "updateTime": self.update_time,
            "createTime": self.create_time, "endTime": self.end_time, "errorMessage": self.error_message,
        }.items() if v}

    @classmethod
    def from_json(cls, data: dict) -> "JobRef":
        return cls(data["name"], data.get("state", ""), data.get("updateTime", ""), data.get("createTime", ""),
                   data.get("endTime", ""), data.get("errorMessage", ""))


@dataclass(frozen=True)
class Change:
    """What to do about one key.

    `before` is the normalised spec of the live job the change concerns (None when there is
    none); `after` is the normalised desired spec from the manifests (None when the key has
    left them). Per action:
      create   before: None, or the failed/gone job being superseded; after: the job to create
      replace  before: the live job (cancelled first if active); after: the job to create
      cancel   before: the active job; after: None
      rebase   before: the SUCCEEDED job; after: the new job's spec (a newer baseModel)
      adopt    before: the untracked labelled job recorded into state; after: desired spec
      forget   before: the finished job, or None if it is gone; after: None
      no-op    before: the live job; after: desired spec (equal, or the change waits/is refused);
               for job-gone-reported: before and job None (the tracked job no longer exists)
    `job` is the live job acted on (cancelled, replaced, rebased from, adopted, forgotten).
    """

    address: str
    key: str
    project: str
    location: str
    action: Action
    reason: Reason
    detail: str
    before: dict | None = None
    after: dict | None = None
    job: JobRef | None = None
    field_changes: tuple[FieldChange, ...] = ()
    spec_hash: str | None = None
    lifecycle: Lifecycle = field(default_factory=Lifecycle)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.address, "key": self.key, "project": self.project, "location": self.location,
            "action": self.action.value, "reason": self.reason.value, "detail": self.detail,
            "before": self.before, "after": self.after,
            "job": self.job.to_json() if self.job else None,
            "fieldChanges": [c.to_json() for c in self.field_changes],
            "specHash": self.spec_hash,
            "lifecycle": {
                "onSpecChange": self.lifecycle.on_spec_change, "onFailure": self.lifecycle.on_failure,
                "onBaseModelChange": self.lifecycle.on_base_model_change,
                "preventCancel": self.lifecycle.prevent_cancel,
                "onMissing": self.lifecycle.on_missing,
            },
        }
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Change":
        from reconciler.plan.differ import ABSENT

        lc = data.get("lifecycle") or {}
        return cls(
            address=data["address"], key=data["key"], project=data["project"], location=data["location"],
            action=Action(data["action"]), reason=Reason(data["reason"]), detail=data.get("detail", ""),
            before=data.get("before"), after=data.get("after"),
            job=JobRef.from_json(data["job"]) if data.get("job") else None,
            field_changes=tuple(
                FieldChange(fc["path"], fc.get("before", ABSENT), fc.get("after", ABSENT))
                for fc in data.get("fieldChanges", [])
            ),
            spec_hash=data.get("specHash"),
            lifecycle=Lifecycle(
                on_spec_change=lc.get("onSpecChange", "replace"), on_failure=lc.get("onFailure", "report"),
                on_base_model_change=lc.get("onBaseModelChange", "retune"),
                prevent_cancel=bool(lc.get("preventCancel", False)),
                on_missing=lc.get("onMissing", "report"),
            ),
        )


@dataclass(frozen=True)
class PlanProblem:
    """A key the plan refuses to touch (preventCancel, onSpecChange=fail): apply is blocked."""

    address: str
    message: str


@dataclass
class Plan:
    changes: list[Change]
    problems: list[PlanProblem] = field(default_factory=list)
    lineage: str | None = None
    serial: int = 0

    @property
    def actionable(self) -> list[Change]:
        return [c for c in self.changes if c.action.changes_anything]

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable)

    def counts(self) -> dict[str, int]:
        out = {a.value: 0 for a in Action}
        for c in self.changes:
            out[c.action.value] += 1
        return out

    def summary(self) -> str:
        if not self.has_changes:
            return "No changes."
        n = self.counts()
        line = (f"Plan: {n['create']} to create, {n['replace']} to replace, {n['cancel']} to cancel, "
                f"{n['rebase']} to rebase.")
        extra = [f"{n[a]} to {a}" for a in ("adopt", "forget") if n[a]]
        return line[:-1] + (", " + ", ".join(extra) + "." if extra else ".")

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "lineage": self.lineage,
            "serial": self.serial,
            "summary": {k: v for k, v in self.counts().items()},
            "has_changes": self.has_changes,
            "changes": [c.to_json() for c in self.changes],
            "problems": [{"address": p.address, "message": p.message} for p in self.problems],
        }

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        return cls(
            changes=[Change.from_json(c) for c in data.get("changes", [])],
            problems=[PlanProblem(p["address"], p["message"]) for p in data.get("problems", [])],
            lineage=data.get("lineage"),
            serial=int(data.get("serial", 0)),
        )
