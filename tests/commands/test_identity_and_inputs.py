"""End to end against a live emulator: one job never claimed from two addresses, `import`
checks what it imports, saved plans and flags are checked, and file errors are messages."""

from __future__ import annotations

import json

import pytest

from reconciler.api.client import ClientOptions, TuningClient

PROJECT, LOCATION = "demo-project", "us-central1"  # as the `ws` fixture sets them
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"


def live_jobs(ws) -> list[dict]:
    with TuningClient(ClientOptions(endpoint=ws.emulator.url, access_token=ws.emulator.token)) as client:
        return list(client.list_jobs(PARENT))


def _number(ws) -> str:
    """The project number the emulator gives PROJECT (Vertex names jobs by number)."""
    return live_jobs(ws)[0]["name"].split("/")[1]


def test_project_switched_from_id_to_number_moves_the_key_without_cancelling(ws):
    ws.job("alpha")
    assert ws.apply().code == 0
    job = ws.entry("alpha")["job_name"]
    number = _number(ws)
    text = (ws.manifests / "alpha.yaml").read_text().replace("  name: alpha\n", f"  name: alpha\n  project: '{number}'\n")
    (ws.manifests / "alpha.yaml").write_text(text)
    plan = ws.plan()
    assert plan.code == 0, plan.err
    assert f"job tracked as {PROJECT}/{LOCATION}/alpha until now: moving it here" in plan.out
    assert f"its job {job} is now tracked as {number}/{LOCATION}/alpha" in plan.out
    assert "will be cancelled" not in plan.out
    assert ws.apply().code == 0
    (live,) = live_jobs(ws)
    assert live["name"] == job and live["state"] in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING")
    assert list(ws.state_json()["entries"]) == [f"{number}/{LOCATION}/alpha"]
    assert ws.plan("--detailed-exitcode").code == 0


def test_second_active_job_for_a_key_blocks_the_plan_and_drift_names_it(ws):
    ws.job("alpha")
    assert ws.apply().code == 0
    ws.admin.seed(PARENT, 1, labels={"managed-by": "tuning-reconciler", "reconciler-key": "alpha"},
                  state="JOB_STATE_RUNNING")
    plan = ws.plan()
    assert plan.code == 1 and "another active job carries this key's labels" in plan.out and "both are billed" in plan.out
    assert ws.apply().code == 1
    assert len(live_jobs(ws)) == 2  # nothing adopted, cancelled or created
    drift = ws.run("drift", str(ws.manifests), "--format", "json")
    assert drift.code == 2
    items = json.loads(drift.out)["items"]
    assert [i["kind"] for i in items if i["category"] == "out-of-band"] == ["stray"]


def test_import_checks_location_project_tracking_and_labels(ws):
    ws.job("alpha")
    ws.job("beta")
    assert ws.apply().code == 0
    alpha = ws.entry("alpha")["job_name"]
    assert ws.run("state", "rm", "beta", "--state", str(ws.state), state=False).code == 0
    elsewhere = alpha.replace(f"/locations/{LOCATION}/", "/locations/europe-west4/")
    cases = {
        elsewhere: "is in location europe-west4, but the key is in us-central1",
        alpha: f"{alpha} is already tracked as {PROJECT}/{LOCATION}/alpha",
        "12345": f"no tuning job 12345 in {PARENT}",
        "not/a/name": "invalid job name 'not/a/name'",
    }
    for name, message in cases.items():
        result = ws.run("import", "beta", name, str(ws.manifests))
        assert result.code == 1 and message in result.err, (name, result.err)
    other = ws.admin.seed(f"projects/someone-else/locations/{LOCATION}", 1)[0]
    result = ws.run("import", "beta", other.rsplit("/", 1)[-1], str(ws.manifests))
    assert result.code == 1 and "no tuning job" in result.err  # another project's job is not found here
    hand = ws.admin.seed(PARENT, 1, labels={"team": "x"})[0]
    # options before the paths, as users type them (argparse alone would refuse this order)
    result = ws.run("import", "beta", hand, "--lock-timeout", "0", str(ws.manifests))
    assert result.code == 0, result.err
    assert ws.entry("beta")["imported"] is True
    drift = ws.run("drift", str(ws.manifests), "--format", "json")
    kinds = [i["kind"] for i in json.loads(drift.out)["items"] if i["category"] == "out-of-band"]
    assert "labels-changed" not in kinds  # a hand-made job never had our labels


def test_saved_plan_with_problems_is_refused(ws):
    ws.job("alpha")
    planfile = ws.root / "plan.json"
    assert ws.plan("--out", str(planfile)).code == 0
    data = json.loads(planfile.read_text())
    data["problems"] = [{"address": f"{PROJECT}/{LOCATION}/alpha", "message": "refused for a reason"}]
    planfile.write_text(json.dumps(data))
    result = ws.run("apply", str(planfile), "--no-color")
    assert result.code == 1
    assert result.err.startswith(f"Error: saved plan {planfile} has problems to fix first: "
                                 f"{PROJECT}/{LOCATION}/alpha: refused for a reason")
    assert live_jobs(ws) == []


def test_wait_timeout_with_jobs_still_running_exits_1(ws):
    ws.job("alpha")
    result = ws.apply("--wait", "--poll-interval", "0.01", "--wait-timeout", "0.05")
    assert result.code == 1
    assert "Stopped waiting after" in result.out
    assert "Error: --wait-timeout reached with 1 job(s) still running" in result.err


def test_unwritable_paths_and_bad_flags_are_messages_not_tracebacks(ws, tmp_path):
    ws.job("alpha")
    (tmp_path / "file").write_text("x")
    result = ws.plan("--out", str(tmp_path / "file" / "plan.json"))
    assert result.code == 1 and result.err.startswith("Error: [Errno ") and str(tmp_path / "file") in result.err
    assert "Traceback" not in result.err and len(result.err.splitlines()) == 1
    for flags, message in [(["--parallelism", "0"], "argument --parallelism: '0' must be greater than 0"),
                           (["--lock-timeout", "nan"], "argument --lock-timeout: 'nan' must be at least 0")]:
        with pytest.raises(SystemExit) as exit_:
            ws.plan(*flags)
        assert exit_.value.code == 2
        assert message in ws.capsys.readouterr().err


def test_a_target_that_names_nothing_is_an_error_not_an_empty_plan(ws):
    ws.job("alpha")
    result = ws.plan("--target", "alpah", "--target", "alpha")
    assert result.code == 1
    assert result.err == ("Error: --target alpah: no such key in the manifests or the state "
                          "(give a key or project/location/key)\n")
    assert ws.plan("--target", f"{PROJECT}/{LOCATION}/alpha").code == 0


def test_a_moved_key_whose_job_cannot_be_matched_is_refused_and_state_mv_moves_it(ws):
    ws.job("alpha")
    spec = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://bucket/train.jsonl", "hyperParameters": {"epochCount": "3"}}}
    hand = ws.admin.seed(PARENT, 1, state="JOB_STATE_RUNNING", spec=spec)[0]
    assert ws.run("import", "alpha", hand, str(ws.manifests)).code == 0
    number = hand.split("/")[1]
    text = (ws.manifests / "alpha.yaml").read_text().replace("  name: alpha\n", f"  name: alpha\n  project: '{number}'\n")
    (ws.manifests / "alpha.yaml").write_text(text)
    old, new = f"{PROJECT}/{LOCATION}/alpha", f"{number}/{LOCATION}/alpha"
    plan = ws.plan()
    assert plan.code == 1 and f"run `reconciler state mv {old} {new}`" in plan.out
    assert ws.apply().code == 1 and len(live_jobs(ws)) == 1  # nothing cancelled, nothing created
    moved = ws.run("state", "mv", old, new, "--state", str(ws.state), state=False)
    assert moved.code == 0 and moved.out.startswith(f"Moved {old} to {new}")
    assert list(ws.state_json()["entries"]) == [new]
    assert ws.state_json()["entries"][new]["imported"] is True
    assert ws.plan("--detailed-exitcode").code == 0
    refused = ws.run("state", "mv", new, f"{PROJECT}/europe-west4/alpha", "--state", str(ws.state), state=False)
    assert refused.code == 1 and "key and location must stay the same" in refused.err
