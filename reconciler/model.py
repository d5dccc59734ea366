"""Data shared by every layer: desired jobs from manifests and the identity labels."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

API_VERSION = "tuning.reconciler/v1"
KIND = "TuningJob"

# Identity labels: every job the tool creates carries the first three; the request label
# makes a create whose response was lost findable again (exactly-once creation).
MANAGED_BY_LABEL = "managed-by"
MANAGED_BY_VALUE = "tuning-reconciler"
KEY_LABEL = "reconciler-key"
SPEC_LABEL = "reconciler-spec"
REQUEST_LABEL = "reconciler-request"
RESERVED_LABELS = frozenset({MANAGED_BY_LABEL, KEY_LABEL, SPEC_LABEL, REQUEST_LABEL})

KEY_PATTERN = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")

ACTIVE_STATES = frozenset(
    {
        "JOB_STATE_QUEUED",
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_CANCELLING",
        "JOB_STATE_PAUSED",
        "JOB_STATE_UPDATING",
    }
)
FINISHED_STATES = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    }
)


@dataclass(frozen=True)
class SourcePos:
    """Where something stands in a manifest file (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Lifecycle:
    on_spec_change: str = "replace"  # replace | wait | fail
    on_failure: str = "report"  # report | recreate
    on_base_model_change: str = "retune"  # retune | rebase
    prevent_cancel: bool = False
    ignore_drift: tuple[str, ...] = ()


@dataclass(frozen=True)
class DesiredJob:
    """One manifest document after validation and defaulting of project/location."""

    key: str
    project: str
    location: str
    spec: dict
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    source: SourcePos = field(default_factory=lambda: SourcePos("<memory>"))

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def address(self) -> str:
        """Unique across the whole configuration: keys are unique per project+location."""
        return f"{self.project}/{self.location}/{self.key}"
