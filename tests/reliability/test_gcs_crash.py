"""SIGKILL of `python -m reconciler apply` on a `gs://` state (fake-gcs-server on 127.0.0.1) at
random moments, with 20% of the API emulator's answers 429 or 503: the state object always
parses, the next apply converges, no job is created twice and no key is forgotten."""

from __future__ import annotations

import gzip
import json
import random

import pytest

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

TRIALS = 20
KEYS_PER_TRIAL = 30


def _object_state(gcs, name: str) -> dict | None:
    """The state object must always parse: the old or the new version, never a torn one."""
    blob = gcs.bucket().get_blob(name)
    if blob is None:
        return None
    raw = blob.download_as_bytes(raw_download=True)
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    state_from_json(text, name)  # raises on anything invalid
    return json.loads(text)


@pytest.mark.slow
def test_sigkill_of_an_apply_on_gcs_state_never_loses_or_duplicates_a_job(emulator_factory, env_for, capsys,
                                                                          gcs, tmp_path):
    emulator = emulator_factory(virtual_clock=False, job_duration=3600, latency_ms=5, seed=23, error_rate=0.2,
                                retry_after=0)
    env_for(emulator)
    env = subprocess_env(emulator.url, emulator.token)  # $STORAGE_EMULATOR_HOST comes along
    assert env["STORAGE_EMULATOR_HOST"] == gcs.endpoint
    outcomes: dict[str, int] = {}
    journals_left = locks_left = adopted = 0
    for trial in range(TRIALS):
        rng = random.Random(500 + trial)
        project, name = f"gkill-{trial}", f"kill/{trial}.json"
        root = tmp_path / f"t{trial}"
        keys = [f"k{trial}-{i}" for i in range(KEYS_PER_TRIAL)]
        common = ["--state", gcs.url(name), "--project", project, "--location", LOCATION, "--no-color"]
        write_manifests(root / "m", keys)
        replacing = trial % 4 == 3
        if replacing:  # kills then land between a cancel and its create too
            assert cli(capsys, "apply", str(root / "m"), "--auto-approve", *common).code == 0
            write_manifests(root / "m", keys, epochs={k: 5 for k in keys[::2]})
        old = _object_state(gcs, name)

        proc = spawn(["apply", str(root / "m"), "--auto-approve", "--parallelism", str(rng.choice([4, 8, 16])),
                      *common], env, root)
        outcome = kill_at_random(proc, rng, emulator, len(keys[::2]) if replacing else len(keys),
                                 give_up_s=60, after_job_s=0.05, anytime_s=(0.3, 2.0))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

        after = _object_state(gcs, name)  # parses, whatever the moment of the kill
        if old is not None and after is not None:
            assert after["lineage"] == old["lineage"] and after["serial"] >= old["serial"], trial
        journals_left += any(gcs.client().list_blobs(gcs.name, prefix=f"{name}.journal/"))
        lock = gcs.bucket().get_blob(f"{name}.lock")
        if lock is not None:  # a killed holder leaves its lock: reported, then force-unlocked
            locks_left += 1
            blocked = cli(capsys, "plan", str(root / "m"), *common)
            assert blocked.code == 1 and str(lock.generation) in blocked.err and "no longer running" in blocked.err
            assert cli(capsys, "force-unlock", str(lock.generation), "--force", "--state", gcs.url(name)).code == 0

        # Parallelism 16: the client's backoff after the injected 503s overlaps more.
        final = cli(capsys, "apply", str(root / "m"), "--auto-approve", "--parallelism", "16", *common)
        assert final.code == 0, f"trial {trial}: {final.text[-2000:]}"
        assert_no_traceback(final.text)
        if "adopted" in final.out:
            adopted += int(final.out.rsplit(" adopted", 1)[0].rsplit(" ", 1)[1])
        check = cli(capsys, "plan", str(root / "m"), "--detailed-exitcode", *common)
        assert check.code == 0, f"trial {trial}: {check.text[-2000:]}"

        by_key = jobs_by_key(emulator, emulator.backend.project_number(project))
        assert sorted(by_key) == sorted(keys), f"trial {trial}"
        assert duplicates(by_key) == 0, f"trial {trial}: {by_key}"
        entries = _object_state(gcs, name)["entries"]
        assert sorted(e["key"] for e in entries.values()) == sorted(keys), f"trial {trial}: a key was forgotten"
        for entry in entries.values():
            (live,) = current_jobs(by_key[entry["key"]])
            assert entry["job_name"] == live["name"], f"trial {trial}"
            others = {j["name"] for j in by_key[entry["key"]]} - {live["name"]}
            assert others <= set(entry["history"]), f"trial {trial}: untracked {others - set(entry['history'])}"
    assert outcomes.get("killed", 0) >= TRIALS // 2, outcomes
    faults = emulator.app.stats.as_dict()["faults"]
    assert faults["429"] + faults["503"] > 0
    record_figures("gcs_sigkill_trials", trials=TRIALS, keys=TRIALS * KEYS_PER_TRIAL, killed=outcomes.get("killed", 0),
                   finished_before_kill=outcomes.get("finished first", 0), journals_left=journals_left,
                   locks_left=locks_left, adopted_next_run=adopted, jobs_created=len(emulator.backend.jobs),
                   duplicates=0, forgotten_keys=0, faults=faults)
