"""The Cloud Storage backend: a state at `gs://BUCKET/PATH.json`, shared by a team.

Objects, all beside the state, gzip with `Content-Encoding: gzip` and JSON inside:

- `PATH.json`            the state, as a local state file holds it. Every write of it is a
                         compare-and-swap, `ifGenerationMatch=<the generation read or last
                         written>` (0 to create). A refused write saves what this run holds to a
                         local recovery file (`recovery.py`) and fails: nothing is overwritten,
                         nothing is lost.
- `PATH.json.lock`       the lock (`gcs_lock.py`); its generation is the lock ID.
- `PATH.json.journal/G-L-N`  batch N of the changes the holder of lock L made on top of
                         generation G of the state (`gcs_journal.py`).

Group commit. One object takes about one write per second, yet an apply at parallelism 16
records tens of changes per second, and a create may not be sent before its request id is
durable. So changes go to a committer thread (`group_commit.py`): those handed in while a
batch is in flight go out together in the next one, each batch a new journal object (written
once, so the per-object limit never applies). The state object is rewritten only once the
journal has grown (`_should_compact`, at most once per COMPACT_MIN_SECONDS) and at `commit()`.
A locked `load()` folds a journal on the current generation (left by a killed run) into the
state object; journals on older generations were folded already and are deleted.

The fence. Journal objects are created with `ifGenerationMatch=0`. `force-unlock`, before it
removes a lock, creates the next journal name of that lock's holder (empty), as does a locked
load that finds another run's journal on the current generation. The displaced holder's next
batch then gets 412 and the store stops (recovery file, error) before the create that batch
announced is sent. Its batches are written before it acts and the fence after the last of
them, so whoever takes the lock next reads every request id it acted on. A state write always
follows a batch, so a displaced holder cannot write the state object either (and that write
is a compare-and-swap anyway).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from reconciler.errors import StateError
from reconciler.state import gcs_lock
from reconciler.state.gcs_client import call_options, make_client, storage_errors
from reconciler.state.gcs_journal import (
    WRITER_KEY,
    Changes,
    Fenced,
    JournalName,
    Listed,
    decode,
    encode,
    fence_off,
    list_journals,
    read_journal,
    write_journal,
)
from reconciler.state.group_commit import GroupCommitter
from reconciler.state.lock import LockInfo
from reconciler.state.model import (
    STATE_VERSION,
    State,
    StateEntry,
    apply_change,
    copy_entry,
    state_from_json,
    state_to_dict,
)
from reconciler.state.recovery import save_recovery
from reconciler.state.url import GcsObject, workspace_name

log = logging.getLogger(__name__)

LINEAGE_KEY = "reconciler-lineage"
SERIAL_KEY = "reconciler-serial"
PREVIOUS_KEY = "reconciler-previous-generation"
COMPACT_MIN_SECONDS = 1.0  # between two writes of the state object (GCS: ~1 write/s per object)
COMPACT_MIN_RECORDS = 256  # ... once the journal holds this many keys, or half the state
MAX_JOURNALS = 200  # objects a killed run may leave for the next load to read
_COMPACT = object()  # a batch item: write the state object now (commit)
_POOL_THREADS = 4  # reads of journal objects, deletes (the client is thread-safe)


def _copy(state: State) -> State:
    # Entries are never changed in place (record() stores copies), so sharing them is safe.
    return dataclasses.replace(state, entries=dict(state.entries))


class _MovedOn(Exception):
    """A journal listed a moment ago is gone: a commit landed between our reads."""


class GcsStateStore:
    """A state object in Cloud Storage, with the surface of `backend.StateBackend`."""

    def __init__(self, obj: GcsObject, client: Any = None) -> None:
        self.obj = obj
        self.location = obj.url
        self.lock_name = obj.sibling(gcs_lock.LOCK_SUFFIX)
        self._client = client
        self._mutex = threading.Lock()  # _state, and the order of submissions
        self._io = threading.RLock()  # one writer of objects at a time (committer or caller)
        self._lock_info: LockInfo | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._deletes: list[Future] = []
        self.recovery_path: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._state: State | None = None  # what load() returned, with every record since
        self._shadow: State | None = None  # what is durable: the state object plus our journal
        self._base: State | None = None  # what the state object holds (None: no object)
        self._generation: int | None = None  # of the state object; 0: none; None: not read yet
        self._delta: dict[str, StateEntry | None] = {}  # journaled, not yet in the state object
        self._journals: list[str] = []  # our journal objects on the current generation
        self._seq = 0
        self._last_state_write = float("-inf")
        self._committer: GroupCommitter | None = None
        self._broken: str | None = None

    # --- plumbing ------------------------------------------------------------------------

    def _bucket(self) -> Any:
        if self._client is None:
            self._client = make_client()
        return self._client.bucket(self.obj.bucket)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_POOL_THREADS, thread_name_prefix="state-gcs")
        return self._pool

    def _require_lock(self, what: str) -> None:
        if self._lock_info is None:
            raise RuntimeError(f"GcsStateStore.{what}() needs the lock: use `with store.lock(...)`")

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise StateError(self._broken)

    @property
    def lock_info(self) -> LockInfo | None:
        return self._lock_info

    # --- locking -------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        if self._lock_info is not None:
            raise RuntimeError(f"{self.location} is already locked by this GcsStateStore")
        info = gcs_lock.acquire(self._bucket(), self.lock_name, self.location, operation, timeout)
        with self._mutex:
            self._lock_info = info
        self._reset()
        try:
            yield info
        finally:
            try:
                self._stop_committer()
                self._wait_deletes(10.0)
            finally:
                with self._mutex:
                    self._lock_info = None
                self._reset()  # what we read may be stale once others can write
                try:
                    gcs_lock.release(self._bucket(), self.lock_name, self.location, info)
                except StateError as exc:  # never hide the error that brought us here
                    log.warning("%s; if it is still there, remove it with `reconciler force-unlock %s "
                                "--state %s`", exc, info.id, self.location)

    def current_lock(self) -> LockInfo | None:
        return gcs_lock.read_holder(self._bucket(), self.lock_name, self.location)

    def force_unlock(self, lock_id: str) -> None:
        """Fence the holder off (it can write nothing more, should it still run), then remove
        its lock; only the lock with ID `lock_id`."""
        bucket = self._bucket()
        gcs_lock.held(bucket, self.lock_name, self.location, lock_id)
        fence_off(bucket, self.obj, int(lock_id))
        gcs_lock.force_remove(bucket, self.lock_name, self.location, lock_id)

    # --- reading -------------------------------------------------------------------------

    def exists(self) -> bool:
        if self._generation is not None:
            return self._generation > 0
        with storage_errors(f"cannot read state {self.location}"):
            return self._bucket().get_blob(self.obj.name, **call_options()) is not None

    def snapshot(self) -> State:
        with self._mutex:
            if self._state is None:
                raise RuntimeError("GcsStateStore.snapshot() before load()")
            return _copy(self._state)

    def load(self) -> State:
        """The current state with the journal of its generation folded in (under the lock,
        also written into the state object). Unlocked: a read-only view."""
        self._quiesce()
        with self._io:
            for _ in range(3):
                try:
                    return self._load()
                except _MovedOn:
                    continue
        raise StateError(f"state {self.location} kept changing while being read (a writer without the lock?); "
                         "try again")

    def _load(self) -> State:
        from google.api_core.exceptions import NotFound

        bucket = self._bucket()
        listing = self._executor().submit(list_journals, bucket, self.obj)  # beside the download
        try:
            data, generation = self._download()
        finally:
            journals = listing.result()
        base = self._parse_state(data) if data is not None else None
        state = _copy(base) if base is not None else State()
        locked = self._lock_info is not None
        if locked and self._fence_others([j for j in journals if j.name.base == generation]):
            journals = list_journals(bucket, self.obj)
        current = [j for j in journals if j.name.base == generation]
        try:
            folded = self._fold(state, base, current)
        except NotFound:
            raise _MovedOn() from None
        with self._mutex:
            self._state = state
            self._shadow = _copy(state)
            self._base, self._generation = base, generation
            self._delta, self._journals, self._seq = dict(folded), [], 0
        if locked:
            if folded:
                log.info("folding the journal of an interrupted run into %s", self.location)
                with self._recovering():
                    self._compact()
            # Folded now, or on an older generation: not needed; fences stay while they may matter.
            self._retire([j.name.object_name(self.obj) for j in journals
                          if j.disposable and (folded or j.name.base != generation)])
        return state

    def _fence_others(self, journals: list[Listed]) -> bool:
        """A journal on the current generation under another lock: that run was killed, or its
        lock was removed by hand. Fence it off before reading its journal. True if it did."""
        assert self._lock_info is not None
        fenced = {j.name.lock for j in journals if j.fence}  # force-unlock did it already
        others = sorted({j.name.lock for j in journals if not j.fence} - fenced - {int(self._lock_info.id)})
        for other in others:
            fence_off(self._bucket(), self.obj, other)
        return bool(others)

    def _download(self) -> tuple[bytes | None, int]:
        from google.api_core.exceptions import NotFound

        blob = self._bucket().blob(self.obj.name)
        try:
            with storage_errors(f"cannot read state {self.location}"):
                data = blob.download_as_bytes(raw_download=True, **call_options())
        except NotFound:
            if self._lock_info is None:  # under the lock, taking it proved that the bucket exists
                self._check_bucket()
            return None, 0
        return data, int(blob.generation)

    def _check_bucket(self) -> None:
        with storage_errors(f"cannot read state {self.location}"):
            found = self._bucket().exists(**call_options())
        if not found:
            raise StateError(f"state {self.location}: bucket {self.obj.bucket} does not exist")

    def _parse_state(self, data: bytes) -> State:
        try:
            return state_from_json(decode(data, f"state file {self.location}"), self.location)
        except StateError as exc:
            raise StateError(f"{exc}. It was left unchanged. Earlier versions, if the bucket keeps them "
                             f"(object versioning), are listed by `gcloud storage ls -a {self.location}`") from None

    def _fold(self, state: State, base: State | None, journals: list[Listed]) -> dict[str, StateEntry | None]:
        """Apply journals (sorted) to `state`; returns the changes by address."""
        if not journals:
            return {}
        for lock_gen in {j.name.lock for j in journals}:
            seqs = [j.name.seq for j in journals if j.name.lock == lock_gen]
            if seqs != list(range(1, len(seqs) + 1)):
                raise StateError(f"the journal of {self.location} has a gap (batches {seqs} of lock {lock_gen}); "
                                 "the state object was left unchanged")
        bucket = self._bucket()
        batches = [j.name for j in journals if not j.fence]  # a fence holds nothing
        records = list(self._executor().map(lambda j: read_journal(bucket, self.obj, j), batches))
        lineages = {lineage for lineage, _ in records if lineage is not None}
        if base is None and len(lineages) == 1:
            state.lineage = lineages.pop()  # the run was killed before its first state write
        changes: dict[str, StateEntry | None] = {}
        for journal, (lineage, items) in zip(batches, records):
            if lineage is not None and lineage != state.lineage:
                raise StateError(f"state journal {journal.url(self.obj)} belongs to state lineage {lineage}, "
                                 f"but {self.location} has lineage {state.lineage}")
            for address, entry in items:
                apply_change(state, address, entry)
                changes[address] = entry
        return changes

    # --- recording (group commit) --------------------------------------------------------

    def record(self, entry: StateEntry | None, address: str) -> None:
        """Record one change. One that announces a new request id (the billed call carrying it
        comes next) returns once it is durable in the bucket; others return at once and are
        durable within one batch, and surely after commit()."""
        self._require_lock("record")
        if entry is not None and entry.address != address:
            raise ValueError(f"entry address {entry.address!r} does not match {address!r}")
        if entry is not None:
            entry = copy_entry(entry)  # later edits by the caller don't leak in
        with self._mutex:
            if self._state is None:
                raise RuntimeError("GcsStateStore.record() before load()")
            self._check_usable()
            previous = self._state.entries.get(address)
            write_ahead = entry is not None and entry.request_id is not None and (
                previous is None or previous.request_id != entry.request_id)
            if self._committer is None:
                self._committer = GroupCommitter(self._write_batch, name="state-gcs-commit")
            seq = self._committer.submit((address, entry))
            apply_change(self._state, address, entry)
        if write_ahead:
            self._committer.wait(seq)

    def _write_batch(self, batch: list) -> None:
        with self._io, self._recovering():
            self._check_usable()
            assert self._shadow is not None
            changes = [item for item in batch if item is not _COMPACT]
            for address, entry in changes:
                apply_change(self._shadow, address, entry)
                self._delta[address] = entry
            compact = len(changes) < len(batch) or self._should_compact()
            if not changes and not self._journals and (
                    self._base.entries == self._shadow.entries if self._base is not None else not self._shadow.entries):
                return  # commit() with nothing new
            if changes or compact:
                self._write_journal(changes)  # first: refused here if a force-unlock fenced us off
            if compact:
                self._compact()

    def _should_compact(self) -> bool:
        assert self._shadow is not None
        if not self._delta or time.monotonic() - self._last_state_write < COMPACT_MIN_SECONDS:
            return False
        return (len(self._delta) >= max(COMPACT_MIN_RECORDS, len(self._shadow.entries) // 2)
                or len(self._journals) >= MAX_JOURNALS)

    def _write_journal(self, changes: Changes) -> None:
        assert self._shadow is not None and self._lock_info is not None
        journal = JournalName(self._generation or 0, int(self._lock_info.id), self._seq + 1)
        try:
            write_journal(self._bucket(), self.obj, journal, self._shadow.lineage, changes)
        except Fenced:
            raise _Refused(f"its lock (ID {self._lock_info.id}) was force-removed while this run was using it") \
                from None
        self._seq = journal.seq
        self._journals.append(journal.object_name(self.obj))

    def _compact(self) -> None:
        """Write the durable view into the state object (one compare-and-swap) when it differs
        from what the object holds, then retire the journal it replaces."""
        assert self._shadow is not None
        base = self._base
        if base is not None and base.entries == self._shadow.entries:
            self._shadow.serial = base.serial  # nothing new: no write
        elif base is not None or self._shadow.entries:
            new = _copy(self._shadow)
            new.version = STATE_VERSION
            new.serial = (base.serial if base is not None else self._shadow.serial) + 1
            self._generation = self._write_state_object(new, self._generation or 0)
            self._base = new
            self._shadow.serial = new.serial
            self._last_state_write = time.monotonic()
            with self._mutex:
                if self._state is not None:
                    self._state.serial = new.serial
        self._delta = {}
        self._retire(self._journals)
        self._journals, self._seq = [], 0

    def _write_state_object(self, state: State, expected: int) -> int:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        token = uuid.uuid4().hex
        blob = self._bucket().blob(self.obj.name)
        blob.content_encoding = "gzip"
        blob.metadata = {WRITER_KEY: token, LINEAGE_KEY: state.lineage, SERIAL_KEY: str(state.serial),
                         PREVIOUS_KEY: str(expected)}
        data = encode(state_to_dict(state))
        try:
            with storage_errors(f"cannot write state {self.location}"):
                blob.upload_from_string(data, content_type="application/json", if_generation_match=expected,
                                        **call_options())
        except PreconditionFailed:
            with storage_errors(f"cannot read state {self.location}"):
                current = self._bucket().get_blob(self.obj.name, **call_options())
            if current is not None and (current.metadata or {}).get(WRITER_KEY) == token:
                return int(current.generation)  # ours: the first answer was lost and the retry got 412
            now = int(current.generation) if current is not None else 0
            raise _Refused(f"it was written by someone else since this run read it (generation {now}, "
                           f"expected {expected or 'none'})", state) from None
        except NotFound:
            raise _Refused(f"bucket {self.obj.bucket} does not exist", state) from None
        return int(blob.generation)

    @contextlib.contextmanager
    def _recovering(self) -> Iterator[None]:
        """A write that fails stops this store: what the run holds goes to a local recovery
        file and every later call fails with the same message."""
        try:
            yield
        except _Refused as exc:
            self._break(exc.reason, exc.state)
        except StateError as exc:
            self._break(str(exc), None, refused=False)

    def _break(self, reason: str, held: State | None, refused: bool = True) -> None:
        if self._broken is not None:
            raise StateError(self._broken)
        with self._mutex:
            keep = _copy(held if held is not None else (self._state or self._shadow or State()))
        base_serial = self._base.serial if self._base is not None else 0
        keep.serial = max(keep.serial, base_serial + 1)  # the next version, if nobody else wrote
        keep.version = STATE_VERSION
        try:
            path: str | None = str(save_recovery(keep, workspace_name(self.obj.name)))
            saved = f"the state this run holds ({len(keep.entries)} keys) is saved in {path}"
        except OSError as exc:
            path, saved = None, f"saving it locally failed too ({exc.strerror or exc})"
        self.recovery_path = path
        what = "This run's write was refused and nothing was overwritten" if refused else \
            "This run could not write its state"
        self._broken = (f"state {self.location}: {reason}. {what}; {saved}. Compare it with "
                        f"`reconciler state pull --state {self.location}`, then `reconciler state push "
                        f"{path or 'FILE'} --state {self.location}` (add --force once you know it is right)")
        raise StateError(self._broken)

    def _retire(self, names: list[str]) -> None:
        """Delete journal objects nobody needs any more, in the background."""
        from google.api_core.exceptions import NotFound

        bucket = self._bucket()

        def delete(name: str) -> None:
            try:
                with storage_errors(f"cannot delete gs://{self.obj.bucket}/{name}"):
                    bucket.blob(name).delete(**call_options())
            except NotFound:
                pass
            except StateError as exc:
                log.warning("%s (a journal left behind is ignored, and deleted by the next run)", exc)

        pool = self._executor()
        self._deletes = [f for f in self._deletes if not f.done()] + [pool.submit(delete, n) for n in names]

    def _wait_deletes(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for future in self._deletes:
            with contextlib.suppress(Exception):
                future.result(max(0.0, deadline - time.monotonic()))
        self._deletes = []

    def _quiesce(self) -> None:
        """Let the committer finish what was handed in (raises if it broke)."""
        committer = self._committer
        if committer is not None:
            committer.flush()

    def _stop_committer(self) -> None:
        committer, self._committer = self._committer, None
        if committer is not None:
            committer.close(timeout=60)

    def commit(self) -> State:
        """Everything recorded goes into the state object (one write if anything changed)."""
        self._require_lock("commit")
        if self._state is None:
            raise RuntimeError("GcsStateStore.commit() before load()")
        self._check_usable()
        committer = self._committer
        if committer is not None:
            committer.wait(committer.submit(_COMPACT))
        return self._state

    # --- whole-state writes --------------------------------------------------------------

    def _current(self) -> tuple[State | None, int]:
        """What the state object holds now (as loaded, or read afresh)."""
        if self._state is not None and self._generation is not None:
            return self._base, self._generation
        data, generation = self._download()
        base = self._parse_state(data) if data is not None else None
        self._generation = generation
        return base, generation

    def _write_whole(self, state: State, base: State | None, generation: int) -> int:
        """A whole-state write: a journal batch first (the fence), then the state object."""
        self._generation = generation
        if self._shadow is None:
            self._shadow = _copy(base) if base is not None else State(lineage=state.lineage)
        self._write_journal([])
        return self._write_state_object(state, generation)

    def save(self, state: State) -> None:
        """Write a whole state of the same lineage as the next serial (import, state rm/mv)."""
        self._require_lock("save")
        self._quiesce()
        with self._io:
            self._check_usable()
            base, generation = self._current()
            if base is not None and state.lineage != base.lineage:
                raise StateError(f"refusing to overwrite {self.location} (lineage {base.lineage}) with a state "
                                 f"of lineage {state.lineage}")
            if base is not None and base.entries == state.entries:
                state.serial = base.serial
            else:
                state.version = STATE_VERSION
                state.serial = (base.serial if base is not None else state.serial) + 1
                with self._recovering():
                    generation = self._write_whole(state, base, generation)
                base = _copy(state)
            self._hold(state, base, generation)

    def overwrite(self, state: State) -> None:
        """Write exactly `state` (push, migrate: the caller checked lineage and serial)."""
        self._require_lock("overwrite")
        self._quiesce()
        with self._io:
            self._check_usable()
            base, generation = self._current()
            with self._recovering():
                generation = self._write_whole(state, base, generation)
            self._hold(state, _copy(state), generation)

    def _hold(self, state: State, base: State | None, generation: int) -> None:
        with self._mutex:
            self._state = state
            self._shadow = _copy(state)
            self._base, self._generation, self._delta = base, generation, {}
        self._retire(self._journals)
        self._journals, self._seq = [], 0
        self._last_state_write = time.monotonic()

    def previous(self) -> State | None:
        """The generation before the current one, if the bucket keeps versions."""
        from google.api_core.exceptions import NotFound

        with storage_errors(f"cannot read state {self.location}"):
            blob = self._bucket().get_blob(self.obj.name, **call_options())
        try:
            generation = int(((blob.metadata if blob is not None else None) or {}).get(PREVIOUS_KEY, "0"))
        except ValueError:
            return None
        if generation <= 0:
            return None
        source = f"{self.location}#{generation}"
        try:
            with storage_errors(f"cannot read state {source}"):
                data = self._bucket().blob(self.obj.name, generation=generation).download_as_bytes(
                    raw_download=True, **call_options())
        except NotFound:
            return None  # no object versioning: the previous generation is gone
        return state_from_json(decode(data, source), source)

    def delete(self) -> None:
        """Remove the state object and its journal (workspace delete); the lock goes on release."""
        from google.api_core.exceptions import NotFound

        self._require_lock("delete")
        self._quiesce()
        with self._io:
            _, generation = self._current()
            if generation:
                try:
                    with storage_errors(f"cannot delete state {self.location}"):
                        self._bucket().blob(self.obj.name).delete(if_generation_match=generation,
                                                                  **call_options())
                except NotFound:
                    pass
            self._retire([j.name.object_name(self.obj) for j in list_journals(self._bucket(), self.obj)
                          if j.disposable])
            with self._mutex:
                self._state = self._shadow = self._base = None
                self._generation = 0


class _Refused(Exception):
    def __init__(self, reason: str, state: State | None = None) -> None:
        super().__init__(reason)
        self.reason, self.state = reason, state
