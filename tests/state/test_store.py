"""The state file on disk: locking between processes, journal, atomic commit, backup."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import reconciler
from reconciler.errors import StateError
from reconciler.state.lock import LockInfo, force_unlock, lock_holder_alive, read_lock
from reconciler.state.model import State, StateEntry, state_from_json
from reconciler.state.store import StateStore

# A separate process that takes the lock, prints its ID, then either dies without releasing
# it ("die": a crashed apply) or holds it until its stdin is closed ("hold").
HOLDER = r"""
import os, sys
from reconciler.state.model import StateEntry
from reconciler.state.store import StateStore
path, operation, mode = sys.argv[1:4]
store = StateStore(path)
cm = store.lock(operation)
info = cm.__enter__()
if mode == "crash-after-records":
    store.load()
    for i in range(5):
        e = StateEntry(key=f"k{i}", project="p", location="l", job_name=f"job-{i}")
        store.record(e, e.address)
print(info.id, flush=True)
if mode != "hold":
    os._exit(0)  # no unlock, no commit: like a crash or kill -9
sys.stdin.read()
cm.__exit__(None, None, None)
"""


def _entry(i: int, **kw: object) -> StateEntry:
    return StateEntry(key=f"k{i}", project="p", location="l", job_name=f"projects/1/locations/l/tuningJobs/{i}",
                      **kw)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "default.json"


class Holder:
    def __init__(self, path: Path, mode: str, operation: str = "apply") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), operation, mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.lock_id = self.proc.stdout.readline().strip()
        assert self.lock_id, "holder did not take the lock"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0


@pytest.fixture
def holder(path: Path) -> Iterator[Holder]:
    h = Holder(path, "hold")
    yield h
    if h.proc.poll() is None:
        h.release()


def _write_state(path: Path, n: int) -> State:
    store = StateStore(path)
    with store.lock("test"):
        store.load()
        for i in range(n):
            store.record(_entry(i), _entry(i).address)
        return store.commit()


# --- load / commit / save ---------------------------------------------------------------

def test_missing_file_gives_fresh_state_without_writing(path: Path) -> None:
    store = StateStore(path)
    state = store.load()
    assert state.serial == 0 and state.entries == {}
    assert not path.exists()
    with store.lock("plan"):
        store.load()
        assert store.commit().serial == 0  # nothing changed: nothing written
    assert not path.exists()
    assert sorted(os.listdir(path.parent)) == []


def test_commit_writes_0600_bumps_serial_and_keeps_backup(path: Path) -> None:
    store = StateStore(path)
    with store.lock("apply"):
        state = store.load()
        store.record(_entry(1), "p/l/k1")
        assert store.journal_path.exists()
        committed = store.commit()
        assert committed is state and state.serial == 1
        assert not store.journal_path.exists()
        assert not store.backup_path.exists()  # no earlier version to keep
        first = path.read_bytes()

        store.record(_entry(2), "p/l/k2")
        store.commit()
        assert state.serial == 2
        assert store.backup_path.read_bytes() == first  # the previous version, exactly
    for p in (path, store.backup_path):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    on_disk = state_from_json(path.read_text(), "x")
    assert on_disk.serial == 2 and set(on_disk.entries) == {"p/l/k1", "p/l/k2"}
    assert on_disk.lineage == state.lineage
    assert sorted(os.listdir(path.parent)) == ["default.json", "default.json.backup"]


def test_serial_only_bumped_on_real_change(path: Path) -> None:
    _write_state(path, 3)
    before, inode = path.read_bytes(), path.stat().st_ino
    store = StateStore(path)
    with store.lock("apply"):
        state = store.load()
        store.record(_entry(1), "p/l/k1")  # same content as on disk
        store.record(None, "p/l/k9")  # removing what is not there
        assert store.commit().serial == 1
        assert path.read_bytes() == before and path.stat().st_ino == inode  # not rewritten
        assert not store.journal_path.exists()

        store.record(_entry(1, job_state="JOB_STATE_SUCCEEDED"), "p/l/k1")
        store.commit()
        assert state.serial == 2
        store.record(None, "p/l/k1")
        store.commit()
        assert state.serial == 3 and "p/l/k1" not in state.entries
    assert state_from_json(path.read_text(), "x").serial == 3


def test_record_copies_the_entry(path: Path) -> None:
    store = StateStore(path)
    with store.lock("apply"):
        state = store.load()
        e = _entry(1)
        store.record(e, e.address)
        e.history.append("changed after record")  # the caller's object is not the state's
        store.commit()
    assert state.entries["p/l/k1"].history == []
    assert StateStore(path).load().entries["p/l/k1"].history == []


def test_save_writes_whole_state_and_refuses_other_lineage(path: Path) -> None:
    _write_state(path, 2)
    store = StateStore(path)
    with store.lock("state rm"):
        state = store.load()
        del state.entries["p/l/k0"]
        store.save(state)
        assert state.serial == 2
        with pytest.raises(StateError, match="refusing to overwrite .* with a state of lineage"):
            store.save(State())
    assert set(StateStore(path).load().entries) == {"p/l/k1"}


def test_save_without_load_compares_with_disk(path: Path) -> None:
    _write_state(path, 1)
    on_disk = StateStore(path).load()
    store = StateStore(path)
    with store.lock("import"):
        store.save(on_disk)  # same entries: no new serial
        assert on_disk.serial == 1
        on_disk.entries["p/l/k5"] = _entry(5)
        store.save(on_disk)
        assert on_disk.serial == 2


def test_writes_need_the_lock_and_a_load(path: Path) -> None:
    store = StateStore(path)
    with pytest.raises(RuntimeError, match="needs the lock"):
        store.record(_entry(1), "p/l/k1")
    with pytest.raises(RuntimeError, match="needs the lock"):
        store.commit()
    with store.lock("apply"):
        with pytest.raises(RuntimeError, match="before load"):
            store.record(_entry(1), "p/l/k1")
        store.load()
        with pytest.raises(ValueError, match="does not match"):
            store.record(_entry(1), "p/l/other")
        with pytest.raises(RuntimeError, match="already locked"):
            with store.lock("again"):
                pass


def test_record_is_thread_safe(path: Path) -> None:
    store = StateStore(path)
    with store.lock("apply"):
        store.load()

        def work(t: int) -> None:
            for i in range(100):
                e = StateEntry(key=f"t{t}-{i}", project="p", location="l", job_name=f"j{t}-{i}")
                store.record(e, e.address)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lines = store.journal_path.read_text().splitlines()
        assert len(lines) == 1 + 800 and all(json.loads(line) for line in lines)  # none interleaved
        state = store.commit()
    assert len(state.entries) == 800 and state.serial == 1
    assert len(StateStore(path).load().entries) == 800


def test_unusable_directory_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(StateError, match=r"cannot create lock file .*not-a-dir/s\.json\.lock: "):
        with StateStore(tmp_path / "not-a-dir" / "s.json").lock("apply"):
            pass


def test_journal_write_failure_is_a_state_error(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(path)
    with store.lock("apply"):
        state = store.load()
        real_fsync = os.fsync

        def full_disk(fd: int) -> None:
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".journal"):
                raise OSError(28, "No space left on device")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", full_disk)
        with pytest.raises(StateError, match=r"cannot write state journal .*\.journal: No space left on device"):
            store.record(_entry(1), "p/l/k1")
        assert state.entries == {}  # not applied in memory either: it is not durable


def test_half_written_journal_line_is_cut_before_the_next_record(path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(path)
    with store.lock("apply"):
        store.load()
        store.record(_entry(0), "p/l/k0")  # journal open
        real_write = os.write

        def half_then_fail(fd: int, data: bytes) -> int:
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", half_then_fail)
        with pytest.raises(StateError, match="No space left on device"):
            store.record(_entry(1), "p/l/k1")
        monkeypatch.undo()
        store.record(_entry(2), "p/l/k2")
        assert store.journal_path.read_bytes().count(b"\n") == 3  # header + 2 whole lines
    assert set(StateStore(path).load().entries) == {"p/l/k0", "p/l/k2"}


def test_directory_created_and_unusual_name(tmp_path: Path) -> None:
    p = tmp_path / "deep" / "er" / "ws[1].json"
    store = StateStore(p)
    with store.lock("apply"):
        store.load()
        store.record(_entry(1), "p/l/k1")
        store.commit()
    assert p.exists()


# --- bad state files -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON at line 1 column 2"),
        (b"", "it is empty"),
        (b"\xff\xfe garbage", "not UTF-8 text"),
        (json.dumps({"version": 2, "lineage": "x", "serial": 1, "entries": {}}).encode(),
         "was written by a newer version"),
        (json.dumps({"version": 1, "lineage": "x", "serial": 1, "entries": {"a/b/c": 1}}).encode(),
         r'entries\["a/b/c"\]: expected an object'),
    ],
)
def test_bad_state_file_is_clear_error_and_never_overwritten(path: Path, content: bytes, message: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    store = StateStore(path)
    with pytest.raises(StateError, match=rf"state file {re.escape(str(path))}.*{message}.*left unchanged\. No backup"):
        store.load()
    with store.lock("apply"):
        with pytest.raises(StateError, match=message):
            store.load()
        with pytest.raises(RuntimeError):  # nothing loaded: nothing can be written
            store.commit()
    assert path.read_bytes() == content


def test_truncated_state_names_the_backup(path: Path) -> None:
    _write_state(path, 1)
    _write_state(path, 2)  # now a backup exists
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(StateError, match=rf"not valid JSON.*The previous version is in {re.escape(str(path))}\.backup"):
        StateStore(path).load()
    assert path.read_bytes() == whole[: len(whole) // 2]


# --- journal ---------------------------------------------------------------------------

def test_uncommitted_journal_is_folded_by_next_locked_load(path: Path) -> None:
    _write_state(path, 1)
    store = StateStore(path)
    with store.lock("apply"):
        store.load()
        for i in (5, 6, 7):
            store.record(_entry(i), _entry(i).address)
        store.record(None, "p/l/k0")
        # no commit: the process "crashes" here (the lock is released, the journal stays)
    before = path.read_bytes()

    reader = StateStore(path).load()  # unlocked: folded in memory only
    assert set(reader.entries) == {"p/l/k5", "p/l/k6", "p/l/k7"}
    assert path.read_bytes() == before and store.journal_path.exists()

    again = StateStore(path)
    with again.lock("apply"):
        state = again.load()
    assert set(state.entries) == {"p/l/k5", "p/l/k6", "p/l/k7"} and state.serial == 2
    assert not again.journal_path.exists()
    assert state_from_json(path.read_text(), "x") == state


def test_journal_of_crashed_process_and_first_ever_apply(path: Path) -> None:
    # A real process records 5 entries on a state that has never been written, then dies.
    dead = Holder(path, "crash-after-records")
    dead.proc.wait(timeout=10)
    assert not path.exists() and Path(f"{path}.journal").exists()
    force_unlock(path, dead.lock_id)
    store = StateStore(path)
    with store.lock("apply"):
        state = store.load()
    assert sorted(state.entries) == [f"p/l/k{i}" for i in range(5)]
    assert not Path(f"{path}.journal").exists()
    assert state_from_json(path.read_text(), "x").lineage == state.lineage and state.serial == 1


def test_torn_journal_tail_is_ignored(path: Path) -> None:
    _write_state(path, 1)
    store = StateStore(path)
    with store.lock("apply"):
        store.load()
        store.record(_entry(3), "p/l/k3")
        store.record(_entry(4), "p/l/k4")
    full = store.journal_path.read_bytes()
    last = full.rstrip(b"\n").rsplit(b"\n", 1)[1]
    for torn in (full[: len(full) - len(last) // 2], full + b'{"address":"p/l/k9","en', full + b"\0" * 512):
        store.journal_path.write_bytes(torn)
        state = StateStore(path).load()
        assert "p/l/k3" in state.entries and "p/l/k9" not in state.entries
    store.journal_path.write_bytes(full[: len(full) - len(last) // 2])
    with store.lock("apply"):
        state = store.load()
    assert set(state.entries) == {"p/l/k0", "p/l/k3"}  # k4's line was cut: it never returned
    assert state_from_json(path.read_text(), "x") == state


def test_corrupt_journal_line_in_the_middle_is_an_error(path: Path) -> None:
    _write_state(path, 1)
    store = StateStore(path)
    with store.lock("apply"):
        store.load()
        store.record(_entry(3), "p/l/k3")
        store.record(_entry(4), "p/l/k4")
    lines = store.journal_path.read_bytes().split(b"\n")
    lines[1] = b"garbage"
    store.journal_path.write_bytes(b"\n".join(lines))
    before = path.read_bytes()
    with store.lock("apply"), pytest.raises(StateError, match=r"default\.json\.journal:2: corrupt line"):
        store.load()
    assert path.read_bytes() == before


def test_journal_from_another_lineage_is_an_error(path: Path) -> None:
    _write_state(path, 1)
    store = StateStore(path)
    with store.lock("apply"):
        store.load()
        store.record(_entry(3), "p/l/k3")
    journal = store.journal_path.read_text()
    path.unlink()
    store.journal_path.unlink()
    _write_state(path, 1)  # a different state (new lineage) at the same path
    store.journal_path.write_text(journal)
    with pytest.raises(StateError, match="belongs to state lineage"):
        StateStore(path).load()


def test_journal_already_folded_is_dropped(path: Path) -> None:
    # Crash after the state file was replaced but before the journal was deleted.
    _write_state(path, 1)
    store = StateStore(path)
    with store.lock("apply"):
        store.load()
        store.record(_entry(3), "p/l/k3")
        leftover = store.journal_path.read_bytes()
        store.commit()
        store.record(None, "p/l/k3")  # a later change the old journal must not undo
        store.commit()
    store.journal_path.write_bytes(leftover)
    before = path.read_bytes()
    with store.lock("apply"):
        state = store.load()
    assert "p/l/k3" not in state.entries and state.serial == 3
    assert path.read_bytes() == before and not store.journal_path.exists()


@pytest.mark.slow
def test_ten_thousand_records_stay_linear(path: Path) -> None:
    """Each record appends one line; nothing grows with the number of entries before it."""
    _write_state(path, 1)
    before = path.stat()
    store = StateStore(path)
    sizes: dict[int, int] = {}
    with store.lock("apply"):
        store.load()
        t0 = time.perf_counter()
        for i in range(10_000):
            e = StateEntry(key=f"job-{i:05d}", project="p", location="l",
                           job_name=f"projects/1/locations/l/tuningJobs/{i:05d}", job_state="JOB_STATE_QUEUED")
            store.record(e, e.address)
            if i + 1 in (1_000, 10_000):
                sizes[i + 1] = store.journal_path.stat().st_size
        elapsed = time.perf_counter() - t0
        after = path.stat()  # the state file was not rewritten per record
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
        t1 = time.perf_counter()
        state = store.commit()
        commit_s = time.perf_counter() - t1
    header = len(json.dumps({"journal": 1, "lineage": state.lineage, "serial": 1}, sort_keys=True)) + 1
    per_first = (sizes[1_000] - header) / 1_000
    per_rest = (sizes[10_000] - sizes[1_000]) / 9_000
    print(f"\n10,000 record(): {elapsed:.2f}s ({elapsed / 10_000 * 1e6:.0f} us each), "
          f"{per_first:.0f} vs {per_rest:.0f} bytes/record, commit {commit_s:.2f}s, "
          f"state {path.stat().st_size} bytes")
    assert abs(per_rest - per_first) / per_first < 0.05
    assert len(state.entries) == 10_001 and state.serial == 2


# --- atomicity -------------------------------------------------------------------------

def _leftovers(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_injected_failure_mid_commit_keeps_old_content(path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       failing: str) -> None:
    _write_state(path, 2)
    before = path.read_bytes()
    store = StateStore(path)
    with store.lock("apply"):
        store.load()
        store.record(_entry(7), "p/l/k7")
        real_replace, real_fsync = os.replace, os.fsync

        def bad_replace(src: str, dst: str) -> None:
            if Path(dst) == path:
                raise OSError(28, "No space left on device")
            real_replace(src, dst)

        def bad_fsync(fd: int) -> None:
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
            if name.startswith(".default.json.") and name.endswith(".tmp"):  # the new state's temp file
                raise OSError(5, "Input/output error")
            real_fsync(fd)

        if failing == "replace":
            monkeypatch.setattr(os, "replace", bad_replace)
        else:
            monkeypatch.setattr(os, "fsync", bad_fsync)
        with pytest.raises(StateError, match=rf"cannot write state file .*: {'No space left on device' if failing == 'replace' else 'Input/output error'}\. Its previous content is unchanged; the actions recorded so far are kept in .*journal"):
            store.commit()
        monkeypatch.undo()
        assert path.read_bytes() == before  # the old content, whole
        assert _leftovers(path.parent) == []  # temp file removed
        assert store.journal_path.exists()  # the durable record is still there
    with store.lock("apply"):
        state = store.load()  # and the next run folds it in
    assert "p/l/k7" in state.entries and state.serial == 2


WRITER = r"""
import os, signal, sys
from reconciler.state.model import StateEntry
from reconciler.state.store import StateStore
path, start, crash_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

# crash_at > 0: die by SIGKILL at that many file-system steps from now (write, fsync,
# link, replace, unlink), after writing only half of the bytes if the step is a write.
calls = 0
def crashing(name):
    real = getattr(os, name)
    def step(*args):
        global calls
        calls += 1
        if calls == crash_at:
            if name == "write":
                real(args[0], bytes(args[1])[: len(args[1]) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)
    setattr(os, name, step)

store = StateStore(path)
with store.lock("apply"):
    store.load()
    print("ready", flush=True)
    if crash_at:
        for name in ("write", "fsync", "link", "replace", "unlink"):
            crashing(name)
    i = start
    while True:
        e = StateEntry(key=f"w{i}", project="p", location="l", job_name="j" * 200)
        store.record(e, e.address)
        print(i, flush=True)   # record() returned: this one must survive any crash
        store.commit()
        i += 1
"""


@pytest.mark.slow
def test_kill_mid_commit_never_tears_or_loses(path: Path) -> None:
    """SIGKILL a writer at seeded moments: the file always parses and nothing durable is lost.

    Trials 0-3 kill after a random delay; the others kill at a random file-system step of
    record()/commit() (half-done writes included), so every step boundary gets hit.
    """
    n0 = 500
    _write_state(path, n0)
    offset = 1 - n0  # invariant: each commit adds one entry and one serial
    durable: set[str] = set()
    start = 0
    torn = 0
    for seed in range(16):
        rng = random.Random(seed)
        crash_at = 0 if seed < 4 else rng.randint(1, 40)
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(start), str(crash_at)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        if not crash_at:
            time.sleep(rng.uniform(0.05, 0.3))
            proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        done = [int(x) for x in out.split()]
        durable |= {f"p/l/w{i}" for i in done}
        start = max(done, default=start) + 1
        journal = Path(f"{path}.journal")
        torn += bool(_leftovers(path.parent)) or (journal.exists() and not journal.read_bytes().endswith(b"\n"))

        for p in (path, Path(f"{path}.backup")):
            raw = state_from_json(p.read_text(), str(p))  # never torn
            assert raw.serial - len(raw.entries) == offset
        lock = read_lock(path)
        assert lock is not None and lock_holder_alive(lock) is False
        force_unlock(path, lock.id)
        store = StateStore(path)
        with store.lock("check"):
            state = store.load()
        assert durable <= set(state.entries)
        assert state.serial - len(state.entries) == offset
        assert _leftovers(path.parent) == [], (seed, crash_at, os.listdir(path.parent))
    assert len(durable) > 16
    print(f"\n16 kills, {len(durable)} durable records, {torn} left a torn temp file or journal line")


# --- locking ---------------------------------------------------------------------------

def test_lock_file_records_holder(path: Path) -> None:
    store = StateStore(path)
    with store.lock("plan") as info:
        assert stat.S_IMODE(store.lock_path.stat().st_mode) == 0o600
        data = json.loads(store.lock_path.read_text())
        assert data == {"id": info.id, "pid": os.getpid(), "host": socket.gethostname(),
                        "operation": "plan", "created": info.created, "user": info.user,
                        "version": reconciler.__version__}
        assert read_lock(path) == info
        assert info.created.endswith("Z") and 0 <= (info.age_seconds() or 0) < 5
    assert not store.lock_path.exists()
    assert read_lock(path) is None


def test_second_process_fails_at_once_naming_holder(path: Path, holder: Holder) -> None:
    with pytest.raises(StateError) as err:  # at once: no --lock-timeout, no wait
        with StateStore(path).lock("plan"):
            pass
    msg = str(err.value)
    assert f"state file {path} is locked by another reconciler" in msg
    assert f"lock ID {holder.lock_id}, pid {holder.proc.pid} on host {socket.gethostname()}" in msg
    assert 'operation "apply"' in msg and "--lock-timeout" in msg
    assert f"reconciler force-unlock {holder.lock_id} --state {path}" in msg


@pytest.mark.slow
def test_lock_timeout_expires_then_succeeds_after_release(path: Path, holder: Holder) -> None:
    t0 = time.monotonic()
    with pytest.raises(StateError, match=r"timed out after 0\.5s waiting for the state lock"):
        with StateStore(path).lock("plan", timeout=0.5):
            pass
    assert time.monotonic() - t0 >= 0.5
    threading.Timer(0.4, holder.release).start()
    t0 = time.monotonic()
    with StateStore(path).lock("plan", timeout=10) as info:
        waited = time.monotonic() - t0
        assert read_lock(path) == info
    assert 0.3 < waited < 10  # after the release, not at the timeout


@pytest.mark.slow
def test_stale_lock_of_dead_process_and_force_unlock(path: Path) -> None:
    dead = Holder(path, "die")
    dead.proc.wait(timeout=10)
    time.sleep(1.1)  # so the age is visible
    with pytest.raises(StateError) as err:
        with StateStore(path).lock("apply"):
            pass
    msg = str(err.value)
    assert "locked by a process that is no longer running" in msg
    assert f"pid {dead.proc.pid}" in msg and re.search(r"\(\d+s ago\)", msg)
    assert f"remove the stale lock with: reconciler force-unlock {dead.lock_id}" in msg

    with pytest.raises(StateError, match=f"does not match the lock .*lock ID {dead.lock_id}"):
        force_unlock(path, "not-the-id")
    assert read_lock(path) is not None
    force_unlock(path, dead.lock_id)
    assert read_lock(path) is None
    with pytest.raises(StateError, match="is not locked"):
        force_unlock(path, dead.lock_id)
    with StateStore(path).lock("apply"):
        pass


def test_release_does_not_remove_someone_elses_lock(path: Path) -> None:
    a_cm = StateStore(path).lock("apply")
    a_info = a_cm.__enter__()
    force_unlock(path, a_info.id)  # someone decided `a` was stuck...
    b_cm = StateStore(path).lock("apply")
    b_info = b_cm.__enter__()  # ...and another run took the lock
    a_cm.__exit__(None, None, None)
    assert read_lock(path) == b_info  # a's exit left b's lock alone
    b_cm.__exit__(None, None, None)
    assert read_lock(path) is None


def test_corrupt_lock_file_is_reported(path: Path) -> None:
    path.parent.mkdir(parents=True)
    Path(f"{path}.lock").write_text("{oops")
    with pytest.raises(StateError, match="not a valid lock record; if no reconciler is running, delete it"):
        with StateStore(path).lock("apply"):
            pass


def test_lock_info_age() -> None:
    info = LockInfo(id="x", pid=1, host="h", operation="o", created="2026-01-01T00:00:00Z")
    import datetime as dt

    now = dt.datetime(2026, 1, 1, 0, 2, 5, tzinfo=dt.timezone.utc)
    assert info.age_seconds(now) == 125
    assert LockInfo(id="x", pid=1, host="h", operation="o", created="junk").age_seconds() is None
    assert lock_holder_alive(LockInfo(id="x", pid=1, host="elsewhere.invalid", operation="o", created="")) is None



def test_concurrent_records_share_fsyncs_and_each_is_durable_when_it_returns(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: 16 threads recording at once need fewer fsyncs than records, and a record
    returns only after an fsync that began after its line was written."""
    import threading

    store = StateStore(path)
    fsyncs: list[int] = []  # journal size at each fsync's start
    real_fsync = os.fsync
    gate = threading.Event()

    def slow_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".journal"):
            fsyncs.append(os.fstat(fd).st_size)
            gate.wait(5)  # the first sync holds everyone else back: they pile up behind it
        real_fsync(fd)

    with store.lock("apply"):
        store.load()
        store.record(_entry(0), "p/l/k0")  # opens the journal
        monkeypatch.setattr(os, "fsync", slow_fsync)
        returned: dict[int, int] = {}

        def work(i: int) -> None:
            store.record(_entry(i), f"p/l/k{i}")
            returned[i] = max(fsyncs)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 17)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(fsyncs) < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        gate.set()
        for thread in threads:
            thread.join(10)
        monkeypatch.undo()
        lines = store.journal_path.read_bytes().split(b"\n")
        offsets = {json.loads(line)["address"]: sum(len(x) + 1 for x in lines[:n + 1])
                   for n, line in enumerate(lines) if line and b'"address"' in line}
        assert len(returned) == 16
        assert len(fsyncs) < 16  # shared
        for i, synced in returned.items():
            assert synced >= offsets[f"p/l/k{i}"]  # its own line was in the file when that sync began
    assert len(StateStore(path).load().entries) == 17
