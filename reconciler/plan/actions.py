"""What a plan can do to one key, and why (the reason is for display only)."""

from __future__ import annotations

from enum import Enum


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
    JOB_GONE = "job-gone"
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
