"""A tracked job the service no longer returns (its history expired, or it was deleted) is
reported, never billed again unasked: plan shows it, drift counts it, apply does nothing.
Only `lifecycle.onMissing: recreate` creates it again. (terraform-provider-google #9768:
BigQuery job resources re-ran every job once its history expired.)"""

from __future__ import annotations

import json

from .conftest import LOCATION, cli, jobs_by_key, key_counts, manifest

PROJECT = "vanish-p"


def test_a_vanished_job_is_reported_by_plan_and_drift_and_left_alone_by_apply(emulator, env_for, tmp_path, capsys):
    env_for(emulator)
    m = tmp_path / "m"
    m.mkdir()
    (m / "jobs.yaml").write_text(manifest("alpha") + "---\n" + manifest("beta"))
    common = ["--state", str(tmp_path / "s.json"), "--project", PROJECT, "--location", LOCATION, "--no-color"]
    assert cli(capsys, "apply", str(m), "--auto-approve", *common).code == 0
    (alpha,) = jobs_by_key(emulator)["alpha"]
    emulator.backend.expire(alpha["name"])

    run = cli(capsys, "plan", str(m), "--detailed-exitcode", *common)
    assert run.code == 0 and "No changes." in run.out, run.text  # nothing to apply ...
    assert f"alpha: job {alpha['name']} in state no longer exists" in run.out  # ... but it is shown
    assert "onMissing" in run.out
    data = json.loads(cli(capsys, "plan", str(m), "--json", *common).out)
    (change,) = [c for c in data["changes"] if c["key"] == "alpha"]
    assert (change["action"], change["reason"]) == ("no-op", "job-gone-reported")

    run = cli(capsys, "drift", str(m), "--format", "json", *common)
    assert run.code == 2, run.text
    drift = json.loads(run.out)
    assert [(i["kind"], i["key"]) for i in drift["items"]] == [("gone", "alpha")]
    assert drift["counts"]["out-of-band"] == 1

    run = cli(capsys, "apply", str(m), "--auto-approve", *common)
    assert run.code == 0 and "0 created" in run.out, run.text
    assert set(jobs_by_key(emulator)) == {"beta"}  # not billed again
    assert json.loads((tmp_path / "s.json").read_text())["entries"][f"{PROJECT}/{LOCATION}/alpha"]["job_name"] \
        == alpha["name"]  # still tracked, still reported next time

    # Only an explicit lifecycle choice creates it again.
    (m / "jobs.yaml").write_text(manifest("alpha") + "lifecycle:\n  onMissing: recreate\n---\n" + manifest("beta"))
    run = cli(capsys, "plan", str(m), *common)
    assert "1 to create" in run.out and "onMissing=recreate" in run.out, run.text
    assert cli(capsys, "apply", str(m), "--auto-approve", *common).code == 0
    assert key_counts(jobs_by_key(emulator)) == {"alpha": 1, "beta": 1}
    assert cli(capsys, "plan", str(m), "--detailed-exitcode", *common).code == 0


def test_a_saved_plan_keeps_on_missing(emulator, env_for, tmp_path, capsys):
    """The saved plan carries the lifecycle choice: applying it re-creates exactly as planned,
    and a plan saved before the choice was made is stale once it is."""
    env_for(emulator)
    m = tmp_path / "m"
    m.mkdir()
    (m / "jobs.yaml").write_text(manifest("alpha") + "lifecycle:\n  onMissing: recreate\n")
    common = ["--state", str(tmp_path / "s.json"), "--project", PROJECT, "--location", LOCATION, "--no-color"]
    assert cli(capsys, "apply", str(m), "--auto-approve", *common).code == 0
    (alpha,) = jobs_by_key(emulator)["alpha"]
    emulator.backend.expire(alpha["name"])
    assert cli(capsys, "plan", str(m), "--out", str(tmp_path / "p.plan"), *common).code == 0
    saved = json.loads((tmp_path / "p.plan").read_text())
    assert saved["changes"][0]["lifecycle"]["onMissing"] == "recreate"
    assert cli(capsys, "apply", str(tmp_path / "p.plan"), "--state", str(tmp_path / "s.json")).code == 0
    assert len(jobs_by_key(emulator)["alpha"]) == 1
