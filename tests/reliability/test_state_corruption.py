"""A damaged state file (truncated, corrupted, another lineage, a newer version): every
command refuses it with a clear error naming the file and its backup, touches nothing, and
starts no job."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reconciler.plan.planfile import load_plan

from .conftest import LOCATION, assert_no_traceback, cli, write_manifests

PROJECT = "corrupt-p"


@pytest.fixture
def applied(emulator_factory, env_for, capsys, tmp_path):
    """Two applies (so a backup exists) of three keys; returns (emulator, common args)."""
    emulator = emulator_factory(virtual_clock=True)
    env_for(emulator)
    common = ["--state", str(tmp_path / "state" / "default.json"), "--project", PROJECT,
              "--location", LOCATION, "--no-color"]
    write_manifests(tmp_path / "m", ["a", "b"])
    assert cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common).code == 0
    write_manifests(tmp_path / "m", ["a", "b", "c"])
    assert cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common).code == 0
    # One more key in the manifests: any command that wrongly went ahead would create it.
    write_manifests(tmp_path / "m", ["a", "b", "c", "d"])
    return emulator, common


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused_everywhere(capsys, tmp_path, emulator, common, expect: str) -> None:
    state = tmp_path / "state" / "default.json"
    files = [state, Path(f"{state}.backup")]
    before = {p: _digest(p) for p in files}
    jobs = len(emulator.backend.jobs)
    for argv in (["plan", str(tmp_path / "m")], ["apply", str(tmp_path / "m"), "--auto-approve"],
                 ["drift", str(tmp_path / "m")], ["state", "list"]):
        args = argv + (common if argv[0] != "state" else ["--state", str(state)])
        run = cli(capsys, *args)
        assert run.code == 1, (argv, run.text)
        assert_no_traceback(run.text)
        assert run.err.startswith("Error: ") and str(state) in run.err and expect in run.err, (argv, run.err)
        assert f"The previous version is in {state}.backup" in run.err, run.err
    assert {p: _digest(p) for p in files} == before  # untouched, backup included
    assert len(emulator.backend.jobs) == jobs  # nothing started
    assert not Path(f"{state}.journal").exists()


@pytest.mark.parametrize("cut", [0.0, 0.1, 0.33, 0.5, 0.77, 0.95])
def test_truncated_state_file_is_refused(applied, capsys, tmp_path, cut):
    emulator, common = applied
    state = tmp_path / "state" / "default.json"
    data = state.read_bytes()
    state.write_bytes(data[: int(len(data) * cut)])
    _refused_everywhere(capsys, tmp_path, emulator, common, "empty" if cut == 0.0 else "not valid JSON")


@pytest.mark.parametrize("damage, expect", [
    (lambda b: b[:40] + b"\x00" * 64 + b[104:], "not valid JSON"),   # a zeroed block
    (lambda b: b"\xff\xfe" + b[2:], "not UTF-8"),                     # binary junk
    (lambda b: b.replace(b'"entries": {', b'"entries": [', 1), "not valid JSON"),
    (lambda b: json.dumps({**json.loads(b), "entries": []}).encode(), "entries: expected an object"),
    (lambda b: json.dumps({**json.loads(b), "serial": "7"}).encode(), "serial: expected an integer"),
    (lambda b: b.replace(b'"job_name": "projects/', b'"job_name": 7, "x": "projects/', 1), "unknown field(s) x"),
])
def test_corrupted_state_file_is_refused(applied, capsys, tmp_path, damage, expect):
    emulator, common = applied
    state = tmp_path / "state" / "default.json"
    state.write_bytes(damage(state.read_bytes()))
    _refused_everywhere(capsys, tmp_path, emulator, common, expect)


def test_state_from_a_newer_version_is_refused(applied, capsys, tmp_path):
    emulator, common = applied
    state = tmp_path / "state" / "default.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "version": 99}))
    _refused_everywhere(capsys, tmp_path, emulator, common, "written by a newer version")


def test_journal_of_another_lineage_is_refused(applied, capsys, tmp_path):
    emulator, common = applied
    state = tmp_path / "state" / "default.json"
    journal = Path(f"{state}.journal")
    entry = {"key": "x", "project": PROJECT, "location": LOCATION, "job_name": None}
    journal.write_text(json.dumps({"journal": 1, "lineage": "someone-else", "serial": 2}) + "\n"
                       + json.dumps({"address": f"{PROJECT}/{LOCATION}/x", "entry": entry}) + "\n")
    before = (_digest(state), _digest(journal))
    jobs = len(emulator.backend.jobs)
    run = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common)
    assert run.code == 1 and "belongs to state lineage someone-else" in run.err, run.text
    assert (_digest(state), _digest(journal)) == before and len(emulator.backend.jobs) == jobs


def test_saved_plan_of_another_lineage_is_refused(applied, capsys, tmp_path):
    emulator, common = applied
    plan_file = tmp_path / "other.plan"
    assert cli(capsys, "plan", str(tmp_path / "m"), "--out", str(plan_file), *common).code == 0
    state = tmp_path / "state" / "default.json"
    # Another state (a new lineage) where the plan is applied: refused, nothing created.
    other = ["--state", str(tmp_path / "other" / "state.json"), *common[2:]]
    assert cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", "--target", "a", *other).code == 0
    jobs = len(emulator.backend.jobs)
    before = _digest(tmp_path / "other" / "state.json")
    run = cli(capsys, "apply", str(plan_file), *other)
    assert run.code == 1 and "was made for another state (lineage" in run.err, run.text
    assert load_plan(plan_file).lineage == json.loads(state.read_text())["lineage"]
    assert _digest(tmp_path / "other" / "state.json") == before and len(emulator.backend.jobs) == jobs


def test_torn_journal_tail_is_ignored_and_a_corrupt_middle_refused(applied, capsys, tmp_path):
    emulator, common = applied
    state = tmp_path / "state" / "default.json"
    journal = Path(f"{state}.journal")
    serial = json.loads(state.read_text())["serial"]
    lineage = json.loads(state.read_text())["lineage"]
    header = json.dumps({"journal": 1, "lineage": lineage, "serial": serial}) + "\n"
    journal.write_text(header + '{"address": "corrupt-p/us-central1/a", "ent')  # killed mid-append
    assert cli(capsys, "plan", str(tmp_path / "m"), *common).code == 0
    assert not journal.exists()  # folded (nothing in it) and removed under the lock
    journal.write_text(header + "garbage\n" + json.dumps({"address": "corrupt-p/us-central1/a", "entry": None}) + "\n")
    before = (_digest(state), _digest(journal))
    run = cli(capsys, "plan", str(tmp_path / "m"), *common)
    assert run.code == 1 and f"state journal {journal}:2: corrupt line" in run.err, run.text
    assert (_digest(state), _digest(journal)) == before
