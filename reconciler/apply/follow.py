"""`apply --wait`: follow submitted jobs until they finish, with one list per project+location
per poll (not one get per job), recording each final state; and run the job graph: a change
that waits for upstream jobs (`Change.waits_for`) is started as soon as they have all
SUCCEEDED, with the outputs of exactly those jobs (`GraphRun`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from reconciler.errors import ReconcilerError
from reconciler.model import ACTIVE_STATES, V1, read_version
from reconciler.plan.inputs import resolve_waiting
from reconciler.plan.live import LiveJob
from reconciler.plan.model import Change, Reason
from reconciler.plan.refresh import list_jobs
from reconciler.state.model import StateEntry
from reconciler.text import clean, key_labels

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.apply.executor import Outcome

MAX_LISTED = 5  # waiting jobs named in one status line


def _key(address: str) -> str:
    return address.rsplit("/", 1)[-1]


@dataclass
class GraphRun:
    """The changes of a plan still to start, each once its upstream jobs have succeeded.

    `waiting`: address -> the planned change (its `after` still holds references).
    `entry_of(address)`: the state entry the apply has recorded for it now (its current job).
    `start(changes)`: runs them through the executor (paced, journaled) and returns outcomes.
    An upstream whose planned change did not finish here, or whose job ends FAILED, EXPIRED or
    CANCELLED, blocks its downstream jobs (and theirs) with that reason; one whose change waits
    for its own running job (`onSpecChange: wait`) defers them to a later apply."""

    waiting: dict[str, Change]
    entry_of: Callable[[str], StateEntry | None]
    start: Callable[[list[Change]], list[Outcome]]
    failed: dict[str, str] = field(default_factory=dict)  # address -> why its change failed
    blocked: dict[str, str] = field(default_factory=dict)  # address -> why it cannot start
    deferred: dict[str, str] = field(default_factory=dict)  # address -> why it starts only on a later apply
    outcomes: list[Outcome] = field(default_factory=list)  # of the changes it started

    @classmethod
    def of(cls, changes: list[Change], outcomes: list[Outcome], entry_of: Callable[[str], StateEntry | None],
           start: Callable[[list[Change]], list[Outcome]]) -> GraphRun:
        run = cls({c.address: c for c in changes if c.waiting}, entry_of, start)
        for o in outcomes:
            if not o.ok:
                run.failed[o.change.address] = _failure(o)
        for c in changes:
            if c.reason is Reason.WAITING_FOR_ACTIVE:
                run.deferred[c.address] = (f"{c.key}'s spec change waits for its {c.job.state if c.job else ''} job "
                                           "to end (onSpecChange=wait)").replace("JOB_STATE_", "")
        return run

    def upstream_jobs(self) -> dict[str, StateEntry]:
        """Active upstream jobs the waiting changes need that nobody follows yet."""
        out = {}
        for change in self.waiting.values():
            for up in change.waits_for:
                entry = self.entry_of(up)
                if up not in self.waiting and up not in self.failed and entry is not None and entry.job_name:
                    out[up] = entry
        return out

    def advance(self, final: dict[str, LiveJob], active: set[str], say: Callable[[str], None]) -> dict[str, StateEntry]:
        """Start what can start, block what cannot: `final` holds the finished jobs by address,
        `active` the addresses whose jobs still run. Returns the jobs it started, to follow."""
        started: dict[str, StateEntry] = {}
        active = set(active)
        while True:
            # Verdicts first, changes after: a change that becomes ready in this pass still
            # counts as waiting for the changes after it.
            verdicts = {a: v for a, c in sorted(self.waiting.items())
                        if (v := self._verdict(c, final, active)) is not None}
            ready: list[Change] = []
            for address, (kind, why) in verdicts.items():
                change = self.waiting.pop(address)
                if kind == "ready":
                    ready.append(change)
                elif kind == "deferred":
                    self.deferred[address] = why
                    say(f"{clean(change.key)}: not started in this apply: {clean(why)}; apply again later")
                else:
                    self.blocked[address] = why
                    say(f"{clean(change.key)}: blocked: {clean(why)}")
            resolved = []
            for change in ready:
                upstream = {u: final[u] for u in change.waits_for}
                say(f"{clean(change.key)}: {', '.join(_key(u) for u in change.waits_for)} succeeded; starting")
                try:
                    resolved.append(resolve_waiting(change, upstream))
                except ReconcilerError as exc:
                    self.blocked[change.address] = str(exc)
                    say(f"{clean(change.key)}: blocked: {clean(exc)}")
            for outcome in self.start(resolved) if resolved else []:
                self.outcomes.append(outcome)
                address = outcome.change.address
                entry = self.entry_of(address)
                if outcome.ok and entry is not None and entry.job_name:
                    started[address] = entry
                    active.add(address)  # its new job is what the jobs after it wait for now
                else:
                    self.failed[address] = _failure(outcome)
            if not verdicts:
                return started
            # Started jobs are PENDING, so nothing else becomes ready before the next poll; but
            # blocks and deferrals propagate down the graph at once.

    def _verdict(self, change: Change, final: dict[str, LiveJob], active: set[str]) -> tuple[str, str] | None:
        """None: still waiting; else ("ready" | "blocked" | "deferred", why)."""
        waiting = False
        for up in change.waits_for:
            key = _key(up)
            if up in self.failed:
                return "blocked", self.failed[up]
            if up in self.blocked:
                return "blocked", f"{key} is blocked ({self.blocked[up]})"
            if up in self.deferred:
                return "deferred", f"it waits for {key}: {self.deferred[up]}"
            if up in self.waiting or up in active:
                waiting = True
                continue
            job = final.get(up)
            if job is None:
                return "blocked", f"{key} has no job to build from"
            if job.state != "JOB_STATE_SUCCEEDED":
                why = f": {job.error_message}" if job.error_message else ""
                return "blocked", f"upstream {key}'s job {job.name} {job.short_state}{why}"
        return None if waiting else ("ready", "")

    def describe(self) -> str:
        """`b (after a), c (after b)`: what waits for what, for the status line."""
        items = [f"{clean(c.key)} (after {', '.join(_key(u) for u in c.waits_for)})"
                 for _, c in sorted(self.waiting.items())]
        shown = ", ".join(items[:MAX_LISTED])
        return shown + (f", and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _failure(outcome: Outcome) -> str:
    return f"{outcome.change.key}'s {outcome.change.action.value} failed: {outcome.message}"


def follow(client, store, started: dict[str, StateEntry], say: Callable[[str], None],
           interval: float = 10.0, timeout: float | None = None,
           sleep: Callable[[float], None] = time.sleep,
           status: Callable[[str], None] | None = None, graph: GraphRun | None = None) -> dict[str, LiveJob]:
    """Poll until every job in `started` (address -> its state entry) has finished and, with
    `graph`, every waiting change has been started (and its job finished) or blocked; returns
    the final job per address, recording each new job state. `say` prints a finished job;
    `status` (default `say`) the running count, which a terminal redraws in place."""
    status = status or say
    pending = {a: e for a, e in started.items() if e.job_name}
    if graph is not None:
        pending.update({a: e for a, e in graph.upstream_jobs().items() if a not in pending})
    labels = key_labels((a, e.key, e.location) for a, e in pending.items())
    final: dict[str, LiveJob] = {}
    begun = time.monotonic()
    while pending or (graph is not None and graph.waiting):
        counts: dict[str, int] = {}
        if pending:
            # Through v1beta1 where a followed job is v1beta1: its tuningJobState then shows.
            versions: dict[tuple[str, str], set[str]] = {}
            for e in pending.values():
                versions.setdefault((e.project, e.location), set()).add(e.api_version or V1)
            seen = {job.name: job for (p, l), vs in sorted(versions.items())
                    for job in list_jobs(client, p, l, api_version=read_version(vs))}
            for address, entry in sorted(pending.items()):
                version = entry.api_version or V1
                job = seen.get(entry.job_name) or LiveJob.from_api(
                    client.get_job(entry.job_name, api_version=version), version)
                if job.state != entry.job_state:
                    entry = replace(entry, job_state=job.state, update_time=job.update_time)
                    store.record(entry, address)
                    pending[address] = entry
                if job.state not in ACTIVE_STATES:
                    final[address] = job
                    del pending[address]
                    say(f"{labels.get(address, clean(entry.key))}: {job.short_state}{_result(job)}")
                else:
                    counts[job.state_text] = counts.get(job.state_text, 0) + 1
        if graph is not None:
            new = graph.advance(final, set(pending), say)
            for address, entry in new.items():
                final.pop(address, None)  # its new job is what downstream jobs use now
                pending[address] = entry
                labels[address] = clean(entry.key)
                counts["PENDING"] = counts.get("PENDING", 0) + 1
        if not pending and not (graph is not None and graph.waiting):
            break
        elapsed = time.monotonic() - begun
        if timeout is not None and elapsed > timeout:
            more = f"; {len(graph.waiting)} not started yet" if graph is not None and graph.waiting else ""
            say(f"Stopped waiting after {elapsed:.0f}s: {len(pending)} job(s) still active{more}.")
            break
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        after = f"; to start after them: {graph.describe()}" if graph is not None and graph.waiting else ""
        status(f"Waiting for {len(pending)} job(s): {summary}{after} [{elapsed:.0f}s elapsed]")
        sleep(interval)
    return final


def _result(job: LiveJob) -> str:
    tuned = job.raw.get("tunedModel") or {}
    if job.state == "JOB_STATE_SUCCEEDED" and tuned.get("endpoint"):
        return f" -> endpoint {clean(tuned['endpoint'])}"
    if job.error_message:
        return f": {clean(job.error_message)}"
    return ""
