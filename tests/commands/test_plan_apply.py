"""End to end through the CLI against a live emulator over HTTP (virtual clock)."""

from __future__ import annotations

import json

import pytest

from reconciler.state.model import StateEntry
from reconciler.state.store import StateStore

PROJECT, LOCATION = "demo-project", "us-central1"

PARENT = f"projects/{PROJECT}/locations/{LOCATION}"


def live_jobs(ws) -> list[dict]:
    from reconciler.api.client import ClientOptions, TuningClient

    with TuningClient(ClientOptions(endpoint=ws.emulator.url, access_token=ws.emulator.token)) as client:
        return list(client.list_jobs(PARENT))


def test_create_then_replan_shows_no_changes(ws):
    ws.job("alpha")
    ws.job("beta", epochs=5)
    plan = ws.plan("--detailed-exitcode")
    assert plan.code == 2, plan.err
    assert "  # alpha (demo-project/us-central1) will be created" in plan.out
    assert "Plan: 2 to create, 0 to replace, 0 to cancel, 0 to rebase." in plan.out

    applied = ws.apply()
    assert applied.code == 0, applied.err
    assert "alpha: creating..." in applied.out and "alpha: created projects/" in applied.out
    assert "Apply complete! Jobs: 2 created" in applied.out
    jobs = live_jobs(ws)
    assert len(jobs) == 2
    labels = {j["labels"]["reconciler-key"]: j["labels"] for j in jobs}
    assert labels["alpha"]["managed-by"] == "tuning-reconciler" and len(labels["alpha"]["reconciler-spec"]) == 16
    entry = ws.entry("alpha")
    assert entry["job_name"].startswith("projects/") and "/tuningJobs/" in entry["job_name"]
    assert not entry["job_name"].startswith(PARENT)  # names carry the project number

    again = ws.plan("--detailed-exitcode")
    assert again.code == 0 and again.out.strip().endswith("No changes.")
    ws.admin.advance(10)  # SUCCEEDED; server fills hyperparameter defaults it chose
    assert ws.plan("--detailed-exitcode").code == 0


def test_spec_change_while_running_replaces_cancelling_the_old_job(ws):
    ws.job("alpha")
    assert ws.apply().code == 0
    ws.admin.advance(0.5)
    old = ws.entry("alpha")["job_name"]
    ws.job("alpha", epochs=4)
    plan = ws.plan()
    assert "-/+ alpha" in plan.out
    assert 'supervisedTuningSpec.hyperParameters.epochCount: "3" -> "4"' in plan.out
    assert "cancel the active job, then create" in plan.out
    applied = ws.apply()
    assert applied.code == 0, applied.err
    entry = ws.entry("alpha")
    assert entry["job_name"] != old and entry["history"] == [old]
    states = {j["name"]: j["state"] for j in live_jobs(ws)}
    assert states[old] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")
    assert ws.plan("--detailed-exitcode").code == 0


def test_spec_change_after_success_replaces_and_keeps_history(ws):
    ws.job("alpha")
    ws.apply()
    ws.admin.advance(10)
    old = ws.entry("alpha")["job_name"]
    ws.job("alpha", extra_spec="description: second try\n")
    plan = ws.plan()
    assert "old one stays as history" in plan.out and '~ description: (unset) -> "second try"' in plan.out
    assert ws.apply().code == 0
    states = {j["name"]: j["state"] for j in live_jobs(ws)}
    assert states[old] == "JOB_STATE_SUCCEEDED" and len(states) == 2


def test_failed_job_is_reported_or_recreated(ws):
    ws.job("alpha", dataset="gs://bucket/fail.jsonl")
    ws.apply()
    ws.admin.advance(10)
    plan = ws.plan("--detailed-exitcode")
    assert plan.code == 0
    assert "alpha: job FAILED at" in plan.out and "onFailure=report" in plan.out
    ws.job("alpha", dataset="gs://bucket/fail.jsonl", lifecycle="onFailure: recreate\n")
    plan = ws.plan("--detailed-exitcode")
    assert plan.code == 2 and "onFailure=recreate" in plan.out
    assert ws.apply().code == 0
    assert len(ws.entry("alpha")["history"]) == 1


def test_out_of_band_cancel_is_reported(ws):
    ws.job("alpha")
    ws.apply()
    ws.admin.set_state(ws.entry("alpha")["job_name"], "JOB_STATE_CANCELLED")
    plan = ws.plan("--detailed-exitcode")
    assert plan.code == 0 and "job CANCELLED" in plan.out and "onFailure=report" in plan.out
    refresh = ws.plan("--refresh-only")
    assert "alpha: PENDING -> CANCELLED" in refresh.out


def wait_for_state(ws, key: str, state: str, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {j["name"]: j["state"] for j in live_jobs(ws)}
        if jobs.get(ws.entry(key)["job_name"]) == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"{key} did not reach {state}")


@pytest.mark.slow
def test_rebase_onto_newer_base_model(ws, emulator_factory, monkeypatch):
    # The rebase operation finishes when the new job runs: this test needs a clock that moves.
    ws.emulator = emulator_factory(job_duration=0.4)
    monkeypatch.setenv("RECONCILER_ENDPOINT", ws.emulator.url)
    ws.job("alpha", lifecycle="onBaseModelChange: rebase\n")
    ws.apply()
    wait_for_state(ws, "alpha", "JOB_STATE_SUCCEEDED")
    old = ws.entry("alpha")["job_name"]
    path = ws.manifests / "alpha.yaml"
    path.write_text(path.read_text().replace("gemini-2.5-flash", "gemini-2.5-pro"))
    plan = ws.plan()
    assert "~ alpha" in plan.out and "onBaseModelChange=rebase" in plan.out
    assert "Plan: 0 to create, 0 to replace, 0 to cancel, 1 to rebase." in plan.out
    applied = ws.apply()
    assert applied.code == 0, applied.err
    assert "rebased onto gemini-2.5-pro" in applied.out
    entry = ws.entry("alpha")
    assert entry["history"] == [old] and entry["job_name"] != old
    assert ws.plan("--detailed-exitcode").code == 0


def test_removed_key_cancels_running_and_forgets_finished(ws):
    a, b = ws.job("alpha"), ws.job("beta")
    ws.job("keeper")  # an empty manifest directory is refused, never read as "cancel everything"
    ws.apply()
    ws.admin.advance(0.5)
    a.unlink()
    plan = ws.plan()
    assert "  - alpha" in plan.out and "will be cancelled" in plan.out
    assert ws.apply().code == 0
    assert "demo-project/us-central1/alpha" not in ws.state_json()["entries"]
    ws.admin.advance(10)
    b.unlink()
    plan = ws.plan()
    assert "will no longer be tracked" in plan.out and "forgetting it (nothing is deleted)" in plan.out
    assert ws.apply().code == 0
    assert list(ws.state_json()["entries"]) == [f"{PROJECT}/{LOCATION}/keeper"]
    assert len(live_jobs(ws)) == 3  # nothing can be deleted


def test_prevent_cancel_refuses_the_plan(ws):
    ws.job("keeper")
    ws.job("alpha", lifecycle="preventCancel: true\n")
    ws.apply()
    ws.job("alpha", epochs=9, lifecycle="preventCancel: true\n")
    plan = ws.plan()
    assert plan.code == 1 and "preventCancel is true" in plan.out
    (ws.manifests / "alpha.yaml").unlink()
    plan = ws.plan()
    assert plan.code == 1 and "lifecycle.preventCancel" in plan.out
    assert ws.apply().code == 1


def test_saved_plan_is_applied_and_refused_when_stale(ws):
    ws.job("alpha")
    planfile = ws.root / "plan.json"
    assert ws.plan("--out", str(planfile)).code == 0
    shown = ws.run("show", str(planfile), "--no-color", state=False)
    assert "will be created" in shown.out
    applied = ws.run("apply", str(planfile), "--no-color")
    assert applied.code == 0, applied.err
    again = ws.run("apply", str(planfile))  # state moved on since: the plan was made before any state
    assert again.code == 1
    assert again.err.startswith("Error: Saved plan is stale: ")
    assert f"state {ws.state} was written since" in again.err
    assert "alpha: planned create, now no-op" in again.err and again.err.rstrip().endswith("Run plan again.")
    assert len(live_jobs(ws)) == 1  # nothing was created a second time
    ws.job("alpha", epochs=7)
    assert ws.plan("--out", str(planfile)).code == 0
    ws.admin.advance(0.5)  # the job changes (PENDING -> RUNNING) after the plan was saved
    stale = ws.run("apply", str(planfile))
    assert stale.code == 1 and "Saved plan is stale" in stale.err and "run plan again" in stale.err.lower()
    assert f"alpha: job {ws.entry('alpha')['job_name']} changed since the plan (updateTime " in stale.err


def test_saved_plan_from_another_lineage_is_refused(ws):
    ws.job("alpha")
    ws.apply()
    planfile = ws.root / "plan.json"
    ws.job("alpha", epochs=8)
    ws.plan("--out", str(planfile))
    data = json.loads(planfile.read_text())
    data["lineage"] = "00000000-0000-0000-0000-000000000000"
    planfile.write_text(json.dumps(data))
    result = ws.run("apply", str(planfile))
    assert result.code == 1 and "another state" in result.err


def test_crash_between_create_and_state_write_is_healed_by_adoption(ws):
    ws.job("alpha")
    # What a crashed apply leaves: the create reached the service, state never heard of it.
    body = {"baseModel": "gemini-2.5-flash",
            "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/train.jsonl",
                                     "hyperParameters": {"epochCount": "3"}}}
    from reconciler.api.client import ClientOptions, TuningClient
    from reconciler.apischema.normalize import spec_hash

    body["labels"] = {"managed-by": "tuning-reconciler", "reconciler-key": "alpha",
                      "reconciler-spec": spec_hash(body)}
    with TuningClient(ClientOptions(endpoint=ws.emulator.url, access_token=ws.emulator.token)) as client:
        created = client.create_job(PARENT, body, request_id="lost-request")
    plan = ws.plan()
    assert "will be adopted into state" in plan.out and "labelled job found that state does not know" in plan.out
    assert ws.apply().code == 0
    assert ws.entry("alpha")["job_name"] == created["name"]
    assert len(live_jobs(ws)) == 1
    assert ws.plan("--detailed-exitcode").code == 0


def test_import_adopts_a_job_made_by_hand(ws):
    ws.job("alpha")
    (name,) = ws.admin.seed(PARENT, count=1, spec={
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/train.jsonl",
                                 "hyperParameters": {"epochCount": "3"}}})
    result = ws.run("import", "alpha", name, str(ws.manifests))
    assert result.code == 0, result.err
    assert ws.entry("alpha")["job_name"] == name
    assert ws.plan("--detailed-exitcode").code == 0
    again = ws.run("import", "alpha", name, str(ws.manifests))
    assert again.code == 1 and "already tracks" in again.err
    missing = ws.run("import", "nope", name, str(ws.manifests))
    assert missing.code == 1 and "no manifest declares key 'nope'" in missing.err


def test_target_limits_plan_and_apply(ws):
    ws.job("alpha")
    ws.job("beta")
    plan = ws.plan("--target", "beta")
    assert "beta" in plan.out and "alpha" not in plan.out
    assert ws.apply("--target", "beta").code == 0
    assert list(ws.state_json()["entries"]) == [f"{PROJECT}/{LOCATION}/beta"]


def test_json_plan_is_stable_and_versioned(ws):
    ws.job("alpha")
    data = ws.plan_json()
    assert data["format_version"] == "1.0" and data["has_changes"] is True
    (change,) = data["changes"]
    assert change["action"] == "create" and change["reason"] == "new-key" and change["key"] == "alpha"
    assert change["after"]["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": "3"}
    assert data["summary"]["create"] == 1
    assert ws.plan_json() == data


def test_second_apply_fails_at_once_while_state_is_locked(ws):
    ws.job("alpha")
    store = StateStore(ws.state)
    with store.lock("apply"):
        result = ws.apply()
    assert result.code == 1
    assert "lock" in result.err.lower() and "pid" in result.err.lower()


def test_apply_refuses_without_a_terminal_or_approval(ws, monkeypatch):
    import io

    ws.job("alpha")
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    result = ws.run("apply", str(ws.manifests))
    assert result.code == 1 and "--auto-approve" in result.err
    assert live_jobs(ws) == []


def test_apply_wait_follows_jobs_until_they_finish(ws, emulator_factory, monkeypatch):
    fast = emulator_factory(job_duration=0.6)
    monkeypatch.setenv("RECONCILER_ENDPOINT", fast.url)
    ws.job("alpha")
    ws.job("broken", dataset="gs://bucket/fail.jsonl")
    result = ws.apply("--wait", "--poll-interval", "0.2")
    assert result.code == 1  # one job failed
    assert "alpha: SUCCEEDED -> endpoint projects/" in result.out
    assert "broken: FAILED" in result.out
    assert ws.entry("alpha")["job_state"] == "JOB_STATE_SUCCEEDED"


def test_journal_left_by_a_crash_is_folded_on_next_run(ws):
    ws.job("alpha")
    ws.apply()
    store = StateStore(ws.state)
    with store.lock("test"):
        state = store.load()
        entry = state.entries[f"{PROJECT}/{LOCATION}/alpha"]
        store.record(StateEntry(**{**entry.__dict__, "job_state": "JOB_STATE_RUNNING"}), entry.address)
        # no commit: as if the process died here
    assert ws.plan("--detailed-exitcode").code == 0
    assert ws.entry("alpha")["job_state"] == "JOB_STATE_RUNNING"


def test_plan_as_markdown_for_a_pull_request_comment(ws):
    ws.job("alpha")
    result = ws.plan("--format", "markdown", "--detailed-exitcode")
    assert result.code == 2
    assert "alpha" in result.out and "create" in result.out and "|" in result.out
    assert "\x1b[" not in result.out
