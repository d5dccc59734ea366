"""Two applies at once on one state file, and a lock left behind by a killed process."""

from __future__ import annotations

import re
import signal
import time

import pytest

from reconciler.state.lock import read_lock

from .conftest import LOCATION, cli, duplicates, jobs_by_key, spawn, subprocess_env, write_manifests


def _common(tmp_path, project: str) -> list[str]:
    return ["--state", str(tmp_path / "state" / "default.json"), "--project", project, "--location", LOCATION,
            "--no-color"]


def _wait_for_lock(state, proc, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        info = read_lock(state)
        if info is not None:
            return info
        time.sleep(0.005)
    raise AssertionError("the first apply never took the lock")


@pytest.mark.slow
def test_second_apply_fails_at_once_naming_the_holder(emulator_factory, env_for, capsys, tmp_path):
    emulator = emulator_factory(virtual_clock=True, latency_ms=150)
    env_for(emulator)
    keys = [f"c-{i}" for i in range(10)]
    write_manifests(tmp_path / "m", keys)
    common = _common(tmp_path, "lock-p")
    first = spawn(["apply", str(tmp_path / "m"), "--auto-approve", "--parallelism", "2", *common],
                  subprocess_env(emulator.url, emulator.token), tmp_path)
    holder = _wait_for_lock(tmp_path / "state" / "default.json", first)
    second = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common)  # no --lock-timeout
    assert second.code == 1
    assert "locked by another reconciler" in second.err and f"pid {first.pid}" in second.err
    assert 'operation "apply"' in second.err and holder.id in second.err
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert duplicates(jobs_by_key(emulator)) == 0 and len(emulator.backend.jobs) == len(keys)


@pytest.mark.slow
def test_concurrent_applies_with_lock_timeout_serialize_and_create_once(emulator_factory, tmp_path):
    emulator = emulator_factory(virtual_clock=True, latency_ms=20)
    keys = [f"s-{i}" for i in range(15)]
    write_manifests(tmp_path / "m", keys)
    env = subprocess_env(emulator.url, emulator.token)
    procs = [spawn(["apply", str(tmp_path / "m"), "--auto-approve", "--lock-timeout", "60",
                    *_common(tmp_path, "race-p")], env, tmp_path) for _ in range(4)]
    results = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], results
    # One of them created everything; the others, let in one by one, found nothing left to do.
    created = sorted(int(re.search(r"Jobs: (\d+) created", out).group(1)) for out, _ in results)
    assert created == [0, 0, 0, 15], results
    assert len(emulator.backend.jobs) == 15 and duplicates(jobs_by_key(emulator)) == 0


@pytest.mark.slow
def test_lock_of_a_killed_apply_is_reported_and_force_unlocked(emulator_factory, env_for, capsys, tmp_path):
    emulator = emulator_factory(virtual_clock=True, latency_ms=300)
    env_for(emulator)
    keys = [f"z-{i}" for i in range(6)]
    write_manifests(tmp_path / "m", keys)
    common = _common(tmp_path, "stale-p")
    state = tmp_path / "state" / "default.json"
    proc = spawn(["apply", str(tmp_path / "m"), "--auto-approve", "--parallelism", "1", *common],
                 subprocess_env(emulator.url, emulator.token), tmp_path)
    holder = _wait_for_lock(state, proc)
    time.sleep(1.1)  # so the age reads at least 1s
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    emulator.app.faults.update({"latency_ms": 0})

    blocked = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common)
    assert blocked.code == 1
    assert "no longer running" in blocked.err and f"pid {proc.pid}" in blocked.err
    assert re.search(r"\((\d+)s ago\)", blocked.err) and int(re.search(r"\((\d+)s ago\)", blocked.err).group(1)) >= 1
    command = re.search(r"reconciler (force-unlock \S+ --state \S+)", blocked.err).group(1).split()
    assert command[1] == holder.id
    wrong = cli(capsys, "force-unlock", "not-the-id", "--force", "--state", str(state))
    assert wrong.code == 1 and "does not match" in wrong.err and read_lock(state) is not None
    assert cli(capsys, *command, "--force").code == 0
    assert read_lock(state) is None

    final = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common)
    assert final.code == 0, final.text
    assert sorted(jobs_by_key(emulator)) == sorted(keys) and duplicates(jobs_by_key(emulator)) == 0
    assert len(emulator.backend.jobs) == len(keys)
