"""`reconciler drift` end to end against a live emulator over HTTP (virtual clock)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import pytest

from reconciler.plan.refresh import LIST_PAGE_SIZE
from reconciler.render.markdown import GITHUB_COMMENT_LIMIT
from reconciler.state.model import State, StateEntry
from reconciler.state.store import StateStore

PROJECT, LOCATION = "demo-project", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "drift-report.schema.json").read_text())
MANAGED = {"managed-by": "tuning-reconciler"}


def drift(ws, *extra: str):
    return ws.run("drift", str(ws.manifests), "--no-color", *extra)


def drift_json(ws, *extra: str, code: int | None = None) -> dict:
    result = drift(ws, "--format", "json", *extra)
    assert result.code in ((0, 2) if code is None else (code,)), result.err
    data = json.loads(result.out)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)  # every report these tests see
    assert data["has_drift"] == (result.code == 2)
    return data


def items(data: dict, category: str | None = None) -> list[tuple[str, str | None]]:
    return [(i["kind"], i["key"]) for i in data["items"]
            if (category is None or i["category"] == category) and i["ignored_by"] is None]


def save_state(ws, entries: list[StateEntry]) -> None:
    store = StateStore(ws.state)
    ws.state.parent.mkdir(parents=True, exist_ok=True)
    with store.lock("test"):
        state = store.load() if store.exists() else State()
        state.entries.update({e.address: e for e in entries})
        store.save(state)


def test_in_sync_world_exits_0(ws):
    ws.job("alpha")
    assert ws.apply().code == 0
    result = drift(ws)
    assert result.code == 0, result.err
    assert result.out.rstrip().endswith("No drift.") and "Summary:" in result.out
    ws.admin.advance(10)  # SUCCEEDED: a finished job is not drift either
    data = drift_json(ws, code=0)
    assert data["items"] == [] and data["summary"]["jobs_by_state"] == {"JOB_STATE_SUCCEEDED": 1}
    (model,) = data["summary"]["tuned_models"]
    assert model["key"] == "alpha" and model["current"] and model["endpoint"].startswith("projects/")
    assert data["summary"]["total_billable_tokens"] > 0


def test_pending_changes_exit_2_with_reasons(ws):
    ws.job("alpha")
    ws.job("beta")
    assert ws.apply().code == 0
    ws.job("alpha", epochs=4)
    ws.job("gamma")
    data = drift_json(ws, code=2)
    assert items(data) == [("replace", "alpha"), ("create", "gamma")]
    alpha = data["items"][0]
    assert alpha["reason"] == "spec-changed" and alpha["source"].endswith("alpha.yaml:1:1")
    assert alpha["field_changes"] == [{"path": "supervisedTuningSpec.hyperParameters.epochCount",
                                       "before": "3", "after": "4"}]
    text = drift(ws)
    assert text.code == 2 and "Pending changes (2):" in text.out
    assert text.out.rstrip().endswith("Drift: 2 pending changes.")


def test_out_of_band_cancelled_failed_and_expired(ws):
    ws.job("alpha")
    ws.job("beta", dataset="gs://bucket/fail.jsonl")
    ws.job("gamma")
    assert ws.apply().code == 0
    ws.admin.set_state(ws.entry("alpha")["job_name"], "JOB_STATE_CANCELLED")
    ws.admin.set_state(ws.entry("gamma")["job_name"], "JOB_STATE_EXPIRED")
    ws.admin.advance(10)  # beta fails on its own, after the apply
    data = drift_json(ws, code=2)
    assert items(data, "out-of-band") == [("cancelled", "alpha"), ("failed", "beta"), ("expired", "gamma")]
    beta = next(i for i in data["items"] if i["key"] == "beta")
    assert beta["detail"].startswith("PENDING -> FAILED since the last apply") and "Failed to create endpoint" in beta[
        "detail"]
    assert ws.apply().code == 0  # the apply records what it saw: no longer news
    assert items(drift_json(ws, code=0)) == []


def test_out_of_band_labels_changed_and_job_gone(ws):
    ws.job("alpha")
    ws.job("beta")
    (by_hand,) = ws.admin.seed(PARENT, count=1, labels={"team": "x"})
    number = by_hand.split("/")[1]
    gone = f"projects/{number}/locations/{LOCATION}/tuningJobs/1234567890123456789"
    # What state looks like when someone stripped our labels from alpha's job, and beta's job vanished.
    save_state(ws, [StateEntry("alpha", PROJECT, LOCATION, by_hand, "h", "JOB_STATE_PENDING"),
                    StateEntry("beta", PROJECT, LOCATION, gone, "h", "JOB_STATE_SUCCEEDED")])
    for extra in ((), ("--include-unmanaged",)):
        data = drift_json(ws, *extra, code=2)
        oob = [i for i in data["items"] if i["category"] == "out-of-band"]
        assert [(i["kind"], i["key"]) for i in oob] == [("labels-changed", "alpha"), ("gone", "beta")]
        assert "managed-by label missing" in oob[0]["detail"] and "(404)" in oob[1]["detail"]
        assert "onMissing" in oob[1]["detail"]
        # Reported, not re-created: a vanished job is no reason to bill again (onMissing: report).
        assert [k for _, k in items(data, "pending-change")] == ["alpha"]
        assert items(data, "unmanaged") == []  # a tracked job with stripped labels is not "made by hand"


def test_orphans_are_state_entries_whose_key_left_the_manifests(ws):
    a = ws.job("alpha")
    b = ws.job("beta")
    ws.job("gamma")
    assert ws.apply().code == 0
    ws.admin.advance(10)
    a.unlink()
    b.unlink()
    data = drift_json(ws, code=2)
    assert items(data) == [("forget", "alpha"), ("forget", "beta")]
    assert {i["category"] for i in data["items"]} == {"orphan"}
    assert "nothing is deleted" in data["items"][0]["detail"]


def test_unmanaged_jobs_need_the_flag_and_one_list_per_location(ws):
    ws.job("alpha")
    assert ws.apply().code == 0
    ws.admin.seed(PARENT, count=3, labels={"owner": "someone"})
    ws.admin.seed("projects/other-project/locations/europe-west4", count=2)  # not ours to look at
    assert items(drift_json(ws, code=0)) == []
    before = ws.admin.stats()["requests"]
    data = drift_json(ws, "--include-unmanaged", code=2)
    after = ws.admin.stats()["requests"]
    assert [k for k, _ in items(data)] == ["unmanaged"] * 3
    assert data["summary"]["unmanaged_jobs_by_state"] == {"JOB_STATE_PENDING": 3}
    assert data["summary"]["jobs_by_state"] == {"JOB_STATE_PENDING": 1}  # alpha, from the same list
    assert after.get("list", 0) - before.get("list", 0) == 1  # one unfiltered list, not two
    assert after.get("get", 0) == before.get("get", 0)
    unmanaged = data["items"][0]
    assert unmanaged["key"] is None and unmanaged["address"] == f"{PROJECT}/{LOCATION}/{unmanaged['job_id']}"


def test_ignore_file_and_lifecycle_ignore_drift(ws):
    ws.job("alpha", lifecycle="ignoreDrift: [out-of-band]\n")
    ws.job("legacy-one")
    assert ws.apply().code == 0
    ws.admin.set_state(ws.entry("alpha")["job_name"], "JOB_STATE_CANCELLED")
    ws.job("legacy-one", epochs=9)
    assert drift(ws).code == 2  # legacy-one's change is not ignored yet
    ignore = ws.root / ".reconcilerignore"
    ignore.write_text("# accepted while we migrate\nlegacy-*   pending-change\n")
    data = drift_json(ws, "--ignore-file", str(ignore), code=0)
    assert data["counts"] == {"pending-change": 0, "out-of-band": 0, "orphan": 0, "unmanaged": 0}
    assert data["ignored_counts"]["pending-change"] == 1 and data["ignored_counts"]["out-of-band"] == 1
    assert {(i["key"], i["ignored_by"]) for i in data["items"]} == {
        ("alpha", "lifecycle.ignoreDrift"), ("legacy-one", f"{ignore}:2")}
    text = drift(ws, "--ignore-file", str(ignore))
    assert text.code == 0 and "No drift (2 ignored)." in text.out and "Ignored (2):" in text.out


def test_ignore_file_in_the_working_directory_is_used_and_bad_lines_are_errors(ws, monkeypatch):
    ws.job("alpha")
    monkeypatch.chdir(ws.root)
    (ws.root / ".reconcilerignore").write_text("alpha pending-change\n")
    assert drift(ws).code == 0
    (ws.root / ".reconcilerignore").write_text("\n\nalpha  pending\n")
    bad = drift(ws)
    assert bad.code == 1 and bad.err.startswith("Error: .reconcilerignore:3:8: unknown drift category 'pending'")
    missing = drift(ws, "--ignore-file", "nope")
    assert missing.code == 1 and "nope: no such ignore file" in missing.err


def test_exit_code_1_on_errors(ws):
    ws.write("broken.yaml", "apiVersion: tuning.reconciler/v1\nkind: TuningJob\nmetadata: {name: Bad_Key}\n")
    result = drift(ws)
    assert result.code == 1 and result.err.startswith("Error:") and "broken.yaml" in result.err
    (ws.manifests / "broken.yaml").unlink()
    ws.job("alpha")
    store = StateStore(ws.state)
    ws.state.parent.mkdir(parents=True, exist_ok=True)
    with store.lock("apply"):
        locked = drift(ws)
    assert locked.code == 1 and "lock" in locked.err.lower()


def test_output_file_and_every_format(ws, tmp_path):
    ws.job("alpha")
    out = tmp_path / "drift.md"
    result = drift(ws, "--format", "markdown", "--output", str(out))
    assert result.code == 2 and result.out == ""
    assert out.read_text().startswith("<!-- tuning-reconciler:drift -->\n### :warning: Drift: 1 pending change.")
    assert "Drift: 1 pending change." in result.err
    github = drift(ws, "--format", "github")
    assert github.code == 2 and github.out.startswith("::warning file=")
    assert "title=Drift%3A Pending changes (create)::alpha" in github.out


def test_two_runs_on_the_same_world_are_identical(ws):
    for key in ("delta", "alpha", "charlie", "bravo"):
        ws.job(key)
    assert ws.apply().code == 0
    ws.admin.seed(PARENT, count=5, labels={"owner": "x{n}"})
    ws.admin.set_state(ws.entry("charlie")["job_name"], "JOB_STATE_FAILED")
    ws.job("echo")
    (ws.manifests / "bravo.yaml").unlink()
    for fmt in ("json", "markdown", "text", "github"):
        first = drift(ws, "--format", fmt, "--include-unmanaged")
        second = drift(ws, "--format", fmt, "--include-unmanaged")
        assert first.code == second.code == 2 and first.out == second.out, fmt
    keys = [i["key"] for i in drift_json(ws)["items"]]
    assert keys == ["echo", "charlie", "bravo"]


@pytest.mark.slow
def test_markdown_of_5000_drifting_jobs_stays_under_the_comment_limit(ws):
    n = 2_500
    names = ws.admin.seed(PARENT, count=n, labels={**MANAGED, "reconciler-key": "job-{n}"},
                          state="JOB_STATE_CANCELLED")
    ws.admin.seed(PARENT, count=n, labels={"owner": "team-{n}"})
    # State remembers them RUNNING, and no manifest declares them: orphans cancelled out of band.
    save_state(ws, [StateEntry(f"job-{i}", PROJECT, LOCATION, name, "h", "JOB_STATE_RUNNING")
                    for i, name in enumerate(names)])
    ws.job("alpha")
    before = ws.admin.stats()["requests"].get("list", 0)
    result = drift(ws, "--format", "markdown", "--include-unmanaged")
    pages = ws.admin.stats()["requests"].get("list", 0) - before
    assert result.code == 2, result.err
    text = result.out
    assert len(text) < GITHUB_COMMENT_LIMIT and len(text.encode()) < GITHUB_COMMENT_LIMIT
    assert text.startswith("<!-- tuning-reconciler:drift -->\n### :warning: Drift: 1 pending change, "
                           "2,500 out-of-band changes, 2,500 orphans, 2,500 unmanaged jobs.")
    assert "#### Pending changes (1)" in text and "#### Out-of-band changes (" in text
    assert "rows were left out" in text and "reconciler drift --format json" in text
    assert pages == math.ceil((2 * n) / LIST_PAGE_SIZE)  # one paginated list, the biggest pages
    full = json.loads(drift(ws, "--format", "json", "--include-unmanaged").out)
    assert len([i for i in full["items"] if i["ignored_by"] is None]) == 7_501
