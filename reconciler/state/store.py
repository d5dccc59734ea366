"""The state file on disk: load, journal, atomic commit, backup (the lock is `lock.py`).

Files beside the state file `S` (all mode 0600, same directory so renames are atomic):

- `S.lock`    who holds the lock (see `reconciler.state.lock`).
- `S.journal` one JSON line per completed action since the last commit, fsynced at once, so a
              long apply is durable per action without rewriting the whole state each time.
              Line 1 is a header `{"journal": 1, "lineage": ..., "serial": N}` naming the state
              it extends; every further line is `{"address": ..., "entry": {...} | null}`.
- `S.backup`  the previous state file, kept on every write.

Crash safety: the state file is only ever replaced by rename(2) of a fully written, fsynced
temp file, so readers see the old or the new content, never a torn one. A journal whose
header serial is older than the state file's was already folded in (crash between the rename
and the journal's deletion) and is dropped; a torn tail (crash mid-append) is ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import jsonio
from reconciler.errors import StateError
from reconciler.files import (
    PRIVATE_MODE,
    atomic_write,
    fsync_dir,
    kind_of_file,
    read_regular,
    resolve_link,
    write_all,
)
from reconciler.state.lock import LockInfo, lock_path_for, locked_message, read_lock, release_lock, try_create_lock
from reconciler.state.model import (
    STATE_VERSION,
    State,
    StateEntry,
    apply_change,
    copy_entry,
    entry_from_dict,
    entry_to_dict,
    state_from_json,
    state_to_json,
)
from reconciler.text import shorten

log = logging.getLogger(__name__)

JOURNAL_FORMAT = 1
_LOCK_POLL_SECONDS = 0.1


def _copy_entries(entries: dict[str, StateEntry]) -> dict[str, StateEntry]:
    return {a: copy_entry(e) for a, e in entries.items()}


def _copy_state(state: State) -> State:
    return dataclasses.replace(state, entries=_copy_entries(state.entries))


@dataclass
class _Journal:
    lineage: str
    serial: int
    changes: list[tuple[str, StateEntry | None]]


class StateStore:
    """One state file. Use as:

        store = StateStore("state/default.json")
        with store.lock("apply", timeout=args.lock_timeout):
            state = store.load()
            store.record(entry, entry.address)   # per action, from any thread
            store.commit()                        # fold the journal into the file

    Leaving the lock does not commit: a journal left behind is folded in by the next
    locked load(). load() without the lock is a read-only view (journal folded in memory).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # A state path that is a symbolic link is used through the link: the target gets the
        # writes, and its lock, journal and backup sit beside it (shared by every link to it).
        self.path = Path(resolve_link(path))
        self.backup_path = Path(f"{self.path}.backup")
        self.journal_path = Path(f"{self.path}.journal")
        self.lock_path = lock_path_for(self.path)
        self._mutex = threading.Lock()
        self._lock_info: LockInfo | None = None
        self._state: State | None = None  # what load() returned; record() updates it
        self._base: State | None = None  # what the state file on disk holds (None: no file)
        self._journal_fd: int | None = None
        self._journal_size = 0  # bytes of whole lines in the open journal
        self._synced_size = 0  # ... of which fsync has made this many durable
        self._syncing = False  # a thread is in fsync for everyone (group commit)
        self._synced = threading.Condition(self._mutex)
        self._cuts = 0  # times unsynced lines were cut off after a failed fsync
        self._journal_broken: str | None = None

    # --- locking -------------------------------------------------------------------------

    @property
    def lock_info(self) -> LockInfo | None:
        return self._lock_info

    @contextlib.contextmanager
    def lock(self, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        if self._lock_info is not None:
            raise RuntimeError(f"{self.path} is already locked by this StateStore")
        info = LockInfo.new(operation)
        deadline = time.monotonic() + max(0.0, timeout)
        while not self._try_create_lock_or_fail(info):
            holder = read_lock(self.path)
            if holder is None:
                continue  # released between our attempt and the read: try again at once
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StateError(locked_message(self.path, holder, timeout))
            time.sleep(min(_LOCK_POLL_SECONDS, remaining))
        with self._mutex:
            self._lock_info = info
            self._state = None  # record() must follow a load() made under this lock
            self._base = None
        self._remove_orphans()
        try:
            yield info
        finally:
            with self._mutex:
                self._close_journal()
                self._lock_info = None
                # What we read may be stale once others can write: the next lock reloads.
                self._state = None
                self._base = None
            release_lock(self.path, info)

    def _remove_orphans(self) -> None:
        # Only the lock holder writes temp files, so any we find now were left by a crash.
        for tmp in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _try_create_lock_or_fail(self, info: LockInfo) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return try_create_lock(self.path, info)
        except OSError as exc:
            raise StateError(f"cannot create lock file {self.lock_path}: {exc.strerror or exc}") from exc

    def _require_lock(self, what: str) -> None:
        if self._lock_info is None:
            raise RuntimeError(f"StateStore.{what}() needs the lock: use `with store.lock(...)`")

    # --- reading -------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the state file has been written (a fresh State's lineage is not pinned yet)."""
        return self.path.exists()

    def load(self) -> State:
        """The current state, with any leftover journal folded in (and committed if locked)."""
        if self._lock_info is not None:
            self._check_backup_path()  # now, not at the first commit after jobs were started
        journal = self._read_journal()  # before the state file: see _fold
        base = self._read_state_file()
        state = _copy_state(base) if base is not None else State()
        folded = False
        if journal is not None:
            folded = self._fold(state, base, journal)
        with self._mutex:
            self._state = state
            self._base = base
        if self._lock_info is not None and journal is not None:
            if folded:
                log.info("folding journal %s from an interrupted run into %s", self.journal_path, self.path)
            self.commit()
        return state

    def snapshot(self) -> State:
        """A copy of the in-memory state, safe to read while workers call record()."""
        with self._mutex:
            if self._state is None:
                raise RuntimeError("StateStore.snapshot() before load()")
            return _copy_state(self._state)

    def _backup_hint(self) -> str:
        if self.backup_path.exists():
            return f"The previous version is in {self.backup_path}."
        return f"No backup ({self.backup_path}) exists."

    def _read_state_file(self) -> State | None:
        try:
            text = read_regular(self.path).decode("utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise StateError(
                f"state file {self.path}: not UTF-8 text. It was left unchanged. {self._backup_hint()}"
            ) from None
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror or exc}") from None
        try:
            return state_from_json(text, str(self.path))
        except StateError as exc:
            raise StateError(f"{exc}. It was left unchanged. {self._backup_hint()}") from None

    def _read_journal(self) -> _Journal | None:
        try:
            raw = read_regular(self.journal_path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read state journal {self.journal_path}: {exc.strerror or exc}") from None
        records: list[tuple[int, Any]] = []
        bad: list[tuple[int, str]] = []  # unparsable lines; allowed only as a torn tail
        lines = raw.split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip(b"\x00 \t\r"):
                continue  # blank, or zeros a crash left at the end of the file
            if number == len(lines):  # no newline after it: cut off mid-write
                bad.append((number, "no newline at the end"))
                continue
            try:
                value = jsonio.loads(line)
            except ValueError as exc:  # JsonError: not JSON, not UTF-8, or nested too deep
                bad.append((number, str(exc)))
                continue
            if bad:
                raise StateError(
                    f"state journal {self.journal_path}:{bad[0][0]}: corrupt line ({bad[0][1]}) "
                    "followed by further records; the state file was left unchanged"
                )
            records.append((number, value))
        if bad:
            log.warning("ignoring torn tail of %s from line %d (a crash mid-write)", self.journal_path, bad[0][0])
        if not records:
            return _Journal(lineage="", serial=-1, changes=[])  # only a torn header: nothing done
        (hnum, header), rest = records[0], records[1:]
        if not (isinstance(header, dict) and header.get("journal") == JOURNAL_FORMAT
                and isinstance(header.get("lineage"), str) and isinstance(header.get("serial"), int)):
            raise StateError(f"state journal {self.journal_path}:{hnum}: not a journal header "
                             f"(format {JOURNAL_FORMAT})")
        changes: list[tuple[str, StateEntry | None]] = []
        for number, rec in rest:
            where = f"state journal {self.journal_path}:{number}"
            if not isinstance(rec, dict) or not isinstance(rec.get("address"), str) or "entry" not in rec:
                raise StateError(f"{where}: expected {{\"address\": ..., \"entry\": ...}}")
            entry = None if rec["entry"] is None else entry_from_dict(rec["entry"], f"{where}: entry")
            if entry is not None and entry.address != rec["address"]:
                raise StateError(f"{where}: address {shorten(rec['address'])} does not match its entry")
            changes.append((rec["address"], entry))
        return _Journal(lineage=header["lineage"], serial=header["serial"], changes=changes)

    def _fold(self, state: State, base: State | None, journal: _Journal) -> bool:
        """Apply a leftover journal to `state`; False when it holds nothing new."""
        if not journal.changes:
            return False
        if base is None:
            state.lineage = journal.lineage  # the crash came before the first state write
        elif journal.lineage != base.lineage:
            raise StateError(
                f"state journal {self.journal_path} belongs to state lineage {journal.lineage}, "
                f"but {self.path} has lineage {base.lineage}; move the journal away if it is not "
                "from this state"
            )
        base_serial = base.serial if base is not None else 0
        if journal.serial < base_serial:
            # Written before the last commit, which already holds it (crash before deletion).
            # Also what an unlocked reader sees if a commit lands between its two reads.
            return False
        if journal.serial > base_serial:
            raise StateError(
                f"state journal {self.journal_path} extends serial {journal.serial}, but {self.path} "
                f"is at serial {base_serial} (was the state file replaced?). Move one of them away"
            )
        for address, entry in journal.changes:
            apply_change(state, address, entry)
        return True

    # --- writing -------------------------------------------------------------------------

    def record(self, entry: StateEntry | None, address: str) -> None:
        """Make one change durable before returning (journal append + fsync); None removes
        `address`. Records from several threads share fsyncs (group commit): each waits until
        a sync that began after its append has finished, so none returns before it is durable."""
        self._require_lock("record")
        if entry is not None and entry.address != address:
            raise ValueError(f"entry address {entry.address!r} does not match {address!r}")
        if entry is not None:
            entry = copy_entry(entry)  # later edits by the caller don't leak in
        line = json.dumps(
            {"address": address, "entry": entry_to_dict(entry) if entry is not None else None},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        ).encode() + b"\n"
        with self._mutex:
            if self._state is None:
                raise RuntimeError("StateStore.record() before load()")
            if self._journal_broken:
                raise StateError(f"state journal {self.journal_path} is unusable after a write error "
                                 f"({self._journal_broken}); stop and run again to pick up from it")
            try:
                fd = self._open_journal()
                write_all(fd, line)
            except OSError as exc:
                self._undo_partial_append()
                raise StateError(
                    f"cannot write state journal {self.journal_path}: {exc.strerror or exc}"
                ) from exc
            self._journal_size += len(line)
            self._sync_through(self._journal_size, self._cuts)
            apply_change(self._state, address, entry)

    def _sync_through(self, end: int, cuts: int) -> None:
        """Return once the journal is durable up to `end` (called holding `_mutex`): one thread
        fsyncs for all that appended before it began, the others wait for it."""
        while self._synced_size < end:
            if self._cuts != cuts:
                raise StateError(f"cannot write state journal {self.journal_path}: a sync failed while this "
                                 "record waited for it")
            if self._journal_broken:
                raise StateError(f"state journal {self.journal_path} is unusable after a write error "
                                 f"({self._journal_broken}); stop and run again to pick up from it")
            if self._syncing:
                self._synced.wait()
                continue
            self._syncing, target, fd = True, self._journal_size, self._journal_fd
            self._mutex.release()
            try:
                os.fsync(fd)  # type: ignore[arg-type]
                failed = None
            except OSError as exc:
                failed = exc
            finally:
                self._mutex.acquire()
                self._syncing = False
                self._synced.notify_all()
            if failed is not None:
                # Not durable: cut back to what is, so a later record does not follow lines that
                # may vanish. Every record beyond that point fails (each caller is told).
                self._journal_size = self._synced_size
                self._cuts += 1
                self._undo_partial_append()
                raise StateError(f"cannot write state journal {self.journal_path}: "
                                 f"{failed.strerror or failed}") from failed
            self._synced_size = max(self._synced_size, target)

    def _undo_partial_append(self) -> None:
        # A half-written line followed by good ones would read as corruption: cut it off, or
        # if even that fails, refuse further records (a new journal would drop the old lines).
        if self._journal_fd is None:
            return
        try:
            os.ftruncate(self._journal_fd, self._journal_size)
        except OSError as exc:
            self._journal_broken = exc.strerror or str(exc)

    def _open_journal(self) -> int:
        if self._journal_fd is None:
            assert self._state is not None
            base_serial = self._base.serial if self._base is not None else 0
            header = json.dumps({"journal": JOURNAL_FORMAT, "lineage": self._state.lineage,
                                 "serial": base_serial}, sort_keys=True).encode() + b"\n"
            # Truncate: any earlier journal was folded by load(), so this one starts afresh.
            # Non-blocking: a FIFO put there would hang the open (load() refuses one anyway).
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NONBLOCK,
                         PRIVATE_MODE)
            try:
                mode = os.fstat(fd).st_mode
                if not stat.S_ISREG(mode):
                    raise OSError(f"not a regular file: it is {kind_of_file(mode)}")
                write_all(fd, header)
                os.fsync(fd)
                fsync_dir(self.journal_path.parent)
            except BaseException:
                os.close(fd)
                raise
            self._journal_fd = fd
            self._journal_size = self._synced_size = len(header)
        return self._journal_fd

    def _close_journal(self) -> None:
        self._journal_broken = None
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None

    def commit(self) -> State:
        """Fold the journal into the state file (only if entries changed) and delete it."""
        self._require_lock("commit")
        with self._mutex:
            if self._state is None:
                raise RuntimeError("StateStore.commit() before load()")
            with self._write_errors():
                self._write_if_changed(self._state, force_new_file=False)
                self._drop_journal()
            return self._state

    def save(self, state: State) -> None:
        """Write a whole state (import, state rm): same atomic rules; replaces any journal."""
        self._require_lock("save")
        with self._mutex:
            base = self._base if self._state is not None else self._read_state_file()
            if base is not None and state.lineage != base.lineage:
                raise StateError(
                    f"refusing to overwrite {self.path} (lineage {base.lineage}) with a state of "
                    f"lineage {state.lineage}"
                )
            self._base = base
            with self._write_errors():
                self._write_if_changed(state, force_new_file=True)
                self._drop_journal()
            self._state = state

    @contextlib.contextmanager
    def _write_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            kept = f"; the actions recorded so far are kept in {self.journal_path}" \
                if self.journal_path.exists() else ""
            raise StateError(
                f"cannot write state file {self.path}: {exc.strerror or exc}. Its previous content "
                f"is unchanged{kept}"
            ) from exc

    def _write_if_changed(self, state: State, force_new_file: bool) -> None:
        base = self._base
        if base is not None and base.entries == state.entries:
            state.serial = base.serial
            return
        if base is None and not state.entries and not force_new_file:
            return
        state.version = STATE_VERSION
        state.serial = (base.serial if base is not None else state.serial) + 1
        self._write_state_file(state)
        self._base = _copy_state(state)

    def _write_state_file(self, state: State) -> None:
        data = state_to_json(state).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._backup()
        atomic_write(self.path, data)

    def _check_backup_path(self) -> None:
        try:
            mode = os.stat(self.backup_path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            # Named here: the error would otherwise blame the state file.
            raise StateError(f"cannot write state backup {self.backup_path}: it is {kind_of_file(mode)}, not a "
                             f"regular file; move it away. {self.path} is unchanged")

    def _backup(self) -> None:
        self._check_backup_path()
        # A hard link to the current file is an O(1) backup that rename() then keeps alive.
        with contextlib.suppress(OSError):
            if os.path.samefile(self.path, self.backup_path):
                return  # a crash after the last backup and before the write: already done
        tmp = self.backup_path.with_name(f".{self.backup_path.name}.{uuid.uuid4().hex}.tmp")
        try:
            os.link(self.path, tmp)
            os.chmod(tmp, PRIVATE_MODE)
            os.replace(tmp, self.backup_path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            try:
                atomic_write(self.backup_path, read_regular(self.path))
            except OSError as exc:
                raise StateError(f"cannot write state backup {self.backup_path}: {exc.strerror or exc}. "
                                 f"{self.path} is unchanged") from exc

    def _drop_journal(self) -> None:
        self._close_journal()
        try:
            os.unlink(self.journal_path)
        except FileNotFoundError:
            return
        fsync_dir(self.journal_path.parent)
