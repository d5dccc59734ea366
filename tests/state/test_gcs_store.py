"""The Cloud Storage backend against fake-gcs-server (v1.54) on 127.0.0.1, with a recording
proxy where a test must see which requests were sent: object format, compare-and-swap writes,
the lock's generation, refused writes and recovery files, the fence after force-unlock, lost
answers, group commit, size.

Where 1.54 ignores a precondition (deletes), the test checks the request the server got
instead and says so; what real Cloud Storage then does is its documented behaviour, not
something exercised here."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.state import gcs_client
from reconciler.state.backend import open_backend
from reconciler.state.gcs import GcsStateStore
from reconciler.state.gcs_journal import FENCE_KEY, JOURNAL_INFIX
from reconciler.state.model import State, StateEntry, state_from_json
from reconciler.state.url import parse_gcs

NAME = "team/default.json"


def entry(i: int, **kw: object) -> StateEntry:
    return StateEntry(key=f"k{i}", project="p", location="l", **kw)  # type: ignore[arg-type]


def job(i: int) -> str:
    return f"projects/1/locations/l/tuningJobs/{i}"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # recovery files land here


def store_for(gcs) -> GcsStateStore:
    store = open_backend(gcs.url(NAME))
    assert isinstance(store, GcsStateStore)
    return store


def commit_entries(gcs, *entries: StateEntry) -> State:
    store = store_for(gcs)
    with store.lock("test"):
        store.load()
        for e in entries:
            store.record(e, e.address)
        return store.commit()


def uploads_of(proxy, name: str) -> list:
    return [r for r in proxy.requests if r.method == "POST" and "/upload/" in r.path and r.names(name)]


def test_the_state_object_is_gzipped_json_that_any_client_reads(gcs):
    written = commit_entries(gcs, entry(1, job_name=job(1)))
    blob = gcs.bucket().get_blob(NAME)
    assert blob.content_type == "application/json" and blob.content_encoding == "gzip"
    assert blob.metadata["reconciler-lineage"] == written.lineage and blob.metadata["reconciler-serial"] == "1"
    raw = blob.download_as_bytes(raw_download=True)
    assert raw[:2] == b"\x1f\x8b"
    assert state_from_json(gzip.decompress(raw).decode(), NAME).entries == written.entries
    # What `gcloud storage cat` gets: the server (or the client) decompresses Content-Encoding: gzip.
    assert json.loads(gcs.bucket().blob(NAME).download_as_bytes())["serial"] == 1


def test_every_write_carries_a_generation_precondition(gcs, gcs_proxy):
    commit_entries(gcs, entry(1, request_id="r1"), entry(1, request_id="r1", job_name=job(1)))
    first = gcs.bucket().get_blob(NAME).generation
    commit_entries(gcs, entry(2, job_name=job(2)))
    state_writes = uploads_of(gcs_proxy, NAME)
    assert [w.path.split("ifGenerationMatch=")[1].split("&")[0] for w in state_writes] == ["0", str(first)]
    journal_writes = [r for r in gcs_proxy.requests if r.method == "POST" and JOURNAL_INFIX.encode() in r.body]
    assert journal_writes and all("ifGenerationMatch=0" in r.path for r in journal_writes)
    lock_writes = uploads_of(gcs_proxy, f"{NAME}.lock")
    assert len(lock_writes) == 2 and all("ifGenerationMatch=0" in r.path for r in lock_writes)


def test_the_lock_id_is_the_lock_objects_generation_and_unlock_names_it(gcs, gcs_proxy):
    """fake-gcs-server 1.54 ignores preconditions on deletes, so that an old holder cannot
    remove a newer lock is checked here by the request the server got (the delete names the
    lock's generation); real Cloud Storage answers such a delete with 412."""
    store = store_for(gcs)
    with store.lock("apply") as info:
        blob = gcs.bucket().get_blob(f"{NAME}.lock")
        assert info.id == str(blob.generation)
        assert blob.metadata["operation"] == "apply" and blob.metadata["pid"] == str(info.pid)
        content = json.loads(blob.download_as_bytes())
        assert content["operation"] == "apply" and content["host"] == info.host and content["version"]
    (delete,) = [r for r in gcs_proxy.requests if r.method == "DELETE" and r.names(f"{NAME}.lock")]
    assert f"ifGenerationMatch={info.id}" in delete.path
    assert gcs.bucket().get_blob(f"{NAME}.lock") is None


def test_a_write_over_a_state_changed_behind_our_back_is_refused_and_kept_locally(gcs, tmp_path):
    commit_entries(gcs, entry(1, job_name=job(1)))
    store = store_for(gcs)
    with store.lock("apply"):
        store.load()
        # Someone else writes the state meanwhile (say, after a force-unlock).
        intruder = State(lineage="00000000-0000-0000-0000-000000000000", serial=9)
        gcs.bucket().blob(NAME).upload_from_string(json.dumps({"version": 1, "lineage": intruder.lineage,
                                                               "serial": 9, "entries": {}}))
        store.record(entry(2, job_name=job(2)), entry(2).address)
        with pytest.raises(StateError) as refused:
            store.commit()
        message = str(refused.value)
        assert "written by someone else" in message and "refused" in message
        with pytest.raises(StateError, match="refused"):
            store.record(entry(3, job_name=job(3)), entry(3).address)  # stays refused
    recovery = Path(store.recovery_path)
    assert recovery.parent == tmp_path and str(recovery) in message
    saved = state_from_json(recovery.read_text(), str(recovery))
    assert sorted(saved.entries) == [entry(1).address, entry(2).address]  # nothing it did is lost
    assert saved.serial == 2  # the next version of the state it read
    assert json.loads(gcs.bucket().blob(NAME).download_as_bytes())["serial"] == 9  # nothing overwritten
    assert oct(recovery.stat().st_mode & 0o777) == "0o600"


def test_a_holder_whose_lock_was_force_removed_is_fenced_off_before_its_next_create(gcs):
    a, b = store_for(gcs), store_for(gcs)
    with a.lock("apply") as a_lock:
        a.load()
        a.record(entry(1, request_id="a-1"), entry(1).address)  # durable: its create may go out
        b.force_unlock(a_lock.id)
        with b.lock("apply"):
            seen = b.load()
            assert seen.entries[entry(1).address].request_id == "a-1"  # B knows A's pending create
            b.record(entry(7, job_name=job(7)), entry(7).address)
            b.commit()
        # A does not know; its next create announces its request id and is refused first.
        with pytest.raises(StateError, match="force-removed") as refused:
            a.record(entry(2, request_id="a-2"), entry(2).address)
        assert a.recovery_path and a.recovery_path in str(refused.value)
    saved = state_from_json(Path(a.recovery_path).read_text(), a.recovery_path)
    assert saved.entries[entry(2).address].request_id == "a-2"
    final = store_for(gcs).load()
    assert sorted(final.entries) == [entry(1).address, entry(7).address]


def test_a_lost_answer_to_a_create_only_write_is_told_from_a_conflict(gcs, gcs_proxy):
    """The proxy forwards the first write of the lock, of a journal batch and of the state
    object, then drops the answer: the client retries, gets 412, and the token in the
    object's metadata shows that the write was ours."""
    dropped: list[str] = []

    def drop(method: str, path: str, body: bytes) -> bool:
        for what, marker in (("lock", f'"name": "{NAME}.lock"'), ("journal", f'"name": "{NAME}{JOURNAL_INFIX}'),
                             ("state", f'"name": "{NAME}"')):
            if method == "POST" and marker.encode() in body and what not in dropped:
                dropped.append(what)
                return True
        return False

    gcs_proxy.faults.drop = drop
    written = commit_entries(gcs, entry(1, request_id="r"), entry(1, request_id="r", job_name=job(1)))
    assert sorted(dropped) == ["journal", "lock", "state"]
    assert written.serial == 1 and store_for(gcs).load().entries == written.entries
    assert any(r.status == 412 for r in gcs_proxy.requests)  # the retries did meet their own writes


def test_a_new_request_id_is_in_the_bucket_when_record_returns(gcs):
    store = store_for(gcs)
    with store.lock("apply"):
        store.load()
        store.record(entry(1, request_id="req-xyz"), entry(1).address)
        # Read straight from the bucket, as another machine would after this one dies now.
        other = store_for(gcs).load()
        assert other.entries[entry(1).address].request_id == "req-xyz"
        store.commit()


def test_concurrent_records_share_batches_and_the_state_object_is_written_rarely(gcs, gcs_proxy):
    store = store_for(gcs)
    with store.lock("apply"):
        store.load()

        def worker(w: int) -> None:
            for i in range(20):
                e = entry(w * 100 + i, request_id=f"r{w}-{i}")
                store.record(e, e.address)
                store.record(StateEntry(**{**e.__dict__, "job_name": job(w * 100 + i)}), e.address)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        state = store.commit()
    assert len(state.entries) == 320 and all(e.job_name for e in state.entries.values())
    journals = [r for r in gcs_proxy.requests if r.method == "POST" and JOURNAL_INFIX.encode() in r.body]
    state_writes = uploads_of(gcs_proxy, NAME)
    assert len(journals) < 640 / 4  # 640 records in far fewer writes
    assert 1 <= len(state_writes) <= 4  # compactions at most once a second, and the commit
    assert store_for(gcs).load().entries == state.entries
    leftover = [b.name for b in gcs.client().list_blobs(gcs.name, prefix=f"{NAME}{JOURNAL_INFIX}")]
    assert leftover == []  # folded journal objects are deleted


def test_a_killed_runs_journal_is_fenced_folded_and_then_deleted(gcs):
    store = store_for(gcs)
    cm = store.lock("apply")
    info = cm.__enter__()
    store.load()
    for i in range(3):
        store.record(entry(i, request_id=f"r{i}"), entry(i).address)
    # The process dies here: no commit, no unlock. Forget the store; its lock stays.
    store._stop_committer()
    next_run = store_for(gcs)
    next_run.force_unlock(info.id)
    with next_run.lock("plan"):
        state = next_run.load()
    assert sorted(state.entries) == [entry(i).address for i in range(3)] and state.serial == 1
    left = list(gcs.client().list_blobs(gcs.name, prefix=f"{NAME}{JOURNAL_INFIX}"))
    assert left and all(b.metadata.get(FENCE_KEY) == "1" for b in left)  # only fences stay (a week)
    with pytest.raises(StateError, match="force-removed"):  # were it alive, its next batch is refused
        store.record(entry(9, request_id="r9"), entry(9).address)
    cm.__exit__(None, None, None)


@pytest.mark.slow
def test_ten_thousand_jobs_round_trip_in_one_request_under_a_precondition(gcs, gcs_proxy):
    big = State(entries={})
    for i in range(10_000):
        e = StateEntry(key=f"tuning-job-{i:05d}", project="my-project", location="us-central1",
                       job_name=f"projects/123456789012/locations/us-central1/tuningJobs/{7000000000000000000 + i}",
                       spec_hash=f"{i:016x}", job_state="JOB_STATE_SUCCEEDED", update_time="2026-01-01T00:00:00.000Z",
                       request_id=f"{i:032x}", history=[f"projects/123456789012/locations/us-central1/tuningJobs/{i}"])
        big.entries[e.address] = e
    store = store_for(gcs)
    with store.lock("import"):
        store.load()
        store.save(big)
    blob = gcs.bucket().get_blob(NAME)
    assert blob.size < 8 * 1024 * 1024  # gzip keeps it a single multipart upload, which 1.54 checks
    (upload,) = uploads_of(gcs_proxy, NAME)
    assert "uploadType=multipart" in upload.path and "ifGenerationMatch=0" in upload.path
    # A writer holding the generation before this one is refused (the precondition holds at this size).
    stale = store_for(gcs)
    with stale.lock("state rm"):
        loaded = stale.load()
        assert loaded.entries == big.entries and loaded.serial == 1
        stale._generation = 1  # pretend it read an older generation
        with pytest.raises(StateError, match="written by someone else"):
            stale.save(State(lineage=loaded.lineage, serial=1))
    assert store_for(gcs).load().entries == big.entries


def test_storage_emulator_host_must_be_loopback_for_plain_http():
    assert gcs_client.emulator_endpoint({"STORAGE_EMULATOR_HOST": "127.0.0.1:4443"}) == "http://127.0.0.1:4443"
    assert gcs_client.emulator_endpoint({"STORAGE_EMULATOR_HOST": "http://[::1]:80"}) == "http://[::1]:80"
    assert gcs_client.emulator_endpoint({"STORAGE_EMULATOR_HOST": "https://gcs.example.com"}) == \
        "https://gcs.example.com"
    assert gcs_client.emulator_endpoint({}) is None
    for bad in ("http://gcs.example.com:80", "http://127.0.0.1.example.com", "ftp://127.0.0.1",
                "http://user:pw@127.0.0.1"):
        with pytest.raises(StateError):
            gcs_client.emulator_endpoint({"STORAGE_EMULATOR_HOST": bad})


def test_a_missing_bucket_is_a_clear_error(gcs):
    store = open_backend("gs://no-such-bucket-here/x.json")
    with pytest.raises(StateError, match="bucket no-such-bucket-here does not exist"):
        with store.lock("plan"):
            pass
    with pytest.raises(StateError, match="bucket no-such-bucket-here does not exist"):
        store.load()


@pytest.mark.slow
def test_a_server_that_keeps_failing_is_reported_within_the_retry_budget(gcs, gcs_proxy, monkeypatch):
    monkeypatch.setattr(gcs_client, "RETRY_SECONDS", 1.0)
    gcs_proxy.faults.error_rate = 1.0
    with pytest.raises(StateError, match="did not answer within 1s"):
        store_for(gcs).load()


def test_permission_denied_names_the_role_it_takes(gcs, gcs_proxy):
    gcs_proxy.faults.error_rate, gcs_proxy.faults.error_status = 1.0, 403
    with pytest.raises(StateError, match=r"permission denied .*roles/storage.objectUser"):
        with store_for(gcs).lock("plan"):
            pass


def test_parse_gcs_object_names_sit_beside_the_state():
    obj = parse_gcs("gs://bkt/a/b.json")
    assert GcsStateStore(obj).lock_name == "a/b.json.lock"


def test_journal_names_and_which_objects_may_go():
    from reconciler.state.gcs_journal import FENCE_KEEP_SECONDS, JournalName, Listed

    name = JournalName(17, 99, 3)
    assert name.object_name(parse_gcs("gs://bkt/a/b.json")) == "a/b.json.journal/17-99-00000003"
    assert JournalName.parse("17-99-00000003") == name and JournalName.parse("junk") is None
    assert sorted([JournalName(2, 1, 1), JournalName(1, 5, 2), JournalName(1, 5, 1)])[0] == JournalName(1, 5, 1)
    assert Listed(name).disposable  # a batch: once its generation is folded
    assert not Listed(name, fence=True, age_seconds=3600).disposable  # a fence outlives the run it stops
    assert Listed(name, fence=True, age_seconds=FENCE_KEEP_SECONDS + 1).disposable
