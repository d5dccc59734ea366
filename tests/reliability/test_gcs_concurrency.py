"""Many applies on one `gs://` state (fake-gcs-server on 127.0.0.1): they serialize on the
lock object and no update is lost; and a writer whose lock was force-removed is refused."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from reconciler.state.model import state_from_json

from .conftest import LOCATION, cli, duplicates, jobs_by_key, record_figures, spawn, subprocess_env, write_manifests


def _state(gcs, name: str) -> dict:
    return json.loads(gcs.bucket().blob(name).download_as_bytes())


@pytest.mark.slow
def test_eight_applies_on_one_gs_state_serialize_and_lose_no_update(emulator_factory, gcs, tmp_path):
    """Each of 8 processes applies its own 3 keys (--target) of one manifest set of 24, all at
    once with --lock-timeout: each must find the others' keys in state (a stale write would
    drop them), create only its own, and never twice."""
    emulator = emulator_factory(virtual_clock=True, latency_ms=20)
    keys = [f"g-{i:02d}" for i in range(24)]
    write_manifests(tmp_path / "m", keys)
    url = gcs.url("race/default.json")
    env = subprocess_env(emulator.url, emulator.token)
    common = ["--state", url, "--project", "race-gcs", "--location", LOCATION, "--no-color", "--lock-timeout", "120"]
    procs = [spawn(["apply", str(tmp_path / "m"), "--auto-approve", *common,
                    *[a for k in keys[3 * i:3 * i + 3] for a in ("--target", k)]], env, tmp_path)
             for i in range(8)]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, results
    created = [int(re.search(r"Jobs: (\d+) created", out).group(1)) for out, _ in results]
    assert created == [3] * 8, results
    by_key = jobs_by_key(emulator)
    assert sorted(by_key) == keys and duplicates(by_key) == 0 and len(emulator.backend.jobs) == 24
    state = _state(gcs, "race/default.json")
    assert sorted(e["key"] for e in state["entries"].values()) == keys  # no update lost
    for e in state["entries"].values():
        assert e["job_name"] == by_key[e["key"]][0]["name"]
    assert state["serial"] >= 8

    locks = [b.name for b in gcs.client().list_blobs(gcs.name, prefix="race/") if b.name.endswith(".lock")]
    assert locks == []
    record_figures("gcs_eight_applies", processes=8, keys=24, jobs=len(emulator.backend.jobs), duplicates=0,
                   state_serial=state["serial"])


@pytest.mark.slow
def test_an_apply_whose_lock_was_force_removed_is_refused_and_keeps_its_state(emulator_factory, env_for, capsys,
                                                                              gcs, tmp_path):
    """A runs slowly; its lock is force-removed and B writes the state. A's next write is
    refused before it sends another create, A exits 1 naming its recovery file, which holds
    everything A did; the next apply converges with one job per key."""
    emulator = emulator_factory(virtual_clock=True, latency_ms=300)
    env_for(emulator)
    keys = [f"f-{i}" for i in range(6)]
    write_manifests(tmp_path / "m", keys)
    url = gcs.url("fence/default.json")
    common = ["--state", url, "--project", "fence-p", "--location", LOCATION, "--no-color"]
    a = spawn(["apply", str(tmp_path / "m"), "--auto-approve", "--parallelism", "1", *common],
              subprocess_env(emulator.url, emulator.token), tmp_path)
    deadline = time.monotonic() + 60
    while not emulator.backend.jobs and time.monotonic() < deadline and a.poll() is None:
        time.sleep(0.01)
    assert emulator.backend.jobs, "A never created a job"
    lock = gcs.bucket().get_blob("fence/default.json.lock")
    assert cli(capsys, "force-unlock", str(lock.generation), "--force", "--state", url).code == 0
    b = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", "--target", keys[-1], *common)
    assert b.code == 0, b.text
    out, err = a.communicate(timeout=120)
    assert a.returncode == 1, out + err
    assert "force-removed" in err and "nothing was overwritten" in err, err
    recovery = Path(re.search(r"saved in (\S+reconciler-errored-\S+\.json)", err).group(1))
    held = state_from_json(recovery.read_text(), str(recovery))
    made_by_a = {j.name for j in emulator.backend.jobs.values()} - {_state(gcs, "fence/default.json")["entries"][
        f"fence-p/{LOCATION}/{keys[-1]}"]["job_name"]}
    in_recovery = {e.job_name for e in held.entries.values()} | {e.request_id for e in held.entries.values()}
    live_requests = {j.name: (j.resource().get("labels") or {}).get("reconciler-request")
                     for j in emulator.backend.jobs.values()}
    for name in made_by_a:  # every job A made is in its recovery file, by name or by its request id
        assert name in in_recovery or live_requests[name] in in_recovery, (name, held.entries)
    emulator.app.faults.update({"latency_ms": 0})
    final = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common)
    assert final.code == 0, final.text
    by_key = jobs_by_key(emulator)
    assert sorted(by_key) == keys and duplicates(by_key) == 0
    assert len(_state(gcs, "fence/default.json")["entries"]) == len(keys)
