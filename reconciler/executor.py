"""apply(): carry out the changes a plan recorded, never re-deciding them.

Every step is made durable at once through the state store's journal: the request id of a
create is recorded *before* the call, so a crash between the call and the result is healed by
adoption on the next plan (the job carries that request label). Changes run in parallel; one
failure does not stop the others.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from reconciler.actions import Action
from reconciler.errors import ReconcilerError
from reconciler.live import LiveJob
from reconciler.model import ACTIVE_STATES, KEY_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SPEC_LABEL
from reconciler.pacer import Pacer
from reconciler.plans import Change, Plan
from reconciler.progress import Progress
from reconciler.state import State, StateEntry


@dataclass(frozen=True)
class ApplyOptions:
    parallelism: int = 8
    max_creates_per_minute: float | None = None
    operation_timeout: float = 3600.0


@dataclass(frozen=True)
class Outcome:
    change: Change
    ok: bool
    message: str
    job_name: str | None = None


def new_request_id() -> str:
    return uuid.uuid4().hex


def create_body(change: Change) -> dict:
    """The desired spec plus the identity labels (the request label is added by the client)."""
    body = dict(change.after or {})
    body["labels"] = {**body.get("labels", {}), MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                      KEY_LABEL: change.key, SPEC_LABEL: change.spec_hash or ""}
    return body


class ThrottleGate:
    """Pass on at most one 429 per window to the pacer.

    Parallel workers (and the look-ups of a create) all see the same quota burst; halving the
    rate once per 429 would divide it by 2**parallelism at once and pin it at the pacer's
    floor. One halving per window (1 s, or the server's Retry-After if longer) is one
    decrease per congestion event, as AIMD intends.
    """

    def __init__(self, on_throttle: Callable[[], None], window: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._on_throttle, self._window, self._clock = on_throttle, window, clock
        self._lock = threading.Lock()
        self._quiet_until = float("-inf")
        self.seen = 0
        self.passed = 0

    def __call__(self, retry_after: float | None) -> None:
        with self._lock:
            self.seen += 1
            now = self._clock()
            if now < self._quiet_until:
                return
            self._quiet_until = now + max(self._window, retry_after or 0.0)
            self.passed += 1
        self._on_throttle()


class Executor:
    def __init__(self, client, store, state: State, progress: Progress, options: ApplyOptions) -> None:
        self.client, self.store, self.progress, self.options = client, store, progress, options
        # Our own view of the entries, kept in step with what we record (no whole-state copies).
        self.entries: dict[str, StateEntry] = dict(state.entries)
        self.labels: dict[str, str] = {}
        self.pacer = Pacer(options.max_creates_per_minute)
        self._lock = threading.Lock()
        if hasattr(client, "on_throttle"):
            client.on_throttle(ThrottleGate(self.pacer.on_throttle))

    # -- state helpers ---------------------------------------------------------------------
    def _entry(self, change: Change) -> StateEntry:
        with self._lock:
            found = self.entries.get(change.address)
        if found is not None:
            return replace(found, history=list(found.history))
        return StateEntry(key=change.key, project=change.project, location=change.location)

    def _record(self, entry: StateEntry | None, address: str) -> None:
        with self._lock:
            self.store.record(entry, address)
            if entry is None:
                self.entries.pop(address, None)
            else:
                self.entries[address] = entry

    def _record_job(self, change: Change, entry: StateEntry, job: LiveJob, request_id: str | None) -> StateEntry:
        history = list(entry.history)
        if entry.job_name and entry.job_name != job.name and entry.job_name not in history:
            history.append(entry.job_name)
        new = replace(entry, job_name=job.name, job_state=job.state, update_time=job.update_time,
                      spec_hash=job.spec_label or change.spec_hash, request_id=request_id, history=history,
                      prevent_cancel=change.lifecycle.prevent_cancel)
        self._record(new, change.address)
        return new

    # -- actions ---------------------------------------------------------------------------
    def _submit(self, change: Change, submit) -> LiveJob:
        """Record the request id, then submit a billed job under the pacer."""
        entry = self._entry(change)
        request_id = new_request_id()
        self._record(replace(entry, request_id=request_id), change.address)
        self.pacer.acquire()
        job = submit(request_id)
        self.pacer.on_success()
        self._record_job(change, entry, job, request_id)
        return job

    def _cancel_if_active(self, change: Change) -> None:
        from reconciler.client import FailedPreconditionError

        if change.job and change.job.state in ACTIVE_STATES:
            try:
                self.client.cancel_job(change.job.name)
            except FailedPreconditionError:
                pass  # it finished meanwhile: nothing left to cancel

    def _create(self, change: Change) -> str:
        if change.action is Action.REPLACE:
            self._cancel_if_active(change)
        job = self._submit(change, lambda rid: LiveJob.from_api(
            self.client.create_job(change.parent, create_body(change), request_id=rid)))
        return f"created {job.name}"

    def _rebase(self, change: Change) -> str:
        assert change.job is not None
        body = {"tunedModelRef": {"tuningJob": change.job.name}, "tuningJob": create_body(change)}

        def submit(rid: str) -> LiveJob:
            op = self.client.rebase_tuned_model(change.parent, body, request_id=rid)
            done = op if op.get("done") else self.client.wait_operation(
                op["name"], timeout=self.options.operation_timeout)
            # A done operation without a proper job would record a nameless job in state.
            from reconciler.client import check_tuning_job

            return LiveJob.from_api(check_tuning_job(done.get("response"), f"operation {op.get('name')}: response"))

        job = self._submit(change, submit)
        return f"rebased onto {job.raw.get('baseModel', '?')} as {job.name}"

    def _cancel(self, change: Change) -> str:
        self._cancel_if_active(change)
        self._record(None, change.address)
        return f"cancelled {change.job.name if change.job else ''} and stopped tracking it"

    def _adopt(self, change: Change) -> str:
        assert change.job is not None
        job = LiveJob(change.job.name, change.job.state, {}, change.job.create_time, change.job.update_time)
        entry = self._entry(change)
        request_id = entry.request_id if entry.request_id else None
        self._record_job(change, entry, job, request_id)
        return f"adopted {job.name}"

    def _forget(self, change: Change) -> str:
        self._record(None, change.address)
        return "removed from state (the job itself stays)"

    def _refresh(self, change: Change) -> str:
        with self._lock:
            entry = self.entries.get(change.address)
        if entry is not None and change.job is not None and (
                entry.job_state != change.job.state or entry.update_time != change.job.update_time):
            self._record(replace(entry, job_state=change.job.state, update_time=change.job.update_time),
                         change.address)
        return "unchanged"

    def _label(self, change: Change) -> str:
        return self.labels.get(change.address, change.key)

    def run_one(self, change: Change) -> Outcome:
        handler = {
            Action.CREATE: self._create, Action.REPLACE: self._create, Action.REBASE: self._rebase,
            Action.CANCEL: self._cancel, Action.ADOPT: self._adopt, Action.FORGET: self._forget,
            Action.NOOP: self._refresh,
        }[change.action]
        if change.action.changes_anything:
            self.progress.start(self._label(change), change.action)
        try:
            message = handler(change)
        except ReconcilerError as exc:
            if change.action.changes_anything:
                self.progress.finish(self._label(change), f"FAILED: {exc}")
            return Outcome(change, False, str(exc))
        with self._lock:
            entry = self.entries.get(change.address)
        if change.action.changes_anything:
            self.progress.finish(self._label(change), message)
        return Outcome(change, True, message, entry.job_name if entry else None)

    def run(self, plan: Plan) -> list[Outcome]:
        # A key shared by two locations is shown with its location, so progress lines stay unambiguous.
        keys = Counter(c.key for c in plan.changes)
        self.labels = {c.address: c.key if keys[c.key] == 1 else f"{c.key} ({c.location})" for c in plan.changes}
        with ThreadPoolExecutor(max_workers=max(1, self.options.parallelism), thread_name_prefix="apply") as pool:
            return list(pool.map(self.run_one, plan.changes))
