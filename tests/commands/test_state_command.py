"""`reconciler state list|show|rm` through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.state.model import StateEntry, state_from_json
from reconciler.state.store import StateStore

JOB = "projects/123/locations/{loc}/tuningJobs/{n}"


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "default.json"
    store = StateStore(path)
    with store.lock("test"):
        store.load()
        entries = [
            StateEntry(key="support-bot-sft", project="my-proj", location="us-central1",
                       job_name=JOB.format(loc="us-central1", n=2), spec_hash="abc123",
                       job_state="JOB_STATE_RUNNING", update_time="2026-01-02T03:04:05Z",
                       request_id="req-2", history=[JOB.format(loc="us-central1", n=1)], prevent_cancel=True),
            StateEntry(key="support-bot-sft", project="my-proj", location="europe-west4",
                       job_name=JOB.format(loc="europe-west4", n=7), job_state="JOB_STATE_SUCCEEDED"),
            StateEntry(key="summarizer", project="my-proj", location="us-central1"),
        ]
        for e in entries:
            store.record(e, e.address)
        store.commit()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_text(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "state", "list", "--state", str(state_file))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ADDRESS", "STATE", "JOB"]
    assert [line.split() for line in lines[1:]] == [
        ["my-proj/europe-west4/support-bot-sft", "SUCCEEDED", JOB.format(loc="europe-west4", n=7)],
        ["my-proj/us-central1/summarizer", "-", "-"],
        ["my-proj/us-central1/support-bot-sft", "RUNNING", JOB.format(loc="us-central1", n=2)],
    ]


def test_list_json(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "state", "list", "--json", "--state", str(state_file))
    assert code == 0
    doc = json.loads(out)
    on_disk = state_from_json(state_file.read_text(), "x")
    assert doc["format_version"] == "1"
    assert doc["state"] == {"path": str(state_file), "lineage": on_disk.lineage, "serial": 1}
    assert [e["address"] for e in doc["entries"]] == sorted(on_disk.entries)
    first = doc["entries"][2]
    assert first["history"] == [JOB.format(loc="us-central1", n=1)] and first["request_id"] == "req-2"


def test_list_missing_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    code, out, err = run(capsys, "state", "list", "--state", str(missing))
    assert code == 0 and out == ""
    assert "does not exist yet: no keys are tracked" in err
    code, out, _ = run(capsys, "state", "list", "--json", "--state", str(missing))
    assert json.loads(out)["entries"] == [] and json.loads(out)["state"]["lineage"] is None
    assert not missing.exists()


def test_list_includes_a_running_applys_journal(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = StateStore(state_file)
    with store.lock("apply"):
        store.load()
        e = StateEntry(key="fresh", project="my-proj", location="us-central1", job_name="j")
        store.record(e, e.address)
        code, out, _ = run(capsys, "state", "list", "--state", str(state_file))  # no lock needed
        assert code == 0 and "my-proj/us-central1/fresh" in out
        store.commit()


def test_show_key_in_two_locations(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "state", "show", "support-bot-sft", "--state", str(state_file))
    assert code == 0
    blocks = out.split("\n\n")
    assert blocks[0].splitlines()[0] == "# my-proj/europe-west4/support-bot-sft"
    assert blocks[1].splitlines()[0] == "# my-proj/us-central1/support-bot-sft"
    assert "job_state      = JOB_STATE_RUNNING" in blocks[1]
    assert f"history        = {JOB.format(loc='us-central1', n=1)}" in blocks[1]
    assert "prevent_cancel = true" in blocks[1] and "prevent_cancel = false" in blocks[0]
    assert "spec_hash      = -" in blocks[0]


def test_show_address_json(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "state", "show", "my-proj/us-central1/support-bot-sft", "--json",
                       "--state", str(state_file))
    assert code == 0
    doc = json.loads(out)
    assert doc["format_version"] == "1" and len(doc["entries"]) == 1
    assert doc["entries"][0] == {
        "address": "my-proj/us-central1/support-bot-sft", "key": "support-bot-sft", "project": "my-proj",
        "location": "us-central1", "job_name": JOB.format(loc="us-central1", n=2), "spec_hash": "abc123",
        "job_state": "JOB_STATE_RUNNING", "update_time": "2026-01-02T03:04:05Z", "request_id": "req-2",
        "history": [JOB.format(loc="us-central1", n=1)], "prevent_cancel": True,
    }


def test_show_unknown_key(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "state", "show", "nope", "--state", str(state_file))
    assert code == 1 and out == ""
    assert err.startswith(f"Error: no entry for nope in state file {state_file} (tracked: my-proj/")


def test_rm_removes_bumps_serial_keeps_backup(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = state_file.read_bytes()
    code, out, _ = run(capsys, "state", "rm", "summarizer", "my-proj/europe-west4/support-bot-sft",
                       "--state", str(state_file))
    assert code == 0
    assert out.splitlines() == [
        "Removed my-proj/us-central1/summarizer",
        f"Removed my-proj/europe-west4/support-bot-sft (job {JOB.format(loc='europe-west4', n=7)})",
        f"Removed 2 entries from {state_file} (serial 2). The jobs themselves were not changed.",
    ]
    after = state_from_json(state_file.read_text(), "x")
    assert list(after.entries) == ["my-proj/us-central1/support-bot-sft"] and after.serial == 2
    assert Path(f"{state_file}.backup").read_bytes() == before
    assert not Path(f"{state_file}.lock").exists()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["support-bot-sft"], "support-bot-sft matches several entries (my-proj/europe-west4/support-bot-sft, "
                              "my-proj/us-central1/support-bot-sft); give the full PROJECT/LOCATION/KEY address"),
        (["summarizer", "nope"], "no entry for nope in state file"),
    ],
)
def test_rm_is_all_or_nothing(state_file: Path, capsys: pytest.CaptureFixture[str], keys: list[str],
                              message: str) -> None:
    before = state_file.read_bytes()
    code, out, err = run(capsys, "state", "rm", *keys, "--state", str(state_file))
    assert code == 1 and out == ""
    assert err.startswith("Error: ") and message in err
    assert state_file.read_bytes() == before
    assert not Path(f"{state_file}.lock").exists()


def test_rm_dry_run(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = state_file.read_bytes()
    code, out, _ = run(capsys, "state", "rm", "summarizer", "--dry-run", "--state", str(state_file))
    assert code == 0 and out == "Would remove my-proj/us-central1/summarizer\n"
    assert state_file.read_bytes() == before


def test_rm_missing_state_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "state", "rm", "x", "--state", str(tmp_path / "none.json"))
    assert code == 1 and "does not exist: nothing to remove" in err
    assert list(tmp_path.iterdir()) == []


def test_rm_while_locked_names_the_holder(state_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = state_file.read_bytes()
    with StateStore(state_file).lock("apply") as info:
        code, _, err = run(capsys, "state", "rm", "summarizer", "--state", str(state_file))
    assert code == 1
    assert f"is locked by another reconciler (lock ID {info.id}, pid {info.pid}" in err
    assert state_file.read_bytes() == before


def test_errors_exit_1_without_traceback_in_a_real_process(state_file: Path) -> None:
    state_file.write_text('{"version": 1, "lineage": "x", "serial": 3, "entries": {')  # truncated
    for argv in (["state", "list"], ["state", "show", "k"], ["state", "rm", "k"]):
        proc = subprocess.run([sys.executable, "-m", "reconciler", *argv, "--state", str(state_file)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith(f"Error: state file {state_file}: not valid JSON at line 1 column")
        assert "left unchanged" in proc.stderr and "Traceback" not in proc.stderr
    assert state_file.read_text() == '{"version": 1, "lineage": "x", "serial": 3, "entries": {'
    assert not Path(f"{state_file}.lock").exists()


def test_state_list_in_a_real_process(state_file: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "reconciler", "state", "list", "--state", str(state_file)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "my-proj/us-central1/support-bot-sft   RUNNING    projects/123/" in proc.stdout
