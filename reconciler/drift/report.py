"""Drift: how the world differs from the manifests and the state, as data. Pure: no I/O.

`build_report(desired, state, live, plan, ...)` sorts every difference into one of four
categories and summarises the jobs it saw:

- pending-change: what `plan` would do about a key in the manifests (or is waiting/refusing to do),
                  and `stale-input`: a job built from another job's output that is no longer that
                  job's current result (the upstream was re-tuned);
- out-of-band:    a state job cancelled, failed or expired since the last apply, whose identity
                  labels were changed, or that no longer exists (404);
- orphan:         a state entry whose key left the manifests (the plan cancels or forgets it);
- unmanaged:      a job without the managed-by label (only when unmanaged jobs were listed).

Ignored items (lifecycle.ignoreDrift, .reconcilerignore) stay in the report with `ignored_by`
set: they are counted, never silently dropped, but do not make `has_drift` true.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from reconciler.model import (
    ACTIVE_STATES,
    DRIFT_CATEGORIES,
    ORPHAN,
    OUT_OF_BAND,
    PENDING,
    UNMANAGED,
    DesiredJob,
    SourcePos,
    short_state,
    targeted,
)
from reconciler.plan.differ import FieldChange
from reconciler.plan.live import LiveJob, LiveView, labels_changed
from reconciler.plan.model import Action, Change, Plan, Reason
from reconciler.state.model import State

if TYPE_CHECKING:
    from reconciler.drift.ignore import IgnoreRules

FORMAT_VERSION = "1.0"

CATEGORIES = DRIFT_CATEGORIES

# Kinds per category; the order is the importance used when a report must be shortened.
KINDS: dict[str, tuple[str, ...]] = {
    OUT_OF_BAND: ("stray", "gone", "labels-changed", "failed", "expired", "cancelled"),
    PENDING: ("blocked", "replace", "cancel", "create", "rebase", "adopt", "forget", "waiting", "stale-input"),
    ORPHAN: ("blocked", "cancel", "forget"),
    UNMANAGED: ("unmanaged",),
}
# Most important first: something broke > what the next apply does > clean-ups > hand-made jobs.
IMPORTANCE: tuple[str, ...] = (OUT_OF_BAND, PENDING, ORPHAN, UNMANAGED)

_OUT_OF_BAND_STATES = {
    "JOB_STATE_CANCELLING": "cancelled",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_EXPIRED": "expired",
}


@dataclass(frozen=True)
class DriftItem:
    """One difference. `address` is project/location/key, or project/location/<job id> for an
    unmanaged job (which has no key). `state` is the full JOB_STATE_* value."""

    category: str
    kind: str
    address: str
    project: str
    location: str
    key: str | None
    detail: str
    job: str | None = None
    state: str | None = None
    reason: str | None = None  # the plan's reason, for pending changes and orphans
    source: SourcePos | None = None  # the manifest that declares the key
    field_changes: tuple[FieldChange, ...] = ()
    base_model: str | None = None
    display_name: str | None = None
    create_time: str | None = None
    ignored_by: str | None = None  # "lifecycle.ignoreDrift" or ".reconcilerignore:LINE"
    tuning_state: str | None = None  # v1beta1's tuningJobState, when the service gave it

    @property
    def job_id(self) -> str | None:
        return self.job.rsplit("/", 1)[-1] if self.job else None

    def sort_key(self) -> tuple:
        return (CATEGORIES.index(self.category), self.project, self.location, self.key or "",
                self.job or "", KINDS[self.category].index(self.kind))

    def importance(self) -> tuple:
        """Smaller is more important (what a shortened report keeps first)."""
        return (IMPORTANCE.index(self.category), KINDS[self.category].index(self.kind)) + self.sort_key()


@dataclass(frozen=True)
class TunedModel:
    """The model and endpoint a SUCCEEDED managed job produced. `current`: the job state tracks."""

    address: str
    key: str
    job: str
    model: str
    endpoint: str | None
    current: bool
    create_time: str = ""


@dataclass(frozen=True)
class ActiveJob:
    address: str
    key: str
    job: str
    state: str
    create_time: str
    tuning_state: str | None = None  # v1beta1's tuningJobState, when the service gave it


@dataclass(frozen=True)
class LocationSummary:
    project: str
    location: str
    jobs_by_state: dict[str, int]  # managed jobs
    unmanaged_jobs_by_state: dict[str, int] | None  # None: unmanaged jobs were not listed
    billable_tokens: int


@dataclass(frozen=True)
class Summary:
    jobs_by_state: dict[str, int]
    unmanaged_jobs_by_state: dict[str, int] | None
    tuned_models: tuple[TunedModel, ...]
    total_billable_tokens: int
    oldest_active_job: ActiveJob | None
    locations: tuple[LocationSummary, ...]

    @property
    def managed_jobs(self) -> int:
        return sum(self.jobs_by_state.values())


@dataclass(frozen=True)
class DriftReport:
    items: tuple[DriftItem, ...]  # sorted; ignored ones included
    summary: Summary
    include_unmanaged: bool
    problems: tuple[str, ...] = ()  # the plan's refusals ("address: message")

    @property
    def drift(self) -> list[DriftItem]:
        return [i for i in self.items if i.ignored_by is None]

    @property
    def ignored(self) -> list[DriftItem]:
        return [i for i in self.items if i.ignored_by is not None]

    @property
    def has_drift(self) -> bool:
        return any(i.ignored_by is None for i in self.items)

    def counts(self) -> dict[str, int]:
        found = Counter(i.category for i in self.drift)
        return {c: found.get(c, 0) for c in CATEGORIES}

    def ignored_counts(self) -> dict[str, int]:
        found = Counter(i.category for i in self.ignored)
        return {c: found.get(c, 0) for c in CATEGORIES}


# --- building ------------------------------------------------------------------------------


def _pending_kind(change: Change, blocked: set[str]) -> str | None:
    if change.address in blocked:
        return "blocked"
    if change.action.changes_anything:
        return change.action.value
    if change.reason is Reason.WAITING_FOR_ACTIVE:
        return "waiting"
    return None  # unchanged, or a failure the plan only reports (out-of-band covers it)


def _tuning_state(live: LiveView, name: str | None) -> str | None:
    job = live.job(name) if name else None
    return job.tuning_state or None if job is not None else None


def _change_items(plan: Plan, wanted: dict[str, DesiredJob], live: LiveView) -> list[DriftItem]:
    blocked = {p.address for p in plan.problems}
    problems = {p.address: p.message for p in plan.problems}
    items: list[DriftItem] = []
    for change in plan.changes:
        desired = wanted.get(change.address)
        category = PENDING if desired is not None else ORPHAN
        kind = _pending_kind(change, blocked)
        if kind is None:
            continue
        detail = problems.get(change.address, change.detail)
        items.append(DriftItem(
            category=category, kind=kind, address=change.address, project=change.project,
            location=change.location, key=change.key, detail=detail,
            job=change.job.name if change.job else None, state=change.job.state if change.job else None,
            reason=change.reason.value, source=desired.source if desired else None,
            field_changes=change.field_changes, tuning_state=_tuning_state(live, change.job.name if change.job else None),
        ))
    return items


def _stale_items(plan: Plan, wanted: dict[str, DesiredJob]) -> list[DriftItem]:
    """Jobs built from an upstream output that is no longer the upstream's current result."""
    from reconciler.graph.references import dotted
    from reconciler.plan.inputs import short_name

    items: list[DriftItem] = []
    for change in plan.changes:
        stale = [i for i in change.inputs if i.stale]
        desired = wanted.get(change.address)
        if not stale or desired is None or change.action is Action.ADOPT:
            continue
        first = stale[0]
        ups = ", ".join(u.rsplit("/", 1)[-1] for u in first.upstreams)
        now = f"{ups} now has {short_name(first.value)}" if first.value is not None else f"{ups} is being re-tuned"
        if change.action.changes_anything:
            then = "the plan re-tunes it" + (" once the upstream has succeeded" if change.waiting else "")
        elif change.reason is Reason.UPSTREAM_BLOCKED:
            then = "not re-tuned: the upstream is blocked"
        else:
            then = f"kept (onUpstreamChange={desired.lifecycle.on_upstream_change})"
        more = f" (and {len(stale) - 1} more field(s))" if len(stale) > 1 else ""
        items.append(DriftItem(
            category=PENDING, kind="stale-input", address=change.address, project=change.project,
            location=change.location, key=change.key,
            detail=f"{dotted(first.path)} built from {short_name(first.built_from)}, but {now}{more}: {then}",
            job=change.job.name if change.job else None, state=change.job.state if change.job else None,
            reason=change.reason.value, source=desired.source))
    return items


def _out_of_band_items(state: State, live: LiveView, wanted: dict[str, DesiredJob]) -> list[DriftItem]:
    items: list[DriftItem] = []
    for address, entry in sorted(state.entries.items()):
        if not entry.job_name:
            continue
        desired = wanted.get(address)
        base = dict(category=OUT_OF_BAND, address=address, project=entry.project, location=entry.location,
                    key=entry.key, job=entry.job_name, source=desired.source if desired else None)
        job = live.job(entry.job_name)
        if job is None:
            if live.gone(entry.job_name):
                if desired is None:
                    then = "its key left the manifests: the next apply forgets it"
                elif desired.lifecycle.on_missing == "recreate":
                    then = "the next apply creates it again (onMissing=recreate)"
                else:
                    then = "nothing is done about it (onMissing=report)"
                items.append(DriftItem(kind="gone", detail=f"the job in state no longer exists (404); {then}",
                                       state=entry.job_state, **base))
            continue
        base["state"] = job.state
        base["tuning_state"] = job.tuning_state or None
        if labels_changed(job, entry.key, entry.imported):
            found = (f"reconciler-key={job.key}" if job.key else
                     "managed-by label missing" if not job.managed else "reconciler-key missing")
            items.append(DriftItem(kind="labels-changed",
                                   detail=f"identity labels were changed or removed ({found})", **base))
        kind = _OUT_OF_BAND_STATES.get(job.state)
        if kind and _OUT_OF_BAND_STATES.get(entry.job_state or "") != kind:
            before = short_state(entry.job_state) or "unknown"
            when = f" at {job.end_time}" if job.end_time else ""
            why = f": {job.error_message}" if job.error_message and kind != "cancelled" else ""
            items.append(DriftItem(kind=kind, detail=f"{before} -> {job.short_state} since the last apply{when}{why}",
                                   **base))
    return items


def _stray_items(state: State, live: LiveView, plan: Plan) -> list[DriftItem]:
    """Active jobs carrying our labels that no state entry tracks and the plan will not adopt:
    billed, but nothing would ever cancel or report them (a duplicate made by hand or by a
    lost create, a cancel that did not take, a key whose state entry was removed)."""
    tracked = {e.job_name for e in state.entries.values() if e.job_name}
    tracked |= {c.job.name for c in plan.changes if c.action is Action.ADOPT and c.job is not None}
    items: list[DriftItem] = []
    for (project, location), jobs in sorted(live.listed.items()):
        for job in jobs:
            if (job.key is None or job.state not in ACTIVE_STATES or job.state == "JOB_STATE_CANCELLING"
                    or job.name in tracked):
                continue
            tracked.add(job.name)  # once, if two spellings of a project listed it twice
            items.append(DriftItem(
                category=OUT_OF_BAND, kind="stray", address=f"{project}/{location}/{job.key}", project=project,
                location=location, key=job.key, job=job.name, state=job.state, create_time=job.create_time or None,
                tuning_state=job.tuning_state or None,
                detail=f"{job.short_state} job labelled for this key that state does not track: billed but "
                       "unmanaged; cancel it, or track it with `reconciler state rm` + `reconciler import`"))
    return items


def _unmanaged_items(unmanaged: dict[tuple[str, str], list[LiveJob]]) -> list[DriftItem]:
    items: list[DriftItem] = []
    for (project, location), jobs in sorted(unmanaged.items()):
        for job in jobs:
            job_id = job.name.rsplit("/", 1)[-1]
            raw = job.raw
            items.append(DriftItem(
                category=UNMANAGED, kind="unmanaged", address=f"{project}/{location}/{job_id}", project=project,
                location=location, key=None, job=job.name, state=job.state, tuning_state=job.tuning_state or None,
                detail="no managed-by label: made outside tuning-reconciler",
                base_model=str(raw.get("baseModel", "")) or None,
                display_name=str(raw.get("tunedModelDisplayName", "")) or None,
                create_time=job.create_time or None,
            ))
    return items


def _field_paths_ignored(item: DriftItem, patterns: Sequence[str]) -> bool:
    """A pending change whose every field change lies under an ignored spec path."""
    if not patterns or not item.field_changes:
        return False

    def under(path: str) -> bool:
        return any(path == p or path.startswith((p + ".", p + "[")) for p in patterns)

    return all(under(fc.path) for fc in item.field_changes)


def _apply_ignores(items: list[DriftItem], wanted: dict[str, DesiredJob],
                   rules: IgnoreRules | None) -> list[DriftItem]:
    out: list[DriftItem] = []
    for item in items:
        by: str | None = None
        desired = wanted.get(item.address)
        if desired is not None and desired.lifecycle.ignore_drift:
            ignore = desired.lifecycle.ignore_drift
            # Entries name categories; any other entry is a spec field path (e.g. labels.team).
            paths = [p for p in ignore if p not in CATEGORIES]
            if item.category in ignore or (item.category == PENDING and _field_paths_ignored(item, paths)):
                by = "lifecycle.ignoreDrift"
        if by is None and rules is not None:
            rule = rules.match(item.category, item.key, item.address, item.job_id)
            if rule is not None:
                by = rule.source
        out.append(replace(item, ignored_by=by) if by else item)
    return out


# --- summary -------------------------------------------------------------------------------


def billable_tokens(job: dict) -> int:
    """totalBillableTokenCount over the job's tuningDataStats (int64 strings; bad values count 0)."""
    stats = job.get("tuningDataStats")
    if not isinstance(stats, dict):
        return 0
    total = 0
    for part in stats.values():
        value = part.get("totalBillableTokenCount") if isinstance(part, dict) else None
        if isinstance(value, bool):
            continue
        try:
            total += max(0, int(value)) if value is not None else 0
        except (TypeError, ValueError):
            continue
    return total


def _managed_jobs(state: State, live: LiveView) -> dict[str, tuple[str, str, str, LiveJob]]:
    """Every managed job seen, by name: (project, location, key, job). Jobs in state whose
    labels were removed count too (they came back from a `get`, not from the list)."""
    found: dict[str, tuple[str, str, str, LiveJob]] = {}
    for (project, location), jobs in live.listed.items():
        for job in jobs:
            found[job.name] = (project, location, job.key or "", job)
    for entry in state.entries.values():
        if entry.job_name and entry.job_name not in found:
            job = live.job(entry.job_name)
            if job is not None:
                found[job.name] = (entry.project, entry.location, entry.key, job)
    return found


def _by_state(jobs: Iterable[LiveJob]) -> dict[str, int]:
    counts = Counter(j.state for j in jobs)
    return {s: counts[s] for s in sorted(counts)}


def summarize(state: State, live: LiveView,
              unmanaged: dict[tuple[str, str], list[LiveJob]] | None) -> Summary:
    managed = _managed_jobs(state, live)
    current = {e.job_name for e in state.entries.values() if e.job_name}
    parents = sorted({(p, l) for p, l, _, _ in managed.values()} | set(live.listed) | set(unmanaged or {}))
    locations = []
    for project, location in parents:
        here = [j for p, l, _, j in managed.values() if (p, l) == (project, location)]
        locations.append(LocationSummary(
            project=project, location=location, jobs_by_state=_by_state(here),
            unmanaged_jobs_by_state=_by_state(unmanaged.get((project, location), [])) if unmanaged is not None else None,
            billable_tokens=sum(billable_tokens(j.raw) for j in here),
        ))
    models = []
    active: list[ActiveJob] = []
    for name, (project, location, key, job) in managed.items():
        address = f"{project}/{location}/{key}"
        if job.state == "JOB_STATE_SUCCEEDED":
            tuned = job.raw.get("tunedModel") or {}
            if isinstance(tuned, dict) and tuned.get("model"):
                models.append(TunedModel(address, key, name, str(tuned["model"]),
                                         str(tuned["endpoint"]) if tuned.get("endpoint") else None,
                                         name in current, job.create_time))
        elif job.state in ACTIVE_STATES:
            active.append(ActiveJob(address, key, name, job.state, job.create_time, job.tuning_state or None))
    oldest = min(active, key=lambda a: (a.create_time, a.job)) if active else None
    all_unmanaged = [j for jobs in (unmanaged or {}).values() for j in jobs]
    return Summary(
        jobs_by_state=_by_state(j for _, _, _, j in managed.values()),
        unmanaged_jobs_by_state=_by_state(all_unmanaged) if unmanaged is not None else None,
        tuned_models=tuple(sorted(models, key=lambda m: (m.address, m.create_time, m.job))),
        total_billable_tokens=sum(loc.billable_tokens for loc in locations),
        oldest_active_job=oldest,
        locations=tuple(locations),
    )


def build_report(
    desired: list[DesiredJob],
    state: State,
    live: LiveView,
    plan: Plan,
    unmanaged: dict[tuple[str, str], list[LiveJob]] | None = None,
    rules: IgnoreRules | None = None,
    targets: Iterable[str] | None = None,
) -> DriftReport:
    """The drift report. `unmanaged` maps (project, location) to the jobs listed there without
    the managed-by label; None means they were not looked for. `plan` must come from the same
    desired, state and live (with the same targets)."""
    chosen = set(targets) if targets is not None else None
    wanted = {d.address: d for d in desired}
    items = _change_items(plan, wanted, live) + _stale_items(plan, wanted)
    items += [i for i in _out_of_band_items(state, live, wanted) + _stray_items(state, live, plan)
              if targeted(i.address, chosen)]
    if unmanaged is not None and chosen is None:  # unmanaged jobs have no key to target
        items += _unmanaged_items(unmanaged)
    items = _apply_ignores(items, wanted, rules)
    return DriftReport(
        items=tuple(sorted(items, key=DriftItem.sort_key)),
        summary=summarize(state, live, unmanaged),
        include_unmanaged=unmanaged is not None,
        problems=tuple(f"{p.address}: {p.message}" for p in plan.problems),
    )


_NOUNS = {PENDING: ("pending change", "pending changes"),
          OUT_OF_BAND: ("out-of-band change", "out-of-band changes"),
          ORPHAN: ("orphan", "orphans"), UNMANAGED: ("unmanaged job", "unmanaged jobs")}


def count_phrase(category: str, n: int) -> str:
    """'1 orphan', '2,000 pending changes'."""
    one, many = _NOUNS[category]
    return f"{n:,} {one if n == 1 else many}"


def category_title(category: str) -> str:
    return {PENDING: "Pending changes", OUT_OF_BAND: "Out-of-band changes", ORPHAN: "Orphans",
            UNMANAGED: "Unmanaged jobs"}[category]


def headline(report: DriftReport) -> str:
    """One line for every format: 'Drift: 2 pending changes, 1 orphan (3 ignored).'"""
    counts = report.counts()
    n_ignored = len(report.ignored)
    ignored = f" ({n_ignored:,} ignored)" if n_ignored else ""
    if not report.has_drift:
        return f"No drift{ignored}."
    parts = [count_phrase(c, counts[c]) for c in CATEGORIES if counts[c]]
    return f"Drift: {', '.join(parts)}{ignored}."

