"""`reconciler jobs` end to end against a live emulator over HTTP."""

from __future__ import annotations

import json

import pytest
import yaml

from reconciler.cli import main
from reconciler.emulator.admin import EmulatorAdmin
from reconciler.render.jobs import job_row, render_table
from reconciler.text import format_duration

PROJECT, LOCATION = "demo-project", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
MANAGED = {"managed-by": "tuning-reconciler"}


def lines(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


def test_table_of_managed_jobs_with_key_state_and_endpoint(ws):
    ws.job("beta")
    ws.job("alpha")
    assert ws.apply().code == 0
    ws.admin.seed(PARENT, count=1, labels={"owner": "someone"})  # made by hand: hidden by default
    result = ws.run("jobs")
    assert result.code == 0, result.err
    header, *rows = result.out.strip().splitlines()
    assert [h.strip() for h in header.split("   ") if h.strip()] == [
        "KEY", "JOB ID", "STATE", "BASE MODEL", "CREATED", "DURATION", "TUNED MODEL ENDPOINT"]
    assert [r.split()[0] for r in rows] == ["alpha", "beta"] and all(" PENDING " in r for r in rows)
    assert rows[0].split()[1] == ws.entry("alpha")["job_name"].rsplit("/", 1)[1]
    assert rows[0].split()[-2:] == ["-", "-"]  # not started: no duration; no endpoint yet
    ws.admin.advance(10)
    done = ws.run("jobs")
    endpoint = [r.split()[-1] for r in done.out.strip().splitlines()[1:]]
    assert all(e.startswith("projects/") and "/endpoints/" in e for e in endpoint)
    assert all(" SUCCEEDED " in r for r in done.out.strip().splitlines()[1:])


def test_all_includes_unmanaged_jobs_and_filter_goes_to_the_api(ws):
    ws.job("alpha")
    assert ws.apply().code == 0
    ws.admin.seed(PARENT, count=2, labels={"owner": "someone"})
    ws.admin.seed(PARENT, count=1, labels={**MANAGED, "reconciler-key": "other"}, state="JOB_STATE_FAILED")
    every = ws.run("jobs", "--all")
    assert [r[0] for r in lines(every.out)[1:]] == ["alpha", "other", "-", "-"]
    before = ws.admin.stats()["requests"].get("list", 0)
    failed = ws.run("jobs", "--filter", "state=JOB_STATE_FAILED")
    assert [r[0] for r in lines(failed.out)[1:]] == ["other"]
    assert ws.admin.stats()["requests"]["list"] - before == 1
    hand = ws.run("jobs", "--all", "--filter", 'labels.owner="someone"')
    assert [r[0] for r in lines(hand.out)[1:]] == ["-", "-"]
    none = ws.run("jobs", "--filter", 'labels.owner="nobody"')
    assert none.code == 0 and none.out == "No tuning jobs found.\n"
    bad = ws.run("jobs", "--filter", "state===")
    assert bad.code == 1 and bad.err.startswith("Error: INVALID_ARGUMENT") and "Traceback" not in bad.err


def test_json_and_yaml_formats(ws):
    ws.job("alpha")
    assert ws.apply().code == 0
    ws.admin.advance(10)
    data = json.loads(ws.run("jobs", "--format", "json").out)
    assert data["format_version"] == "1.0"
    (job,) = data["jobs"]
    assert job["key"] == "alpha" and job["state"] == "JOB_STATE_SUCCEEDED" and job["managed"] is True
    assert job["name"] == ws.entry("alpha")["job_name"] and job["project"] == PROJECT
    assert job["duration_seconds"] > 0 and job["endpoint"] and job["tuned_model"].endswith("@1")
    assert yaml.safe_load(ws.run("jobs", "--format", "yaml").out) == data


def test_parents_come_from_flags_or_the_state_file(ws, monkeypatch):
    ws.job("alpha")
    assert ws.apply().code == 0
    # No --project/--location: the projects+locations the state file tracks.
    from_state = ws.run("jobs", "--state", str(ws.state), state=False)
    assert from_state.code == 0 and lines(from_state.out)[1][0] == "alpha"
    nothing = ws.run("jobs", "--state", str(ws.root / "none.json"), state=False)
    assert nothing.code == 1 and "pass --project and --location" in nothing.err
    half = ws.run("jobs", "--project", PROJECT, "--state", str(ws.root / "none.json"), state=False)
    assert half.code == 1 and "both a project and a location" in half.err


def test_watch_refreshes_until_every_job_has_finished(emulator_factory, monkeypatch, capsys, tmp_path):
    running = emulator_factory(job_duration=0.4)  # real clock: jobs finish on their own
    monkeypatch.setenv("RECONCILER_ENDPOINT", running.url)
    monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", running.token)
    with EmulatorAdmin(running.url, running.token) as admin:
        admin.seed(PARENT, count=2, labels={**MANAGED, "reconciler-key": "k{n}"})
        code = main(["jobs", "--watch", "--interval", "0.05", "--project", PROJECT, "--location", LOCATION,
                     "--state", str(tmp_path / "none.json"), "--format", "json"])
        assert code == 0
        refreshes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(refreshes) >= 2  # one JSON document per change
        first, last = refreshes[0]["jobs"], refreshes[-1]["jobs"]
        assert {j["state"] for j in first} & {"JOB_STATE_PENDING", "JOB_STATE_RUNNING"}
        assert {j["state"] for j in last} == {"JOB_STATE_SUCCEEDED"}
        assert all(a != b for a, b in zip(refreshes, refreshes[1:]))  # only changes are printed
        table = main(["jobs", "--watch", "--project", PROJECT, "--location", LOCATION,
                      "--state", str(tmp_path / "none.json")])  # all finished: one table, no waiting
        assert table == 0 and capsys.readouterr().out.count("KEY") == 1


def test_bad_interval_is_refused(ws):
    result = ws.run("jobs", "--watch", "--interval", "0")
    assert result.code == 1 and "--interval must be a positive" in result.err


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (0, "0s"), (59.9, "59s"), (192, "3m12s"),
                                               (7500, "2h5m"), (3 * 86400 + 4 * 3600 + 5, "3d4h")])
def test_durations_read_like_kubectl(seconds, text):
    assert format_duration(seconds) == text


def test_rows_strip_terminal_escapes_and_duration_runs_to_now():
    raw = {"name": "projects/1/locations/l/tuningJobs/7", "state": "JOB_STATE_RUNNING", "baseModel": "m\x1b[2J",
           "createTime": "2026-01-01T00:00:00Z", "startTime": "2026-01-01T00:00:10Z",
           "labels": {**MANAGED, "reconciler-key": "k"}}
    row = job_row(raw, "p", "l", now=1767225610.0 + 90)  # 2026-01-01T00:00:10Z + 90 s
    assert row.duration_seconds == pytest.approx(90) and row.key == "k"
    text = render_table([row])
    assert "\x1b" not in text and "m?[2J" in text and "1m30s" in text
