"""The planner: a pure function of (desired, state, live) to a Plan. No I/O.

One Change per key:
- no job for the key: create (a labelled job state does not know is adopted instead);
- same spec: no-op; a FAILED, EXPIRED or cancelled-by-someone-else job is reported, or
  re-created under `onFailure: recreate`;
- the tracked job no longer exists (404: deleted, or its history expired): reported, or
  re-created under `onMissing: recreate` (never billed again unasked: a job resource that
  vanishes is not proof that its work should run again);
- changed spec: replace (cancel the active job, then create), or wait / fail per
  `onSpecChange`; a SUCCEEDED job whose only change is `baseModel` is rebased under
  `onBaseModelChange: rebase`;
- key gone from the manifests: cancel if active (refused under `preventCancel`), else forget.
Refusals are `PlanProblem`s: a plan with problems is never applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import partial

from reconciler.apischema.normalize import normalize_spec, normalized_hash
from reconciler.graph.graph import Field, build_graph
from reconciler.graph.references import set_paths
from reconciler.model import ACTIVE_STATES, FAILED_STATES, V1, DesiredJob, Lifecycle, short_state, targeted
from reconciler.plan.differ import FieldChange, diff_spec, only_base_model_changed
from reconciler.plan.inputs import (
    UpstreamResult,
    built_values,
    change_result,
    inputs_for,
    only_inputs_changed,
    resolve,
    short_name,
)
from reconciler.plan.live import LiveJob, LiveView
from reconciler.plan.model import Action, Change, Deferred, JobRef, Plan, PlanProblem, Reason
from reconciler.state.model import State, StateEntry
from reconciler.text import some


def plan(
    desired: list[DesiredJob],
    state: State,
    live: LiveView,
    targets: Iterable[str] | None = None,
) -> Plan:
    """Decide what to do about every key in the manifests or the state.

    Keys are planned, and listed, in the order of the job graph (a job after the jobs whose
    outputs it uses; otherwise by address), so that each job sees what its upstream jobs
    will have. `targets` (keys or project/location/key addresses) limits the plan to those
    keys and the jobs they use the outputs of, as Terraform's -target does.
    """
    wanted = {d.address: d for d in desired}
    graph = build_graph(desired, also=state.entries)
    changes: list[Change] = []
    problems: list[PlanProblem] = [PlanProblem(p.address, p.message) for p in graph.problems]
    results: dict[str, UpstreamResult] = {}
    for address in graph.order:
        entry = state.entries.get(address)
        d = wanted.get(address)
        if d is None:
            change, problem = _plan_removed(entry, live)  # type: ignore[arg-type]
        elif address in graph.fields:
            change, problem = _plan_with_inputs(d, entry, live, graph.fields[address], results)
        else:
            change, problem = _plan_desired(d, entry, live)
        changes.append(change)
        if problem:
            problems.append(PlanProblem(address, problem))
        if d is not None and address in graph.downstreams:
            results[address] = change_result(change, live)
    # Every key is planned, targeted or not, so that a targeted change can see a job claimed elsewhere.
    changes, problems = _one_address_per_job(changes, problems, wanted, state)
    if targets is not None:
        chosen = set(targets)
        kept = {c.address for c in changes if targeted(c.address, chosen)}
        kept |= graph.transitive_upstreams(kept)
        changes = [c for c in changes if c.address in kept]
        problems = [p for p in problems if p.address in kept]
    return Plan(changes=changes, problems=problems, lineage=state.lineage, serial=state.serial)


def _one_address_per_job(changes: list[Change], problems: list[PlanProblem], wanted: dict[str, DesiredJob],
                         state: State) -> tuple[list[Change], list[PlanProblem]]:
    """No live job may be acted on from two addresses. A project named by id in one place and by
    number in another (Vertex names jobs by number) makes two addresses for one job: left alone,
    the new address would adopt the job while the old one cancelled it."""
    claims: dict[str, list[Change]] = {}
    for c in changes:
        if c.job is not None and c.address in wanted:
            claims.setdefault(c.job.name, []).append(c)
    problems = list(problems)
    blocked = {p.address for p in problems}
    tracked = {e.job_name: a for a, e in state.entries.items() if e.job_name}
    for name, claimants in claims.items():
        for extra in claimants[1:]:
            if extra.address not in blocked:
                problems.append(PlanProblem(extra.address, (
                    f"job {name} is also claimed by {claimants[0].address}: two manifests name one job "
                    "(a project given by id in one and by number in the other?); keep one of them")))
                blocked.add(extra.address)
    elsewhere = {(d.key, d.location): d.address for d in wanted.values()}
    by_address = {c.address: c for c in changes}
    out: list[Change] = []
    for c in changes:
        claimant = claims.get(c.job.name, [None])[0] if c.job is not None else None
        twin = elsewhere.get((c.key, c.location)) if c.address not in wanted else None
        if (twin is not None and claimant is None and c.job is not None
                and (c.action is Action.CANCEL or by_address[twin].action is Action.CREATE)):
            # The same key and location under another project: the project id swapped for its
            # number (or back), or a real move. Guessing wrong would cancel a job the manifests
            # want, or bill a second one for them.
            out.append(replace(c, action=Action.NOOP, detail=f"key now declared as {twin}"))
            problems.append(PlanProblem(c.address, (
                f"key left {c.address} but {twin} declares it, while state tracks its "
                f"{short_state(c.job.state)} job {c.job.name} here: if both name the "
                f"same project (id and number), run `reconciler state mv {c.address} {twin}`; if not, "
                f"cancel the job yourself if it should stop, and `reconciler state rm {c.address}`")))
            continue
        if c.address not in wanted and claimant is not None and claimant.address != c.address:
            # The key moved: stop tracking it here, never cancel the job the new address keeps.
            out.append(replace(c, action=Action.FORGET, reason=Reason.KEY_MOVED,
                               detail=f"its job {c.job.name} is now tracked as {claimant.address}"))
            problems = [p for p in problems if p.address != c.address]
        elif claimant is c and c.action is Action.ADOPT and tracked.get(c.job.name, c.address) != c.address:
            out.append(replace(c, detail=f"job tracked as {tracked[c.job.name]} until now: moving it here"))
        else:
            out.append(c)
    return out, problems


def _comparable(d: DesiredJob) -> tuple[dict, str]:
    """The desired spec's comparable form and hash: from loading when it has them."""
    if d.normalized is not None and d.spec_hash is not None:
        return d.normalized, d.spec_hash
    normalized = normalize_spec(d.spec)
    return normalized, normalized_hash(normalized)


def _base(d: DesiredJob, spec_hash: str) -> dict:
    return dict(address=d.address, key=d.key, project=d.project, location=d.location,
                lifecycle=d.lifecycle, spec_hash=spec_hash, api_version=d.api_version)


def _untracked(d: DesiredJob, entry: StateEntry | None, live: LiveView,
               passed_over: frozenset[str] = frozenset()) -> LiveJob | None:
    """The newest labelled job for this key that state has never recorded (a lost create)."""
    known = set(entry.history) | passed_over if entry else set(passed_over)
    if entry and entry.job_name:
        known.add(entry.job_name)
    for job in live.jobs_for_key(d.project, d.location, d.key):
        if job.name in known:
            continue
        own_request = bool(entry and entry.request_id and job.request_label == entry.request_id)
        if job.state in ("JOB_STATE_CANCELLED", "JOB_STATE_CANCELLING") and not own_request:
            continue  # a job cancelled on purpose (by us or by hand) is history, not a lost create
        if entry and entry.job_name and not own_request:
            current = live.job(entry.job_name)
            # Only a job newer than the recorded one can be a create that was not recorded. A job
            # carrying our own pending request id is ours whatever its createTime says (clocks
            # tie or skew): skipping it would create, and bill, the job a second time.
            if current is not None and job.create_time <= current.create_time:
                continue
        return job
    return None


def _billed_untracked(d: DesiredJob, entry: StateEntry | None, live: LiveView) -> list[LiveJob]:
    """Active labelled jobs for the key besides the tracked one (an earlier job whose cancel did
    not take counts too), except our own pending create (a replace whose new job was not yet
    recorded) and jobs already being cancelled."""
    tracked = entry.job_name if entry is not None else None
    own = entry.request_id if entry is not None else None
    return [j for j in live.jobs_for_key(d.project, d.location, d.key)
            if j.name != tracked and j.state in ACTIVE_STATES and j.state != "JOB_STATE_CANCELLING"
            and not (own and j.request_label == own)]


def _plan_desired(d: DesiredJob, entry: StateEntry | None, live: LiveView,
                  passed_over: frozenset[str] = frozenset(), inputs: tuple = ()) -> tuple[Change, str | None]:
    after, desired_hash = _comparable(d)
    base = _base(d, desired_hash)
    if inputs:
        base["inputs"] = inputs

    current = live.job(entry.job_name) if entry is not None and entry.job_name else None
    if current is not None and current.state in ACTIVE_STATES and not passed_over:
        # Two active jobs for one key are billed twice. Which to keep is the user's call: adopting
        # one would leave the other running, untracked and unreported.
        strays = _billed_untracked(d, entry, live)
        if strays:
            change, other = _plan_desired(d, entry, live, frozenset(j.name for j in strays), inputs)
            names = some(f"{j.name} ({j.short_state})" for j in strays)
            return change, (f"{other}; " if other else "") + (
                f"another active job carries this key's labels besides the tracked {current.name} "
                f"({current.short_state}): {names}; both are billed; cancel the one you do not want (to track "
                f"the other instead: `reconciler state rm {d.key}`, then `reconciler import {d.key} JOB`)")
    if entry is None or not entry.job_name:
        actives = _billed_untracked(d, entry, live)
        if len(actives) > 1:  # adopting one would leave the others billed and untracked
            names = some(f"{j.name} ({j.short_state})" for j in actives)
            return (Change(action=Action.NOOP, reason=Reason.UNTRACKED_JOB, detail=f"{len(actives)} active "
                           "labelled jobs for this key", before=normalize_spec(actives[0].raw), after=after,
                           job=JobRef.of(actives[0]), **base),
                    f"{len(actives)} active jobs carry this key's labels and state tracks none of them: {names}; "
                    f"cancel all but one, or `reconciler import {d.key} JOB` the one to keep")
    lost = _untracked(d, entry, live, passed_over)
    recorded = bool(lost is not None and entry is not None and entry.request_id
                    and lost.request_label == entry.request_id)
    if lost is not None:
        reason = Reason.UNRECORDED_CREATE if recorded else Reason.UNTRACKED_JOB
        detail = ("create finished but was not recorded: adopting" if recorded
                  else "labelled job found that state does not know: adopting")
        return Change(action=Action.ADOPT, reason=reason, detail=f"{detail} {lost.name}",
                      before=normalize_spec(lost.raw), after=after, job=JobRef.of(lost), **base), None

    if entry is None or not entry.job_name:
        return Change(action=Action.CREATE, reason=Reason.NEW_KEY, detail="no job for this key yet",
                      after=after, **base), None

    job = live.job(entry.job_name)
    if job is None:
        if live.gone(entry.job_name):
            detail = f"job {entry.job_name} in state no longer exists"
        else:
            detail = f"job {entry.job_name} in state was not found"
        if d.lifecycle.on_missing == "recreate":
            return Change(action=Action.CREATE, reason=Reason.JOB_GONE, detail=f"{detail}; onMissing=recreate",
                          after=after, **base), None
        return Change(action=Action.NOOP, reason=Reason.JOB_GONE_REPORTED, detail=(
            f"{detail}; onMissing=report: nothing is done (set lifecycle.onMissing: recreate to create it "
            f"again, or `reconciler state rm {d.key}` to stop tracking it)"), after=after, **base), None

    before = Deferred(partial(normalize_spec, job.raw))  # only a plan's JSON reads it
    ref = JobRef.of(job)
    if job.spec_label == base["spec_hash"]:
        changes: list[FieldChange] = []
    else:
        changes = diff_spec(d.spec, job.raw, job.api_version)
        if not changes and job.spec_label is not None:
            # Hash differs but nothing shows: a field the server defaults was removed from the manifest.
            changes = [FieldChange("(spec hash)", job.spec_label, base["spec_hash"])]
    lc = d.lifecycle
    active = job.state in ACTIVE_STATES
    state_word = job.short_state

    if not changes:
        if job.state in FAILED_STATES:
            when = f" at {job.end_time}" if job.end_time else ""
            why = f": {job.error_message}" if job.error_message else ""
            if lc.on_failure == "recreate":
                return Change(action=Action.CREATE, reason=Reason.JOB_FAILED_RECREATE,
                              detail=f"job {state_word}{when}{why}; onFailure=recreate",
                              before=before, after=after, job=ref, **base), None
            return Change(action=Action.NOOP, reason=Reason.JOB_FAILED_REPORTED,
                          detail=f"job {state_word}{when}{why}; onFailure=report",
                          before=before, after=after, job=ref, **base), None
        return Change(action=Action.NOOP, reason=Reason.UNCHANGED, detail=f"job {state_word}, spec unchanged",
                      before=before, after=after, job=ref, **base), None

    described = "; ".join(c.describe() for c in changes[:5]) + (" ..." if len(changes) > 5 else "")
    fc = tuple(changes)
    if lc.on_spec_change == "fail":
        return (Change(action=Action.NOOP, reason=Reason.SPEC_CHANGED, detail=f"spec changed: {described}",
                       before=before, after=after, job=ref, field_changes=fc, **base),
                f"spec changed and lifecycle.onSpecChange=fail: {described}")
    if (job.state == "JOB_STATE_SUCCEEDED" and lc.on_base_model_change == "rebase"
            and only_base_model_changed(changes)):
        return Change(action=Action.REBASE, reason=Reason.BASE_MODEL_CHANGED,
                      detail=f"base model changed: {described}; onBaseModelChange=rebase",
                      before=before, after=after, job=ref, field_changes=fc, **base), None
    if active and lc.on_spec_change == "wait":
        return Change(action=Action.NOOP, reason=Reason.WAITING_FOR_ACTIVE,
                      detail=f"spec changed: {described}; waiting for the {state_word} job to end "
                             "(onSpecChange=wait)",
                      before=before, after=after, job=ref, field_changes=fc, **base), None
    if active and lc.prevent_cancel:
        return (Change(action=Action.NOOP, reason=Reason.SPEC_CHANGED, detail=f"spec changed: {described}",
                       before=before, after=after, job=ref, field_changes=fc, **base),
                f"replacing needs cancelling the {state_word} job {job.name}, "
                "but lifecycle.preventCancel is true")
    verb = "cancel the active job, then create" if active else "create a new job; the old one stays as history"
    return Change(action=Action.REPLACE, reason=Reason.SPEC_CHANGED,
                  detail=f"spec changed: {described} ({verb})",
                  before=before, after=after, job=ref, field_changes=fc, **base), None


def _plan_removed(entry: StateEntry, live: LiveView) -> tuple[Change, str | None]:
    base = dict(address=entry.address, key=entry.key, project=entry.project, location=entry.location,
                spec_hash=entry.spec_hash, lifecycle=Lifecycle(prevent_cancel=getattr(entry, "prevent_cancel", False)),
                api_version=entry.api_version or V1)
    job = live.job(entry.job_name) if entry.job_name else None
    if job is None:
        return Change(action=Action.FORGET, reason=Reason.KEY_REMOVED_GONE,
                      detail="key left the manifests and its job no longer exists", **base), None
    ref, before = JobRef.of(job), normalize_spec(job.raw)
    if job.state in ACTIVE_STATES:
        if base["lifecycle"].prevent_cancel:
            return (Change(action=Action.NOOP, reason=Reason.KEY_REMOVED_ACTIVE,
                           detail=f"key left the manifests; job {job.short_state}", before=before, job=ref,
                           **base),
                    f"key left the manifests but its {job.short_state} job {job.name} has "
                    "lifecycle.preventCancel: restore the manifest or cancel it yourself")
        return Change(action=Action.CANCEL, reason=Reason.KEY_REMOVED_ACTIVE,
                      detail=f"key left the manifests; job {job.short_state}: cancelling",
                      before=before, job=ref, **base), None
    return Change(action=Action.FORGET, reason=Reason.KEY_REMOVED_FINISHED,
                  detail=f"key left the manifests; job {job.short_state}: forgetting it (nothing is deleted)",
                  before=before, job=ref, **base), None


def _plan_with_inputs(d: DesiredJob, entry: StateEntry | None, live: LiveView, fields: tuple[Field, ...],
                      results: dict[str, UpstreamResult]) -> tuple[Change, str | None]:
    """A job whose spec uses other jobs' outputs: planned with what they resolve to now.
    Nothing that starts a job is planned from a missing value: while an upstream has not
    succeeded the create or replace waits for it; if it failed, the job is blocked."""
    res = resolve(fields, results)
    current = live.job(entry.job_name) if entry is not None and entry.job_name else None
    built = built_values(fields, entry.inputs if entry is not None else {}, current)
    inputs = inputs_for(fields, res, built)
    if d.lifecycle.on_upstream_change == "keep" and current is not None and all(
            built.get(f.path) is not None or not f.upstreams for f in fields):
        # Compare as built: a re-tuned upstream alone does not replace this job.
        as_built = {f.path: built[f.path] if f.upstreams else res.values[f.path] for f in fields}
        kept_spec = set_paths(d.spec, as_built)  # type: ignore[arg-type]
        change, problem = _plan_desired(_with_spec(d, kept_spec), entry, live, inputs=inputs)
        if not change.action.starts_a_job:
            if change.action is Action.ADOPT:
                change = replace(change, inputs=_adopted(change, inputs, live))
            stale = [i for i in inputs if i.stale]
            if stale and change.reason is Reason.UNCHANGED:
                change = replace(change, reason=Reason.UPSTREAM_CHANGED,
                                 detail=f"{change.detail}; kept as built (onUpstreamChange=keep): {_built(stale)}")
            return change, problem
    fresh = set_paths(d.spec, res.values)
    change, problem = _plan_desired(_with_spec(d, fresh), entry, live, inputs=inputs)
    if change.action is Action.ADOPT:
        change = replace(change, inputs=_adopted(change, inputs, live))
    if not change.action.starts_a_job:
        return change, problem
    verb = change.action.value
    if res.blocked:
        why = "; ".join(res.blocked[a] for a in sorted(res.blocked))
        return replace(change, action=Action.NOOP, reason=Reason.UPSTREAM_BLOCKED, spec_hash=None,
                       detail=f"cannot {verb}: {why}"), problem
    stale = [i for i in inputs if i.stale]
    upstream_only = change.action is Action.REPLACE and only_inputs_changed(change)
    if res.pending:
        waits = tuple(sorted(res.pending))
        names = ", ".join(a.rsplit("/", 1)[-1] for a in waits)
        detail = (f"upstream re-tuned: {_built(stale)}" if upstream_only and stale else change.detail)
        return replace(change, waits_for=waits, spec_hash=None,
                       reason=Reason.UPSTREAM_CHANGED if upstream_only else change.reason,
                       detail=f"{detail}; waits for {names} to succeed"), problem
    if upstream_only:
        return replace(change, reason=Reason.UPSTREAM_CHANGED,
                       detail=f"upstream re-tuned: {_built(stale)} (create a new job; the old one stays as history)"
                       if stale else change.detail), problem
    return change, problem


def _with_spec(d: DesiredJob, spec: dict) -> DesiredJob:
    return replace(d, spec=spec, normalized=None, spec_hash=None)  # the references filled in: compare afresh


def _adopted(change: Change, inputs: tuple, live: LiveView) -> tuple:
    """An adopted job keeps what it was created with: that is what state records."""
    if change.job is None:
        return inputs
    from reconciler.graph.references import get_path

    job = live.job(change.job.name)
    raw = job.raw if job is not None else {}
    return tuple(replace(i, value=v if isinstance(v := get_path(raw, i.path), str) else i.value) for i in inputs)


def _built(stale: list) -> str:
    from reconciler.graph.references import dotted

    def now(i) -> str:
        ups = ", ".join(u.rsplit("/", 1)[-1] for u in i.upstreams)
        return (f"upstream {ups} now {short_name(i.value)}" if i.value is not None
                else f"upstream {ups} is being re-tuned")

    first = stale[0]
    more = f" (and {len(stale) - 1} more field(s))" if len(stale) > 1 else ""
    return f"{dotted(first.path)} built from {short_name(first.built_from)}, {now(first)}{more}"
