"""v1beta1 jobs end to end through the CLI against a live emulator over HTTP (virtual clock):
created, read, cancelled and rebased through `/v1beta1/`, side by side with v1 jobs in one
configuration and one location, one list per location, and no change where nothing changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reconciler.emulator.admin import EmulatorAdmin

PROJECT, LOCATION = "demo-project", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"

BETA = """\
apiVersion: tuning.reconciler/{version}
kind: TuningJob
metadata:
  name: {key}
spec:
  baseModel: gemini-2.5-flash
  supervisedTuningSpec:
    trainingDatasetUri: gs://bucket/train.jsonl
    hyperParameters: {{epochCount: "3"}}
{extra}"""


def beta(ws, key: str, extra: str = "", version: str = "v1beta1") -> None:
    ws.write(f"{key}.yaml", BETA.format(version=version, key=key, extra=extra))


def stats_delta(ws, run) -> tuple[dict, dict]:
    """(requests per API method, requests per path version) that `run()` caused."""
    before = ws.admin.stats()
    run()
    after = ws.admin.stats()
    def delta(key: str) -> dict:
        return {k: v - before[key].get(k, 0) for k, v in after[key].items()
                if v != before[key].get(k, 0) and not k.startswith("admin.")}
    return delta("requests"), delta("versions")


def test_every_example_applies_then_plans_no_changes(ws):
    """Every example (v1 and v1beta1, two locations) against the emulator: apply, then plan."""
    for path in EXAMPLES.glob("*.yaml"):
        shutil.copy(path, ws.manifests / path.name)
    applied = ws.apply()
    assert applied.code == 0, applied.err + applied.out
    names = {e["key"]: e for e in ws.state_json()["entries"].values()}
    beta_keys = {k for k, e in names.items() if e.get("api_version") == "v1beta1"}
    assert len(beta_keys) == 8 and "support-bot-sft" not in beta_keys
    assert all("api_version" not in e for k, e in names.items() if k not in beta_keys)  # v1 entries as before

    requests, versions = stats_delta(ws, lambda: ws.plan("--detailed-exitcode"))
    # One list per project+location: us-central1 through v1beta1 (it has v1beta1 jobs), europe-west4 through v1.
    assert requests == {"list": 2} and versions == {"v1beta1": 1, "v1": 1}
    assert ws.plan("--detailed-exitcode").code == 0
    ws.admin.advance(10)  # all SUCCEEDED; the server filled in the hyperparameters it chose
    again = ws.plan("--detailed-exitcode")
    assert again.code == 0, again.out


def test_v1beta1_jobs_are_created_and_cancelled_through_v1beta1(ws):
    ws.job("plain")
    beta(ws, "open", extra="  outputUri: gs://bucket/out\n")
    requests, versions = stats_delta(ws, ws.apply)
    # One list of the location (through v1beta1: a job there is), then each create through its own version.
    assert requests == {"list": 1, "create": 2} and versions == {"v1beta1": 2, "v1": 1}
    live = ws.emulator.backend.get(ws.entry("open")["job_name"], "v1beta1")
    assert live["outputUri"] == "gs://bucket/out" and live["labels"]["reconciler-key"] == "open"
    assert ws.entry("open")["api_version"] == "v1beta1" and "api_version" not in ws.entry("plain")
    (ws.manifests / "open.yaml").unlink()
    plan = ws.plan_json()
    (change,) = [c for c in plan["changes"] if c["key"] == "open"]
    assert (change["action"], change["apiVersion"]) == ("cancel", "v1beta1")
    requests, versions = stats_delta(ws, ws.apply)
    assert requests.get("cancel") == 1
    assert ws.emulator.backend.get(change["job"]["name"], "v1beta1")["state"] == "JOB_STATE_CANCELLING"


def test_refresh_lists_a_location_once_through_v1beta1(ws):
    for i in range(3):
        ws.job(f"v1-{i}")
        beta(ws, f"beta-{i}")
    assert ws.apply().code == 0
    requests, versions = stats_delta(ws, lambda: ws.plan("--detailed-exitcode"))
    assert requests == {"list": 1} and versions == {"v1beta1": 1}
    only_v1 = [p for p in ws.manifests.iterdir() if p.name.startswith("beta-")]
    for path in only_v1:
        path.unlink()
    # The state still tracks v1beta1 jobs there (they are to be cancelled): still v1beta1.
    requests, versions = stats_delta(ws, lambda: ws.plan())
    assert requests == {"list": 1} and versions == {"v1beta1": 1}


def test_moving_a_manifest_between_v1_and_v1beta1_is_not_a_change(ws):
    ws.job("alpha")
    assert ws.apply().code == 0
    ws.admin.advance(10)  # SUCCEEDED, server-chosen hyperparameters filled in
    ws.job("alpha")
    text = (ws.manifests / "alpha.yaml").read_text().replace("tuning.reconciler/v1", "tuning.reconciler/v1beta1")
    (ws.manifests / "alpha.yaml").write_text(text)
    plan = ws.plan("--detailed-exitcode")
    assert plan.code == 0 and plan.out.strip().endswith("No changes."), plan.out
    # Applying it records the new version (later cancels and reads go through v1beta1).
    assert ws.apply().code == 0 and ws.entry("alpha")["api_version"] == "v1beta1"
    requests, versions = stats_delta(ws, lambda: ws.plan("--detailed-exitcode"))
    assert versions == {"v1beta1": 1}
    (ws.manifests / "alpha.yaml").write_text(text.replace("tuning.reconciler/v1beta1", "tuning.reconciler/v1"))
    assert ws.plan("--detailed-exitcode").code == 0
    assert ws.apply().code == 0 and "api_version" not in ws.entry("alpha")


def test_a_v1beta1_field_change_replaces_and_rebase_goes_through_v1beta1(ws, emulator_factory, monkeypatch):
    # start_delay 0: the rebased job starts at the first poll of its operation, so apply's wait for
    # it ends on the virtual clock.
    ws.emulator = emulator_factory(virtual_clock=True, start_delay=0)
    ws.admin = EmulatorAdmin(ws.emulator.url, ws.emulator.token)
    monkeypatch.setenv("RECONCILER_ENDPOINT", ws.emulator.url)
    beta(ws, "alpha", extra="  outputUri: gs://bucket/out\nlifecycle: {onBaseModelChange: rebase}\n")
    assert ws.apply().code == 0
    ws.admin.advance(10)
    beta(ws, "alpha", extra="  outputUri: gs://bucket/out2\nlifecycle: {onBaseModelChange: rebase}\n")
    plan = ws.plan()
    assert "-/+ alpha" in plan.out and '~ outputUri: "gs://bucket/out" -> "gs://bucket/out2"' in plan.out
    text = (ws.manifests / "alpha.yaml").read_text().replace("out2", "out").replace(
        "baseModel: gemini-2.5-flash", "baseModel: gemini-3-flash")
    (ws.manifests / "alpha.yaml").write_text(text)
    plan = ws.plan_json()
    (change,) = plan["changes"]
    assert (change["action"], change["apiVersion"]) == ("rebase", "v1beta1")
    requests, versions = stats_delta(ws, ws.apply)
    assert requests["rebaseTunedModel"] == 1
    rebased = ws.emulator.backend.get(ws.entry("alpha")["job_name"], "v1beta1")
    assert rebased["baseModel"] == "gemini-3-flash" and rebased["outputUri"] == "gs://bucket/out"
    assert rebased["state"] == "JOB_STATE_RUNNING"
    ws.admin.advance(10)
    assert ws.plan("--detailed-exitcode").code == 0
    ws.admin.close()


def test_jobs_apply_wait_and_drift_show_tuning_job_state(ws):
    ws.job("plain")
    beta(ws, "alpha", extra="lifecycle: {onSpecChange: wait}\n")
    waited = ws.apply("--wait", "--poll-interval", "0.01", "--wait-timeout", "0.05")
    # The clock stands still: both wait. The location is read through v1beta1 (a job there is
    # v1beta1), so the v1 job's finer state shows too.
    assert "Waiting for 2 job(s): 2 PENDING (WAITING_FOR_QUOTA)" in waited.out

    ws.admin.advance(1.0)  # mid-run: tuning
    table = ws.run("jobs")
    rows = {line.split()[0]: line for line in table.out.strip().splitlines()[1:]}
    assert " RUNNING (TUNING) " in rows["alpha"] and " RUNNING (TUNING) " in rows["plain"]
    doc = json.loads(ws.run("jobs", "--format", "json").out)
    states = {j["key"]: j["tuning_job_state"] for j in doc["jobs"]}
    assert states == {"alpha": "TUNING_JOB_STATE_TUNING", "plain": "TUNING_JOB_STATE_TUNING"}
    # Where state tracks only v1 jobs, the list goes through v1: no finer state.
    elsewhere = ws.run("jobs", "--state", str(ws.root / "none.json"), "--project", PROJECT, "--location", LOCATION,
                       state=False)
    assert elsewhere.code == 0 and "(" not in elsewhere.out.split("\n", 1)[1] and " RUNNING " in elsewhere.out

    beta(ws, "alpha", extra="  description: changed\nlifecycle: {onSpecChange: wait}\n")
    drift = ws.run("drift", str(ws.manifests), "--no-color")
    assert drift.code == 2 and "[RUNNING (TUNING)]" in drift.out, drift.out
    report = json.loads(ws.run("drift", str(ws.manifests), "--format", "json").out)
    (item,) = [i for i in report["items"] if i["key"] == "alpha"]
    assert item["kind"] == "waiting" and item["tuning_job_state"] == "TUNING_JOB_STATE_TUNING"
    assert report["summary"]["oldest_active_job"]["state"] == "JOB_STATE_RUNNING"


def test_import_of_a_v1beta1_job_reads_it_through_v1beta1(ws):
    beta(ws, "alpha", extra="  outputUri: gs://bucket/out\n")
    made = ws.emulator.backend.create(PARENT, {
        "baseModel": "gemini-2.5-flash", "outputUri": "gs://bucket/out",
        "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/train.jsonl", "hyperParameters": {"epochCount": 3}}},
        "v1beta1")
    result = ws.run("import", "alpha", made["name"], str(ws.manifests))
    assert result.code == 0, result.err
    assert ws.entry("alpha")["api_version"] == "v1beta1"
    plan = ws.plan("--detailed-exitcode")
    assert plan.code == 0, plan.out  # no labels, no spec hash: compared field by field, outputUri included
