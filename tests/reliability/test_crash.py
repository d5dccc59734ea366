"""SIGKILL at random moments: seeded trials, each killing a real `python -m reconciler apply`
subprocess mid-run, then checking the state file and converging with the next apply."""

from __future__ import annotations

import json
import random
import re
import signal
import time
from pathlib import Path

import pytest

from reconciler.state.lock import read_lock
from reconciler.state.model import state_from_json

from .conftest import (
    LOCATION,
    assert_no_traceback,
    cli,
    current_jobs,
    duplicates,
    jobs_by_key,
    kill_at_random,
    record_figures,
    spawn,
    subprocess_env,
    write_manifests,
)

TRIALS = 24
KEYS_PER_TRIAL = 12


def _read_state(path: Path) -> dict | None:
    """The state file must always parse: the old or the new version, never a torn one."""
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    state_from_json(text, str(path))  # raises on anything torn or invalid
    return json.loads(text)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_duplicates_a_job(emulator_factory, env_for, capsys, tmp_path,
                                                                   caplog):
    # A real clock (jobs take an hour): createTimes then differ as on the real service.
    emulator = emulator_factory(virtual_clock=False, job_duration=3600, latency_ms=15, seed=11)
    env_for(emulator)
    env = subprocess_env(emulator.url, emulator.token)
    outcomes: dict[str, int] = {}
    states_checked = journals_left = adopted = 0
    for trial in range(TRIALS):
        rng = random.Random(trial)
        project = f"crash-{trial}"
        root = tmp_path / f"t{trial}"
        state = root / "state" / "default.json"
        keys = [f"k{trial}-{i}" for i in range(KEYS_PER_TRIAL)]
        common = ["--state", str(state), "--project", project, "--location", LOCATION, "--no-color"]
        write_manifests(root / "m", keys)
        replacing = trial % 3 == 2
        if replacing:
            # A first apply creates everything; the killed one then replaces half of the keys
            # (cancel the old job, create the new one), so kills land inside replaces too.
            assert cli(capsys, "apply", str(root / "m"), "--auto-approve", *common).code == 0
            write_manifests(root / "m", keys, epochs={k: 5 for k in keys[::2]})
        old = _read_state(state)

        proc = spawn(["apply", str(root / "m"), "--auto-approve", "--parallelism", str(rng.choice([1, 4, 8])),
                      *common], env, root)
        outcome = kill_at_random(proc, rng, emulator, len(keys[::2]) if replacing else len(keys),
                                 give_up_s=30, after_job_s=0.03, anytime_s=(0.2, 1.5))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

        after = _read_state(state)  # valid JSON whatever the moment of the kill
        states_checked += 1
        journals_left += Path(f"{state}.journal").exists()
        if old is not None and after is not None:
            assert after["lineage"] == old["lineage"] and after["serial"] >= old["serial"]
        lock = read_lock(state)
        if lock is not None:  # a killed holder leaves its lock: reported, then force-unlocked
            blocked = cli(capsys, "plan", str(root / "m"), *common)
            assert blocked.code == 1 and f"pid {lock.pid}" in blocked.err and "no longer running" in blocked.err
            assert cli(capsys, "force-unlock", lock.id, "--force", "--state", str(state)).code == 0

        final = cli(capsys, "apply", str(root / "m"), "--auto-approve", *common)
        assert final.code == 0, f"trial {trial}: {final.text[-2000:]}"
        assert_no_traceback(final.text)
        adopted += int(re.search(r"(\d+) adopted", final.out).group(1)) if "Apply complete" in final.out else 0
        check = cli(capsys, "plan", str(root / "m"), "--detailed-exitcode", *common)
        assert check.code == 0, f"trial {trial}: {check.text[-2000:]}"

        number = emulator.backend.project_number(project)
        by_key = jobs_by_key(emulator, number)
        assert sorted(by_key) == sorted(keys), f"trial {trial}"
        assert duplicates(by_key) == 0, f"trial {trial}: {by_key}"
        entries = _read_state(state)["entries"]
        assert len(entries) == len(keys)  # no key forgotten
        for entry in entries.values():
            (live,) = current_jobs(by_key[entry["key"]])
            assert entry["job_name"] == live["name"]
            # Every other job of the key is a cancelled predecessor that state still knows.
            others = {j["name"] for j in by_key[entry["key"]]} - {live["name"]}
            assert others <= set(entry["history"]), f"trial {trial}: untracked {others - set(entry['history'])}"
    assert outcomes.get("killed", 0) >= TRIALS * 2 // 3, outcomes
    # A client killed mid-request is no server bug: the emulator must not log one.
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]
    record_figures("sigkill_trials", trials=TRIALS, killed=outcomes.get("killed", 0),
                   finished_before_kill=outcomes.get("finished first", 0), states_checked=states_checked,
                   journals_left=journals_left, lost_answers_adopted=adopted,
                   jobs_created=len(emulator.backend.jobs), duplicates=0, keys=TRIALS * KEYS_PER_TRIAL)


@pytest.mark.slow
def test_kill_between_create_and_record_is_adopted_not_recreated(emulator_factory, env_for, capsys, tmp_path):
    """The narrowest window, made certain: the create commits but its answer is lost and the
    process is killed while it looks for the job, so only the request id is in the journal."""
    emulator = emulator_factory(virtual_clock=True)
    env_for(emulator)
    state = tmp_path / "state" / "default.json"
    common = ["--state", str(state), "--project", "adopt-p", "--location", LOCATION, "--no-color"]
    write_manifests(tmp_path / "m", ["only"])
    emulator.app.faults.update({"drop_rate": 1.0, "latency_ms": 1500})  # commit, drop, and slow look-ups
    proc = spawn(["apply", str(tmp_path / "m"), "--auto-approve", *common],
                 subprocess_env(emulator.url, emulator.token), tmp_path)
    deadline = time.monotonic() + 30
    while not emulator.backend.jobs and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(emulator.backend.jobs) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    emulator.app.faults.update({"drop_rate": 0.0, "latency_ms": 0})

    journal = [json.loads(line) for line in Path(f"{state}.journal").read_text().splitlines()]
    assert journal[-1]["entry"]["request_id"] and journal[-1]["entry"]["job_name"] is None
    lock = read_lock(state)
    assert lock is not None and cli(capsys, "force-unlock", lock.id, "--force", "--state", str(state)).code == 0
    plan = cli(capsys, "plan", str(tmp_path / "m"), *common)
    assert "create finished but was not recorded: adopting" in plan.out, plan.text
    applied = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common)
    assert applied.code == 0 and "1 adopted" in applied.out and "0 created" in applied.out, applied.text
    (job,) = emulator.backend.jobs.values()
    assert json.loads(state.read_text())["entries"]["adopt-p/us-central1/only"]["job_name"] == job.name


@pytest.mark.slow
def test_kill_between_replace_create_and_record_is_adopted(emulator_factory, env_for, capsys, tmp_path):
    """As above, inside a replace: the old job is cancelled, the new one commits, the process dies."""
    emulator = emulator_factory(virtual_clock=True)
    env_for(emulator)
    state = tmp_path / "state" / "default.json"
    common = ["--state", str(state), "--project", "adopt-r", "--location", LOCATION, "--no-color"]
    write_manifests(tmp_path / "m", ["only"])
    assert cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common).code == 0
    write_manifests(tmp_path / "m", ["only"], epochs={"only": 9})
    emulator.app.faults.update({"drop_rate": 1.0, "latency_ms": 1500})
    proc = spawn(["apply", str(tmp_path / "m"), "--auto-approve", *common],
                 subprocess_env(emulator.url, emulator.token), tmp_path)
    deadline = time.monotonic() + 30
    while len(emulator.backend.jobs) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    emulator.app.faults.update({"drop_rate": 0.0, "latency_ms": 0})
    lock = read_lock(state)
    assert lock is not None and cli(capsys, "force-unlock", lock.id, "--force", "--state", str(state)).code == 0
    applied = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common)
    assert applied.code == 0, applied.text
    by_key = jobs_by_key(emulator)
    assert len(by_key["only"]) == 2 and duplicates(by_key) == 0, [(j["name"], j["state"]) for j in by_key["only"]]
