"""The shared vocabulary of every stage: desired jobs, identity labels, job states, addresses,
targeting and drift categories. Data and pure helpers only; imports nothing of the project
but `defaults`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.defaults import LOCATION_ENV, PROJECT_ENV

API_VERSION = "tuning.reconciler/v1"
API_VERSION_V1BETA1 = "tuning.reconciler/v1beta1"
KIND = "TuningJob"

# The REST versions of the tuningJobs API, and the manifest apiVersion that selects each.
V1 = "v1"
V1BETA1 = "v1beta1"
REST_VERSIONS: dict[str, str] = {API_VERSION: V1, API_VERSION_V1BETA1: V1BETA1}


def read_version(versions: Iterable[str | None]) -> str:
    """The version to read a location through: v1beta1 (a superset of v1) when any job there
    is v1beta1, so that no field of those jobs is lost; else v1."""
    return V1BETA1 if V1BETA1 in set(versions) else V1

# Identity labels: every job the tool creates carries the first three; the request label
# makes a create whose response was lost findable again (exactly-once creation).
MANAGED_BY_LABEL = "managed-by"
MANAGED_BY_VALUE = "tuning-reconciler"
KEY_LABEL = "reconciler-key"
SPEC_LABEL = "reconciler-spec"
REQUEST_LABEL = "reconciler-request"
RESERVED_LABELS = frozenset({MANAGED_BY_LABEL, KEY_LABEL, SPEC_LABEL, REQUEST_LABEL})
MANAGED_FILTER = f'labels.{MANAGED_BY_LABEL}="{MANAGED_BY_VALUE}"'

KEY_PATTERN = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")

STATE_PREFIX = "JOB_STATE_"
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
# Finished without a result the user wanted: reported, or re-created under onFailure=recreate.
FAILED_STATES = frozenset({"JOB_STATE_FAILED", "JOB_STATE_EXPIRED", "JOB_STATE_CANCELLED"})
JOB_STATES = frozenset(ACTIVE_STATES | FINISHED_STATES | {"JOB_STATE_UNSPECIFIED"})
# v1beta1 only: the finer state of a job the overall state calls PENDING or RUNNING.
TUNING_STATE_PREFIX = "TUNING_JOB_STATE_"

# Drift categories (reports, ignore rules and the manifest schema's ignoreDrift all use them).
PENDING = "pending-change"
OUT_OF_BAND = "out-of-band"
ORPHAN = "orphan"
UNMANAGED = "unmanaged"
DRIFT_CATEGORIES: tuple[str, ...] = (PENDING, OUT_OF_BAND, ORPHAN, UNMANAGED)


def short_state(state: str | None) -> str:
    """`JOB_STATE_RUNNING` -> `RUNNING`; "" for no state."""
    return state.removeprefix(STATE_PREFIX) if state else ""


def state_text(state: str | None, tuning_state: str | None = None) -> str:
    """`RUNNING`, or `RUNNING (TUNING)` when the service gave a tuningJobState."""
    short = short_state(state)
    detail = (tuning_state or "").removeprefix(TUNING_STATE_PREFIX)
    if not detail or detail == "UNSPECIFIED":
        return short
    return f"{short} ({detail})" if short else detail


def parent_of(project: str, location: str) -> str:
    return f"projects/{project}/locations/{location}"


def address_of(project: str, location: str, key: str) -> str:
    """Unique across the whole configuration: keys are unique per project+location."""
    return f"{project}/{location}/{key}"


def targeted(address: str, targets: Iterable[str] | None) -> bool:
    """Whether `--target` picks `address`: no targets, the address itself, or its bare key."""
    return targets is None or address in targets or address.rsplit("/", 1)[-1] in targets


@dataclass(frozen=True)
class Defaults:
    """Project and location for manifests that name none: the flag, else the environment."""

    project: str | None = None
    location: str | None = None

    @classmethod
    def resolve(cls, project: str | None, location: str | None, env: Mapping[str, str]) -> Defaults:
        return cls(project or env.get(PROJECT_ENV) or None, location or env.get(LOCATION_ENV) or None)

    @property
    def parent(self) -> tuple[str, str] | None:
        """(project, location) when both are known."""
        return (self.project, self.location) if self.project and self.location else None


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
    on_upstream_change: str = "retune"  # retune | keep (a job built from another job's output)
    # A tracked job the service no longer returns (404: deleted, history expired): report it
    # (never bill again unasked), or create it again.
    on_missing: str = "report"  # report | recreate


@dataclass(frozen=True)
class DesiredJob:
    """One manifest document after validation and defaulting of project/location."""

    key: str
    project: str
    location: str
    spec: dict
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    source: SourcePos = field(default_factory=lambda: SourcePos("<memory>"))
    api_version: str = V1  # the REST version its manifest's apiVersion selects
    # The spec's comparable form and its hash, computed once when it is loaded (and kept in the
    # manifest cache) for a spec without references; None: the planner computes them.
    normalized: dict | None = field(default=None, compare=False, repr=False)
    spec_hash: str | None = field(default=None, compare=False, repr=False)

    @property
    def parent(self) -> str:
        return parent_of(self.project, self.location)

    @property
    def address(self) -> str:
        return address_of(self.project, self.location, self.key)
