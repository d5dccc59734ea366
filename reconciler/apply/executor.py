"""apply(): carry out the changes a plan recorded, never re-deciding them.

Every step is made durable at once through the state store's journal: the request id of a
create is recorded *before* the call, so a crash between the call and the result is healed by
adoption on the next plan (the job carries that request label). Changes run in parallel; one
failure does not stop the others. Submissions (and their retries after 429) wait for the
pacer (`apply/pacer.py`) of their project and location, as Vertex AI's quota is counted;
regions take turns in the work queue, so one region's quota never holds up another's.

Ctrl-C stops promptly: no change that has not started is started, nobody waiting for the
pacer submits, requests under way get INTERRUPT_GRACE seconds to finish and be recorded, and
from then on nothing is recorded any more (a create whose answer is never recorded is adopted
by the next plan through its journaled request id). The workers are daemon threads, so the
process need not wait for an abandoned request; KeyboardInterrupt is raised again.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from reconciler.api.answers import check_tuning_job
from reconciler.api.errors import FailedPreconditionError
from reconciler.api.names import new_request_id
from reconciler.apply.pacer import Pacer
from reconciler.errors import ReconcilerError
from reconciler.model import ACTIVE_STATES, KEY_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SPEC_LABEL, V1
from reconciler.plan.live import LiveJob
from reconciler.plan.model import Action, Change, Plan
from reconciler.state.model import State, StateEntry
from reconciler.text import key_labels


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


def create_body(change: Change) -> dict:
    """The desired spec plus the identity labels (the request label is added by the client)."""
    body = dict(change.after or {})
    body["labels"] = {**body.get("labels", {}), MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                      KEY_LABEL: change.key, SPEC_LABEL: change.spec_hash or ""}
    return body


class Progress(Protocol):
    """Where apply reports (the terminal's progress lines; tests record them)."""

    def start(self, key: str, action: Action) -> None: ...

    def finish(self, key: str, message: str) -> None: ...

    def line(self, text: str) -> None: ...

    def status(self, text: str) -> None: ...

    def __enter__(self) -> Progress: ...

    def __exit__(self, *exc: object) -> None: ...


class ApplyInterrupted(ReconcilerError):
    """Ctrl-C: this change was not started (or not retried after a 429)."""

    def __init__(self) -> None:
        super().__init__("interrupted")


INTERRUPT_GRACE = 15.0  # seconds that requests under way get after Ctrl-C (a second Ctrl-C: none)


class Executor:
    def __init__(self, client, store, state: State, progress: Progress, options: ApplyOptions) -> None:
        self.client, self.store, self.progress, self.options = client, store, progress, options
        # Our own view of the entries, kept in step with what we record (no whole-state copies).
        self.entries: dict[str, StateEntry] = dict(state.entries)
        self.labels: dict[str, str] = {}
        # Vertex AI's submission quota is per project and region: so is each pacer.
        self._pacers: dict[tuple[str, str], Pacer] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # Ctrl-C: start nothing more
        self._closed = False  # ... and, after the grace period, record nothing more
        self._running = _Running()
        self._recording = 0  # records being written now
        self._recorded = threading.Condition(self._lock)
        self._local = threading.local()  # .pacer, .epoch: this thread's submission's pacer and epoch
        if hasattr(client, "on_throttle"):
            client.on_throttle(self._throttled)

    def _throttled(self, retry_after: float | None) -> None:
        """The client's 429 hook, called in the thread that got it before that thread retries.
        A submission reports it to the pacer and waits there for its retry's slot; other calls
        (refresh, cancel) are not paced."""
        epoch = getattr(self._local, "epoch", None)
        if epoch is None:
            return
        pacer = self._local.pacer
        pacer.on_throttle(epoch)
        epoch = pacer.acquire(retry=True)
        if epoch is None:
            raise ApplyInterrupted()  # a 429 created nothing: simply do not retry
        self._local.epoch = epoch

    def _pacer(self, change: Change) -> Pacer:
        with self._lock:
            pacer = self._pacers.get((change.project, change.location))
            if pacer is None:
                pacer = self._pacers[(change.project, change.location)] = Pacer(self.options.max_creates_per_minute)
                if self._stopping.is_set():
                    pacer.stop()
            return pacer

    # -- state helpers ---------------------------------------------------------------------
    def _entry(self, change: Change) -> StateEntry:
        with self._lock:
            found = self.entries.get(change.address)
        if found is not None:
            return replace(found, history=list(found.history))
        return StateEntry(key=change.key, project=change.project, location=change.location)

    def _record(self, entry: StateEntry | None, address: str) -> None:
        # Outside the lock: the store shares one fsync among concurrent records (group commit).
        with self._lock:
            if self._closed:
                raise ApplyInterrupted()
            self._recording += 1
        try:
            self.store.record(entry, address)
        finally:
            with self._lock:
                self._recording -= 1
                self._recorded.notify_all()
        with self._lock:
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
                      prevent_cancel=change.lifecycle.prevent_cancel, api_version=_stored(change.api_version))
        self._record(new, change.address)
        return new

    # -- actions ---------------------------------------------------------------------------
    def _submit(self, change: Change, send: Callable[[str], dict], finish: Callable[[dict], LiveJob],
                before: Callable[[], None] | None = None) -> LiveJob:
        """Wait for the pacer, record the request id, then submit a billed job."""
        pacer = self._pacer(change)
        epoch = pacer.acquire()
        if epoch is None:
            raise ApplyInterrupted()
        if before is not None:
            before()
        entry = self._entry(change)
        request_id = new_request_id()
        self._record(replace(entry, request_id=request_id), change.address)
        self._local.pacer, self._local.epoch = pacer, epoch
        try:
            answer = send(request_id)
        finally:
            epoch, self._local.epoch = self._local.epoch, None
        pacer.on_success(epoch)
        job = finish(answer)
        self._record_job(change, entry, job, request_id)
        return job

    def _cancel_if_active(self, change: Change) -> None:
        if change.job and change.job.state in ACTIVE_STATES:
            try:
                self.client.cancel_job(change.job.name, api_version=change.api_version)
            except FailedPreconditionError:
                pass  # it finished meanwhile: nothing left to cancel

    def _create(self, change: Change) -> str:
        # A replace cancels the old job once the new one may go, not before it waits its turn.
        cancel = (lambda: self._cancel_if_active(change)) if change.action is Action.REPLACE else None
        job = self._submit(change, lambda rid: self.client.create_job(change.parent, create_body(change), request_id=rid,
                                                                      api_version=change.api_version),
                           LiveJob.from_api, before=cancel)
        return f"created {job.name}"

    def _rebase(self, change: Change) -> str:
        assert change.job is not None
        body = {"tunedModelRef": {"tuningJob": change.job.name}, "tuningJob": create_body(change)}

        def finish(op: dict) -> LiveJob:
            done = op if op.get("done") else self.client.wait_operation(
                op["name"], timeout=self.options.operation_timeout, api_version=change.api_version)
            # A done operation without a proper job would record a nameless job in state.
            return LiveJob.from_api(check_tuning_job(done.get("response"), f"operation {op.get('name')}: response"))

        job = self._submit(change, lambda rid: self.client.rebase_tuned_model(change.parent, body, request_id=rid,
                                                                              api_version=change.api_version),
                           finish)
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
        api_version = _stored(change.api_version) if change.after is not None else entry and entry.api_version
        if entry is not None and change.job is not None and (
                entry.job_state != change.job.state or entry.update_time != change.job.update_time
                or entry.api_version != api_version):
            # A manifest moved between v1 and v1beta1 with the same fields: not a change to the
            # job, but later cancels and reads go through the version it names now.
            self._record(replace(entry, job_state=change.job.state, update_time=change.job.update_time,
                                 api_version=api_version), change.address)
        return "unchanged"

    def _label(self, change: Change) -> str:
        return self.labels.get(change.address, change.key)

    def run_one(self, change: Change) -> Outcome:
        handler = {
            Action.CREATE: self._create, Action.REPLACE: self._create, Action.REBASE: self._rebase,
            Action.CANCEL: self._cancel, Action.ADOPT: self._adopt, Action.FORGET: self._forget,
            Action.NOOP: self._refresh,
        }[change.action]
        shown = change.action.changes_anything
        if shown:
            self.progress.start(self._label(change), change.action)
        try:
            message = handler(change)
        except ReconcilerError as exc:
            if shown and not self._stopping.is_set():
                self.progress.finish(self._label(change), f"FAILED: {exc}")
            return Outcome(change, False, str(exc))
        with self._lock:
            entry = self.entries.get(change.address)
        if shown and not self._stopping.is_set():
            self.progress.finish(self._label(change), message)
        return Outcome(change, True, message, entry.job_name if entry else None)

    def started_jobs(self, outcomes: list[Outcome]) -> dict[str, StateEntry]:
        """The state entries of the jobs these outcomes submitted or adopted (what --wait follows)."""
        with self._lock:
            return {o.change.address: self.entries[o.change.address] for o in outcomes
                    if o.ok and (o.change.action.starts_a_job or o.change.action is Action.ADOPT)
                    and o.change.address in self.entries and self.entries[o.change.address].job_name}

    def run(self, plan: Plan) -> list[Outcome]:
        # A key shared by two locations is shown with its location, so progress lines stay unambiguous.
        self.labels = key_labels((c.address, c.key, c.location) for c in plan.changes)
        changes = list(plan.changes)
        outcomes: list[Outcome | None] = [None] * len(changes)
        errors: list[BaseException] = []
        taken = itertools.count()
        order = _by_turns(changes)

        def work() -> None:
            try:
                while not self._stopping.is_set():
                    with self._lock:
                        n = next(taken)
                    if n >= len(order):
                        return
                    i = order[n]
                    try:
                        outcomes[i] = self.run_one(changes[i])
                    except BaseException as exc:  # a bug: raised in the main thread below
                        errors.append(exc)
            finally:
                self._running.finished()

        # Daemon threads: after Ctrl-C the process need not wait for a request under way.
        workers = [threading.Thread(target=work, name=f"apply-{n}", daemon=True)
                   for n in range(min(max(1, self.options.parallelism), len(changes)))]
        try:
            for worker in workers:
                self._running.started()
                try:
                    worker.start()
                except BaseException:
                    self._running.finished()  # it never ran
                    raise
            while not self._running.wait_idle(0.25):
                pass
        except KeyboardInterrupt:
            self.interrupt()
            raise
        if errors:
            raise errors[0]
        return [o for o in outcomes if o is not None]

    def interrupt(self, grace: float = INTERRUPT_GRACE) -> None:
        """Stop: start no further change, let nobody waiting for the pacer submit, give the
        requests under way `grace` seconds, then refuse all further records."""
        with self._lock:
            self._stopping.set()
            pacers = list(self._pacers.values())
        for pacer in pacers:
            pacer.stop()
        try:
            deadline = time.monotonic() + grace
            # Most requests end within half a second: say nothing about those.
            if not self._running.wait_idle(min(0.5, grace)):
                # An answer not recorded is healed by adoption on the next apply; recording it now
                # is better still, so wait, unless the user insists.
                self.progress.line(f"Interrupted: waiting up to {grace:.0f}s for {self._running.count} request(s) "
                                   "under way to be recorded (Ctrl-C again to stop at once)...")
                self._running.wait_idle(max(0.0, deadline - time.monotonic()))
        finally:
            with self._lock:  # nothing more is recorded once the records being written are
                self._closed = True
                self._recorded.wait_for(lambda: self._recording == 0)


def _by_turns(changes: list[Change]) -> list[int]:
    """The order to start changes in: regions take turns (each has its own pacer), so workers
    waiting for one region's quota never hold up another's; within a region, plan order."""
    regions: dict[tuple[str, str], list[int]] = {}
    for i, change in enumerate(changes):
        regions.setdefault((change.project, change.location), []).append(i)
    return [i for turn in itertools.zip_longest(*regions.values()) for i in turn if i is not None]


def _stored(api_version: str) -> str | None:
    """State records only the versions other than v1 (v1 entries look as they always did)."""
    return None if api_version == V1 else api_version


class _Running:
    """How many workers still run. Waited on through a Condition, never Thread.join: on
    Python 3.11 a join interrupted by Ctrl-C can mark a thread that still runs as stopped,
    and its request under way would then go unrecorded."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count = 0

    def started(self) -> None:
        with self._cond:
            self.count += 1

    def finished(self) -> None:
        with self._cond:
            self.count -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once no worker runs; False if some still do after `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self.count == 0, timeout)
