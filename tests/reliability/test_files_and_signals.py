"""Files that are not what they seem and signals CI sends: a FIFO, a directory or a link where
the tool expects a regular file must give a clear error at once (never block, never lose a
write), and SIGTERM must stop apply as Ctrl-C does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.emulator.server import EmulatorConfig, start_emulator
from reconciler.state.model import StateEntry
from reconciler.state.store import StateStore

from .conftest import LOCATION, assert_no_traceback, cli, jobs_by_key, key_counts, subprocess_env, write_manifests

PROJECT = "files-p"
# A blocked read would hang for ever; this only bounds how long the test waits to find out.
HANG = 60


def run_cli(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a subprocess: a read that blocks shows as a timeout, not a hung test run."""
    try:
        return subprocess.run([sys.executable, "-m", "reconciler", *argv], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=HANG)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`reconciler {' '.join(argv)}` blocked for {HANG}s")


@pytest.fixture
def emu():
    emulator = start_emulator(EmulatorConfig(token="files-token", virtual_clock=True))
    yield emulator
    emulator.stop()


def _state_with_alpha(path: Path) -> None:
    store = StateStore(path)
    with store.lock("test"):
        store.load()
        store.record(StateEntry("alpha", PROJECT, LOCATION), f"{PROJECT}/{LOCATION}/alpha")
        store.commit()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["state", "journal", "lock", "backup", "plan", "manifest", "ignore"])
def test_a_fifo_where_a_file_is_expected_is_an_error_not_a_hang(emu, tmp_path, where):
    state = tmp_path / "state" / "default.json"
    state.parent.mkdir()
    write_manifests(tmp_path / "m", ["alpha"], project=PROJECT)
    if where not in ("state", "manifest"):
        _state_with_alpha(state)
    fifo = {"state": state, "journal": Path(f"{state}.journal"), "lock": Path(f"{state}.lock"),
            "backup": Path(f"{state}.backup"), "plan": tmp_path / "saved.plan",
            "manifest": tmp_path / "m" / "more.yaml", "ignore": tmp_path / ".reconcilerignore"}[where]
    os.mkfifo(fifo)
    argv = {"plan": ["apply", "--plan", str(fifo), "--state", str(state)],
            "backup": ["apply", str(tmp_path / "m"), "--auto-approve", "--state", str(state)],
            "ignore": ["drift", str(tmp_path / "m"), "--state", str(state), "--ignore-file", str(fifo)]}.get(
        where, ["plan", str(tmp_path / "m"), "--state", str(state)])
    proc = run_cli([*argv, "--location", LOCATION], subprocess_env(emu.url, emu.token), tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert_no_traceback(proc.stderr)
    assert str(fifo) in proc.stderr and "FIFO" in proc.stderr, proc.stderr
    assert not emu.backend.jobs  # nothing was started
    assert os.path.exists(fifo)  # and nothing was replaced


@pytest.mark.parametrize("kind", ["dangling-link", "fifo", "directory-link-loop", "unreadable-dir"])
def test_an_unreadable_entry_under_a_manifests_directory_stops_plan(emu, env_for, tmp_path, capsys, kind):
    """Left out silently, its job would be planned as removed: cancelled."""
    if kind == "unreadable-dir" and os.geteuid() == 0:
        pytest.skip("root reads every directory")
    env_for(emu)
    state = tmp_path / "s.json"
    common = ["--state", str(state), "--project", PROJECT, "--location", LOCATION, "--no-color"]
    m = write_manifests(tmp_path / "m", ["alpha"])
    (m / "beta.yaml").write_text((m / "jobs.yaml").read_text().replace("alpha", "beta"))
    assert cli(capsys, "apply", str(m), "--auto-approve", *common).code == 0
    # beta's manifest becomes unreadable in place.
    (m / "beta.yaml").unlink()
    entry = m / "beta.yaml"
    if kind == "dangling-link":
        entry.symlink_to(tmp_path / "moved-away.yaml")
    elif kind == "fifo":
        os.mkfifo(entry)
    elif kind == "directory-link-loop":
        entry.symlink_to(entry)
    else:
        (m / "team").mkdir()
        (m / "team" / "beta.yaml").write_text((m / "jobs.yaml").read_text().replace("alpha", "beta"))
        (m / "team").chmod(0)
    try:
        for argv in (["validate", str(m), *common[2:6]], ["plan", str(m), *common],
                     ["apply", str(m), "--auto-approve", *common]):
            run = cli(capsys, *argv)
            assert run.code == 1, (argv, run.text)
            assert_no_traceback(run.text)
            shown = m / "team" if kind == "unreadable-dir" else entry
            assert f"{shown}: " in run.text and "valid" not in run.text.replace("invalid", ""), (argv, run.text)
            assert "cancel" not in run.out
    finally:
        if kind == "unreadable-dir":
            (m / "team").chmod(0o755)
    assert key_counts(jobs_by_key(emu)) == {"alpha": 1, "beta": 1}
    assert {j["state"] for jobs in jobs_by_key(emu).values() for j in jobs} == {"JOB_STATE_PENDING"}


def test_state_path_that_is_a_link_is_written_through(emu, env_for, tmp_path, capsys):
    env_for(emu)
    real = tmp_path / "shared" / "team.json"
    real.parent.mkdir()
    link = tmp_path / "state.json"
    link.symlink_to(real)
    common = ["--state", str(link), "--project", PROJECT, "--location", LOCATION, "--no-color"]
    write_manifests(tmp_path / "m", ["alpha"])
    assert cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common).code == 0
    write_manifests(tmp_path / "m", ["alpha", "beta"])
    assert cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common).code == 0
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link is still a link ...
    assert set(json.loads(real.read_text())["entries"]) == {f"{PROJECT}/{LOCATION}/alpha",
                                                            f"{PROJECT}/{LOCATION}/beta"}  # ... to new content
    assert Path(f"{real}.backup").is_file() and not Path(f"{link}.backup").exists()
    assert not Path(f"{real}.lock").exists() and not Path(f"{link}.lock").exists()
    # A saved plan written through a link lands in its target too.
    plan_target = tmp_path / "plans" / "p.json"
    plan_target.parent.mkdir()
    plan_target.write_text("old")
    (tmp_path / "p.plan").symlink_to(plan_target)
    assert cli(capsys, "plan", str(tmp_path / "m"), "--out", str(tmp_path / "p.plan"), *common).code == 0
    assert (tmp_path / "p.plan").is_symlink() and json.loads(plan_target.read_text())["kind"]


def test_a_backup_path_that_is_a_directory_is_named_and_nothing_is_started(emu, env_for, tmp_path, capsys):
    env_for(emu)
    state = tmp_path / "s.json"
    common = ["--state", str(state), "--project", PROJECT, "--location", LOCATION, "--no-color"]
    write_manifests(tmp_path / "m", ["alpha"])
    assert cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common).code == 0
    before = state.read_bytes()
    Path(f"{state}.backup").unlink(missing_ok=True)  # (no backup yet after a first write)
    Path(f"{state}.backup").mkdir()
    write_manifests(tmp_path / "m", ["alpha", "beta"])
    run = cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common)
    assert run.code == 1 and f"{state}.backup" in run.err and "directory" in run.err, run.text
    assert_no_traceback(run.text)
    assert state.read_bytes() == before
    assert set(jobs_by_key(emu)) == {"alpha"}  # refused before anything was created


@pytest.mark.slow
def test_sigterm_during_apply_is_ctrl_c(tmp_path):
    """SIGTERM (a cancelled CI job) stops apply as Ctrl-C does: nothing new is started, what
    is under way is recorded, the journal is folded, the lock released, exit 143."""
    emulator = start_emulator(EmulatorConfig(token="sigterm-token", virtual_clock=True, latency_ms=200))
    try:
        keys = [f"job-{i:02d}" for i in range(30)]
        write_manifests(tmp_path / "m", keys)
        state = tmp_path / "state" / "default.json"
        argv = ["apply", str(tmp_path / "m"), "--auto-approve", "--no-color", "--state", str(state),
                "--project", PROJECT, "--location", LOCATION, "--parallelism", "2"]
        env = subprocess_env(emulator.url, emulator.token)
        proc = subprocess.Popen([sys.executable, "-m", "reconciler", *argv, "--max-creates-per-minute", "60"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + HANG
        while len(jobs_by_key(emulator)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, "apply ended before it could be terminated"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=HANG)
        assert proc.returncode == 143, out + err
        assert "Terminated." in err and "Error" not in err, err
        assert_no_traceback(err)
        assert not Path(f"{state}.lock").exists() and not Path(f"{state}.journal").exists()
        created = jobs_by_key(emulator)
        assert len(created) < len(keys)  # it stopped starting work
        entries = {e["key"]: e for e in json.loads(state.read_text())["entries"].values()}
        for key, jobs in created.items():  # everything it made is in state: job or request id
            (job,) = jobs
            assert entries[key]["job_name"] == job["name"] or \
                entries[key]["request_id"] == job["labels"]["reconciler-request"]
        # The next apply finishes the rest with one job per key.
        again = subprocess.run([sys.executable, "-m", "reconciler", *argv], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=HANG)
        assert again.returncode == 0, again.stdout + again.stderr
        assert key_counts(jobs_by_key(emulator)) == {k: 1 for k in keys}
    finally:
        emulator.stop()
