"""A plan, as types only: what can be done to one key (`Action`) and why (`Reason`, for
display), one `Change` per key, and the problems that stop a plan from being applied."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reconciler.model import V1, Lifecycle
from reconciler.plan.differ import FieldChange
from reconciler.plan.live import LiveJob

FORMAT_VERSION = "1.0"


class Deferred:
    """A value computed the first time it is asked for (`change.before()`), and equal to any
    other holding the same value. The planner defers what only a plan's JSON reads: the
    comparable form of each live job, which a plan of 10,000 unchanged jobs never shows."""

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make, self._value = make, None

    def __call__(self) -> Any:
        if self._make is not None:
            self._value, self._make = self._make(), None
        return self._value

    def __eq__(self, other: object) -> bool:
        return self() == (other() if isinstance(other, Deferred) else other)

    def __repr__(self) -> str:
        return repr(self())


def value_of(value: Any) -> Any:
    return value() if isinstance(value, Deferred) else value


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
    UPSTREAM_CHANGED = "upstream-changed"  # a job it uses the output of was re-tuned
    UPSTREAM_BLOCKED = "upstream-blocked"  # a job it uses the output of failed, expired or was cancelled


@dataclass(frozen=True)
class Input:
    """A spec field of the change's job that uses other jobs' outputs (`${jobs.KEY.OUTPUT}`).

    `template` spells every reference as the full address it names; `value` is the string the
    field gets (None: known only once the upstream jobs have succeeded); `built_from` is what
    the current job was created with (from state, else the live job), None without a job."""

    path: tuple[str | int, ...]  # in the spec, e.g. ("preTunedModel", "tunedModelName")
    template: str
    upstreams: tuple[str, ...]
    value: str | None = None
    built_from: str | None = None

    @property
    def stale(self) -> bool:
        """The current job was built from something other than what the field gets now."""
        return self.built_from is not None and self.built_from != self.value

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": list(self.path), "template": self.template, "upstreams": list(self.upstreams),
                               "value": self.value}
        if self.built_from is not None:
            out["builtFrom"] = self.built_from
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Input":
        return cls(tuple(data["path"]), data["template"], tuple(data.get("upstreams", ())), data.get("value"),
                   data.get("builtFrom"))


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
    `api_version`: the REST version apply goes through (the manifest's; for a key that left
    the manifests, the one state recorded).
    `inputs`: the fields that use other jobs' outputs. `waits_for`: upstream addresses that have
    not succeeded yet; a create or replace with any runs only once they have (then `after`
    still holds their references, and `spec_hash` is None until apply resolves them).
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
    api_version: str = V1
    inputs: tuple[Input, ...] = ()
    waits_for: tuple[str, ...] = ()

    @property
    def waiting(self) -> bool:
        return bool(self.waits_for) and self.action.starts_a_job

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.address, "key": self.key, "project": self.project, "location": self.location,
            "action": self.action.value, "reason": self.reason.value, "detail": self.detail,
            "before": value_of(self.before), "after": self.after,
            "job": self.job.to_json() if self.job else None,
            "fieldChanges": [c.to_json() for c in self.field_changes],
            "specHash": self.spec_hash,
            "apiVersion": self.api_version,
            "lifecycle": {
                "onSpecChange": self.lifecycle.on_spec_change, "onFailure": self.lifecycle.on_failure,
                "onBaseModelChange": self.lifecycle.on_base_model_change,
                "preventCancel": self.lifecycle.prevent_cancel,
                "onUpstreamChange": self.lifecycle.on_upstream_change,
                "onMissing": self.lifecycle.on_missing,
            },
        }
        # Only for jobs built from other jobs' outputs: plans without references stay as they were.
        if self.inputs:
            out["inputs"] = [i.to_json() for i in self.inputs]
        if self.waits_for:
            out["waitsFor"] = list(self.waits_for)
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
            api_version=data.get("apiVersion", V1),  # plans saved before v1beta1 have none
            lifecycle=Lifecycle(
                on_spec_change=lc.get("onSpecChange", "replace"), on_failure=lc.get("onFailure", "report"),
                on_base_model_change=lc.get("onBaseModelChange", "retune"),
                prevent_cancel=bool(lc.get("preventCancel", False)),
                on_upstream_change=lc.get("onUpstreamChange", "retune"),
                on_missing=lc.get("onMissing", "report"),
            ),
            inputs=tuple(Input.from_json(i) for i in data.get("inputs", ())),
            waits_for=tuple(data.get("waitsFor", ())),
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
        waiting = sum(1 for c in self.changes if c.waiting)
        tail = f" ({waiting} waiting for upstream jobs to succeed)" if waiting else ""
        return line[:-1] + (", " + ", ".join(extra) if extra else "") + tail + "."

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
