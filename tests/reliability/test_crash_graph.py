"""SIGKILL at random moments while `apply --wait` runs a job graph: a chain of four continuous-
tuning stages (and one job beside it), seeded trials. Every third trial first runs the chain
to the end and then re-tunes its first stage, so kills also land inside a cascade.

After each kill the next `apply --wait` must converge (a plan then shows no changes), and
across everything the emulator ever saw: no job created twice (two jobs of one key with one
spec, references resolved), no downstream job created from a missing value or from a model
that is not its upstream's SUCCEEDED result (during a cascade: its upstream's new result)."""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from reconciler.model import KEY_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SPEC_LABEL
from reconciler.state.lock import read_lock
from reconciler.state.model import state_from_json

from .conftest import LOCATION, assert_no_traceback, cli, record_figures, spawn, subprocess_env

TRIALS = 20
CHAIN = ["s1", "s2", "s3", "s4"]
UPSTREAM = {"s2": "s1", "s3": "s2", "s4": "s3"}


def write_graph(directory: Path, trial: int, head_epochs: int) -> None:
    docs = []
    for key in [*CHAIN, "side"]:
        up = UPSTREAM.get(key)
        source = (f"  preTunedModel:\n    tunedModelName: ${{jobs.{up}.tunedModel.model}}\n" if up
                  else "  baseModel: gemini-2.5-flash\n")
        epochs = head_epochs if key == "s1" else 2
        docs.append(f"apiVersion: tuning.reconciler/v1\nkind: TuningJob\nmetadata:\n  name: {key}\nspec:\n{source}"
                    f"  supervisedTuningSpec:\n    trainingDatasetUri: gs://bucket/t{trial}/{key}.jsonl\n"
                    f"    hyperParameters: {{epochCount: \"{epochs}\"}}\n")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "graph.yaml").write_text("---\n".join(docs))


def trial_jobs(emulator, number: str) -> list[dict]:
    with emulator.backend.lock:
        emulator.backend.tick()
        return [j.resource() for j in emulator.backend.jobs.values()
                if j.project == number and j.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE]


def kill_at_random(proc, rng: random.Random, emulator, number: str, new_jobs: int) -> str:
    mode = rng.choice(["jobs", "jobs", "time"])
    deadline = time.monotonic() + 60
    if mode == "jobs":  # right after a random number of creates (the window around a create)
        goal = len(trial_jobs(emulator, number)) + rng.randint(1, new_jobs)
        while len(trial_jobs(emulator, number)) < goal and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))
    else:  # anywhere: start-up, planning, a create, or following
        time.sleep(rng.uniform(0.2, 3.0))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return "killed"
    proc.communicate(timeout=10)
    return "finished first"


def check_values(jobs: list[dict], cascade_since: float | None, final_spec: dict[str, str]) -> int:
    """Every downstream job was created from its upstream's SUCCEEDED model; returns how many
    downstream jobs were checked."""
    by_key: dict[str, list[dict]] = {}
    for job in jobs:
        by_key.setdefault(job["labels"][KEY_LABEL], []).append(job)
    checked = 0
    for job in jobs:
        key = job["labels"][KEY_LABEL]
        up = UPSTREAM.get(key)
        assert "${" not in json.dumps(job), job  # never a reference sent as a value
        if up is None:
            continue
        source = job["preTunedModel"]["tunedModelName"]
        producers = [u for u in by_key.get(up, []) if (u.get("tunedModel") or {}).get("model") == source]
        assert len(producers) == 1, (key, source)
        producer = producers[0]
        assert producer["state"] == "JOB_STATE_SUCCEEDED", (key, producer["state"])
        assert producer["endTime"] <= job["createTime"], (key, producer["endTime"], job["createTime"])
        if cascade_since is not None and job["createTime"] > cascade_since_rfc(cascade_since):
            # Created during the cascade: from the upstream's new result, never the old one.
            assert producer["labels"][SPEC_LABEL] == final_spec[up], (key, "built from the old upstream")
        checked += 1
    return checked


def cascade_since_rfc(t: float) -> str:
    from reconciler.emulator.clock import rfc3339

    return rfc3339(t)


@pytest.mark.slow
def test_sigkill_while_apply_wait_runs_a_chain(emulator_factory, env_for, capsys, tmp_path):
    emulator = emulator_factory(virtual_clock=False, job_duration=0.3, latency_ms=5, seed=16)
    env_for(emulator)
    env = subprocess_env(emulator.url, emulator.token)
    outcomes: Counter[str] = Counter()
    downstream_checked = adopted = 0
    for trial in range(TRIALS):
        rng = random.Random(1000 + trial)
        project = f"graph-crash-{trial}"
        number = emulator.backend.project_number(project)
        root = tmp_path / f"t{trial}"
        state = root / "state" / "default.json"
        common = ["--state", str(state), "--project", project, "--location", LOCATION, "--no-color"]
        wait = ["--wait", "--poll-interval", "0.05"]
        cascade = trial % 3 == 2
        write_graph(root / "m", trial, head_epochs=3)
        since = None
        if cascade:
            first = cli(capsys, "apply", str(root / "m"), "--auto-approve", *common, *wait)
            assert first.code == 0, first.text[-2000:]
            write_graph(root / "m", trial, head_epochs=4)  # re-tune s1: s2..s4 follow it
            since = emulator.backend.now()
        proc = spawn(["apply", str(root / "m"), "--auto-approve", "--parallelism", str(rng.choice([1, 4])),
                      *common, *wait], env, root)
        outcomes[kill_at_random(proc, rng, emulator, number, 4 if cascade else 5)] += 1

        if state.exists():
            state_from_json(state.read_text(encoding="utf-8"), str(state))  # never torn
        lock = read_lock(state)
        if lock is not None:
            assert cli(capsys, "force-unlock", lock.id, "--force", "--state", str(state)).code == 0
        final = cli(capsys, "apply", str(root / "m"), "--auto-approve", *common, *wait)
        assert final.code == 0, f"trial {trial}: {final.text[-3000:]}"
        assert_no_traceback(final.text)
        adopted += final.out.count("create finished but was not recorded: adopting")
        check = cli(capsys, "plan", str(root / "m"), "--detailed-exitcode", *common)
        assert check.code == 0, f"trial {trial}: {check.text[-3000:]}"

        jobs = trial_jobs(emulator, number)
        # No job created twice: one job per key and spec (resolved inputs included).
        twice = [k for k, n in Counter((j["labels"][KEY_LABEL], j["labels"][SPEC_LABEL]) for j in jobs).items()
                 if n > 1]
        assert not twice, f"trial {trial}: created twice: {twice}"
        entries = json.loads(state.read_text())["entries"]
        assert sorted(e["key"] for e in entries.values()) == sorted([*CHAIN, "side"])
        final_spec = {e["key"]: e["spec_hash"] for e in entries.values()}
        downstream_checked += check_values(jobs, since, final_spec)
        current = {e["key"]: e["job_name"] for e in entries.values()}
        live = {j["name"]: j for j in jobs}
        for key, up in UPSTREAM.items():  # converged: each stage built from its upstream's current model
            assert live[current[key]]["preTunedModel"]["tunedModelName"] == live[current[up]]["tunedModel"]["model"]
        assert len(jobs) == (9 if cascade else 5), f"trial {trial}: {sorted((j['labels'][KEY_LABEL]) for j in jobs)}"
    assert outcomes["killed"] >= TRIALS // 2, outcomes
    record_figures("sigkill_graph_trials", trials=TRIALS, killed=outcomes["killed"],
                   finished_before_kill=outcomes["finished first"], downstream_jobs_checked=downstream_checked,
                   lost_answers_adopted=adopted, duplicates=0)


@pytest.mark.slow
def test_kill_between_a_downstream_create_and_its_record_is_adopted(emulator_factory, env_for, capsys, tmp_path):
    """The narrowest window, made certain, inside `apply --wait`: the upstream succeeds, the
    downstream create commits, its answer is lost and the process is killed while it looks for
    the job. The next apply adopts that job (built from the right model) instead of creating it."""
    emulator = emulator_factory(virtual_clock=True)
    env_for(emulator)
    project = "graph-adopt"
    state = tmp_path / "state" / "default.json"
    common = ["--state", str(state), "--project", project, "--location", LOCATION, "--no-color"]
    write_graph(tmp_path / "m", 0, head_epochs=3)
    proc = spawn(["apply", str(tmp_path / "m"), "--auto-approve", "--wait", "--poll-interval", "0.05", *common],
                 subprocess_env(emulator.url, emulator.token), tmp_path)
    number = emulator.backend.project_number(project)
    deadline = time.monotonic() + 30
    while len(trial_jobs(emulator, number)) < 2 and time.monotonic() < deadline:  # s1 and side
        time.sleep(0.005)
    emulator.app.faults.update({"drop_rate": 1.0, "latency_ms": 1500})
    emulator.backend.advance(3600)  # s1 succeeds: the follower starts s2, whose answer is dropped
    while len(trial_jobs(emulator, number)) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(trial_jobs(emulator, number)) == 3
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    emulator.app.faults.update({"drop_rate": 0.0, "latency_ms": 0})

    journal = [json.loads(line) for line in Path(f"{state}.journal").read_text().splitlines()[1:]]
    s2 = [e for e in journal if e["address"].endswith("/s2")]
    assert s2[-1]["entry"]["request_id"] and s2[-1]["entry"]["job_name"] is None
    lock = read_lock(state)
    assert lock is not None and cli(capsys, "force-unlock", lock.id, "--force", "--state", str(state)).code == 0
    plan = cli(capsys, "plan", str(tmp_path / "m"), *common)
    assert "create finished but was not recorded: adopting" in plan.out, plan.text
    applied = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common)
    assert applied.code == 0 and "1 adopted" in applied.out and "Jobs: 0 created" in applied.out, applied.text
    jobs = {j["labels"][KEY_LABEL]: j for j in trial_jobs(emulator, number)}
    assert jobs["s2"]["preTunedModel"]["tunedModelName"] == jobs["s1"]["tunedModel"]["model"]
    entry = json.loads(state.read_text())["entries"][f"{project}/{LOCATION}/s2"]
    assert entry["job_name"] == jobs["s2"]["name"]
    assert entry["inputs"] == {"preTunedModel.tunedModelName": jobs["s1"]["tunedModel"]["model"]}
