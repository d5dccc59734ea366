"""One contract, both backends (Terraform's statemgr TestFull idea): the local file store and
Cloud Storage (fake-gcs-server on 127.0.0.1) must behave the same through `StateBackend`:
load, lock, write, reload, lineage, serial, previous version, corrupt state, newer version,
a run killed with changes recorded, force-unlock, delete."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from reconciler.errors import StateError
from reconciler.state.backend import StateBackend, open_backend
from reconciler.state.model import State, StateEntry, state_to_json

# A separate process that takes the lock, records `n` changes and dies without unlocking or
# committing (a kill -9 in the middle of an apply); it prints the lock ID first.
CRASHER = r"""
import os, sys
from reconciler.state.backend import open_backend
from reconciler.state.model import StateEntry
location, n = sys.argv[1], int(sys.argv[2])
store = open_backend(location)
cm = store.lock("apply")
info = cm.__enter__()
store.load()
for i in range(n):
    e = StateEntry(key=f"crash-{i}", project="p", location="l", request_id=f"req-{i}")
    store.record(e, e.address)   # a new request id: durable when record() returns
print(info.id, flush=True)
os._exit(0)
"""


def entry(i: int, **kw: object) -> StateEntry:
    return StateEntry(key=f"k{i}", project="p", location="l",
                      job_name=f"projects/1/locations/l/tuningJobs/{i}", **kw)  # type: ignore[arg-type]


@dataclass
class Place:
    """Where one backend keeps a state, and a way to reach behind its back."""

    kind: str
    location: str
    put_raw: Callable[[bytes], None]  # replace the stored bytes
    raw: Callable[[], bytes | None]

    def open(self) -> StateBackend:
        return open_backend(self.location)


@pytest.fixture(params=["local", "gcs"])
def place(request, tmp_path, monkeypatch) -> Place:
    monkeypatch.chdir(tmp_path)  # recovery files land here
    if request.param == "local":
        path = tmp_path / "state" / "default.json"

        def put(data: bytes) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return Place("local", str(path), put, lambda: path.read_bytes() if path.exists() else None)
    gcs = request.getfixturevalue("gcs")
    name = "team/default.json"
    bucket = gcs.bucket()

    def put_gcs(data: bytes) -> None:
        bucket.blob(name).upload_from_string(data, content_type="application/json")

    def raw_gcs() -> bytes | None:
        blob = bucket.get_blob(name)
        return blob.download_as_bytes(raw_download=True) if blob is not None else None

    return Place("gcs", gcs.url(name), put_gcs, raw_gcs)


def write(store: StateBackend, *entries: StateEntry) -> State:
    with store.lock("test"):
        store.load()
        for e in entries:
            store.record(e, e.address)
        return store.commit()


def test_a_missing_state_loads_empty_and_is_created_by_the_first_write(place):
    store = place.open()
    state = store.load()
    assert state.entries == {} and state.serial == 0 and not store.exists()
    with store.lock("test"):
        store.load()
        store.commit()  # nothing recorded: nothing written
    assert not place.open().exists() and place.raw() is None
    committed = write(place.open(), entry(1))
    assert committed.serial == 1
    fresh = place.open()
    assert fresh.load().entries == {entry(1).address: entry(1)} and fresh.exists()


def test_writes_reload_in_a_new_store_with_lineage_fixed_and_serial_rising(place):
    first = write(place.open(), entry(1), entry(2))
    second = write(place.open(), entry(3))
    assert (first.serial, second.serial) == (1, 2)
    again = place.open().load()
    assert again.lineage == first.lineage and again.serial == 2
    assert sorted(again.entries) == sorted(entry(i).address for i in (1, 2, 3))
    unchanged = write(place.open(), entry(3))  # the same entry again: no new serial
    assert unchanged.serial == 2
    removed = write(place.open())
    assert removed.serial == 2
    store = place.open()
    with store.lock("test"):
        store.load()
        store.record(None, entry(1).address)
        assert store.commit().serial == 3
    assert entry(1).address not in place.open().load().entries


def test_the_lock_is_exclusive_names_its_holder_and_waits_with_a_timeout(place):
    holder = place.open()
    with holder.lock("apply") as info:
        with pytest.raises(StateError) as refused:
            with place.open().lock("plan"):
                pass
        assert info.id in str(refused.value) and 'operation "apply"' in str(refused.value)
        assert "force-unlock" in str(refused.value)
        assert place.open().current_lock() == info
    # Released: a waiter with a timeout gets it once the holder lets go.
    got = threading.Event()
    second = place.open()

    def wait_for_it() -> None:
        with second.lock("plan", timeout=20):
            got.set()

    with holder.lock("apply"):
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        assert not got.wait(0.3)  # still held
    waiter.join(30)
    assert got.is_set() and place.open().current_lock() is None


def test_record_and_snapshot_need_a_load_and_snapshots_are_copies(place):
    store = place.open()
    with store.lock("test"):
        with pytest.raises(RuntimeError):
            store.record(entry(1), entry(1).address)
        store.load()
        store.record(entry(1), entry(1).address)
        snap = store.snapshot()
        snap.entries.clear()
        assert entry(1).address in store.snapshot().entries
        store.commit()
    with pytest.raises(RuntimeError):
        store.record(entry(2), entry(2).address)  # not locked


def test_save_refuses_another_lineage_and_writes_the_next_serial(place):
    write(place.open(), entry(1))
    store = place.open()
    with store.lock("state rm"):
        state = store.load()
        with pytest.raises(StateError, match="lineage"):
            store.save(State(entries={}))
        del state.entries[entry(1).address]
        store.save(state)
        assert state.serial == 2
    assert place.open().load().entries == {}


def test_overwrite_writes_exactly_the_state_given(place):
    write(place.open(), entry(1))
    other = State(lineage="11111111-2222-3333-4444-555555555555", serial=7, entries={entry(9).address: entry(9)})
    store = place.open()
    with store.lock("state push"):
        store.load()
        store.overwrite(other)
    back = place.open().load()
    assert (back.lineage, back.serial, back.entries) == (other.lineage, 7, other.entries)


def test_the_previous_version_is_kept(place):
    write(place.open(), entry(1))
    write(place.open(), entry(2))
    previous = place.open().previous()
    assert previous is not None and previous.serial == 1 and sorted(previous.entries) == [entry(1).address]


@pytest.mark.parametrize("damage", ["truncated", "binary", "wrong-type", "gzip-garbage"])
def test_a_corrupt_state_is_refused_and_left_unchanged(place, damage):
    write(place.open(), entry(1), entry(2))
    good = json.loads(state_to_json(place.open().load()))
    text = json.dumps(good)
    data = {"truncated": text[: len(text) // 2].encode(), "binary": b"\x00\xff\xfe garbage",
            "wrong-type": json.dumps({**good, "serial": "seven"}).encode(),
            "gzip-garbage": b"\x1f\x8b\x08\x00 not really gzip"}[damage]
    place.put_raw(data)
    before = place.raw()
    for attempt in (lambda s: s.load(), lambda s: write(s, entry(3))):
        with pytest.raises(StateError) as refused:
            attempt(place.open())
        assert place.location in str(refused.value)
    assert place.raw() == before
    assert place.open().current_lock() is None  # the refused write let go of its lock


def test_a_state_from_a_newer_version_is_refused(place):
    write(place.open(), entry(1))
    newer = json.loads(state_to_json(place.open().load()))
    newer["version"] = 99
    place.put_raw(json.dumps(newer).encode())
    with pytest.raises(StateError, match="newer version of tuning-reconciler"):
        place.open().load()


def test_a_state_file_put_there_by_hand_is_read(place):
    state = State(entries={entry(5).address: entry(5)})
    text = state_to_json(state).encode()
    # gzip as `gcloud storage cp -Z` stores it is a Cloud Storage form only (a local file is text)
    for data in (text, gzip.compress(text)) if place.kind == "gcs" else (text,):
        place.put_raw(data)
        assert place.open().load().entries == state.entries


def test_changes_of_a_killed_run_are_folded_in_by_the_next_locked_load(place):
    write(place.open(), entry(1))
    proc = subprocess.run([sys.executable, "-c", CRASHER, place.location, "6"], capture_output=True,
                          text=True, timeout=60)
    lock_id = proc.stdout.strip()
    assert lock_id, proc.stderr
    store = place.open()
    unlocked = store.load()  # a read-only view already sees the recorded changes
    assert {f"p/l/crash-{i}" for i in range(6)} <= set(unlocked.entries)
    with pytest.raises(StateError, match=lock_id):
        with store.lock("plan"):
            pass
    with pytest.raises(StateError, match="does not match"):
        store.force_unlock("12345")
    store.force_unlock(lock_id)
    with store.lock("plan"):
        state = store.load()
        assert {f"p/l/crash-{i}" for i in range(6)} <= set(state.entries)
        assert state.entries["p/l/crash-3"].request_id == "req-3"
        assert state.serial == 2  # folded and written by the load
    fresh = place.open().load()
    assert fresh.serial == 2 and len(fresh.entries) == 7


def test_delete_removes_the_state(place):
    write(place.open(), entry(1))
    store = place.open()
    with store.lock("workspace delete"):
        store.load()
        store.delete()
    assert not place.open().exists() and place.open().load().entries == {}
    assert place.open().current_lock() is None
