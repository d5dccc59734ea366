"""`reconciler force-unlock LOCK_ID` through the CLI, against locks held by real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.state.lock import read_lock
from reconciler.state.store import StateStore

# Takes the lock and then dies without releasing it (like kill -9 during an apply).
CRASH = r"""
import os, sys
from reconciler.state.store import StateStore
cm = StateStore(sys.argv[1]).lock("apply")
print(cm.__enter__().id, flush=True)
os._exit(0)
"""


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "default.json"


@pytest.fixture
def stale_lock(state_path: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", CRASH, str(state_path)], capture_output=True, text=True,
                          timeout=30, check=True)
    lock_id = proc.stdout.strip()
    assert read_lock(state_path) is not None and read_lock(state_path).id == lock_id  # type: ignore[union-attr]
    return lock_id


@pytest.fixture
def live_lock(state_path: Path) -> Iterator[str]:
    with StateStore(state_path).lock("apply") as info:
        yield info.id


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_force_removes_stale_lock(state_path: Path, stale_lock: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "force-unlock", stale_lock, "--force", "--state", str(state_path))
    assert code == 0
    assert out == f"Lock {stale_lock} on {state_path} removed; the state can be used again.\n"
    assert read_lock(state_path) is None
    with StateStore(state_path).lock("apply"):  # usable again
        pass


def test_wrong_id_is_refused(state_path: Path, stale_lock: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "force-unlock", "0000-wrong", "--force", "--state", str(state_path))
    assert code == 1 and out == ""
    assert err.startswith(f"Error: lock ID 0000-wrong does not match the lock on state file {state_path} "
                          f"(lock ID {stale_lock}, pid ")
    assert read_lock(state_path) is not None


def test_not_locked(state_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "force-unlock", "x", "--force", "--state", str(state_path))
    assert code == 1 and err == f"Error: state file {state_path} is not locked\n"


def test_without_force_and_without_terminal_refuses(state_path: Path, stale_lock: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "reconciler", "force-unlock", stale_lock, "--state",
                           str(state_path)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr == ("Error: refusing to force-unlock without confirmation: not on a terminal "
                           "(use --force)\n")
    assert read_lock(state_path) is not None


@pytest.mark.parametrize(("answer", "removed"), [("yes", True), ("no", False), ("y", False)])
def test_prompt_on_terminal(state_path: Path, stale_lock: str, answer: str, removed: bool) -> None:
    master, slave = os.openpty()
    try:
        os.write(master, answer.encode() + b"\n")
        proc = subprocess.run([sys.executable, "-m", "reconciler", "force-unlock", stale_lock, "--state",
                               str(state_path)], stdin=slave, capture_output=True, text=True, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    assert "The process holding this lock is no longer running." in proc.stdout
    assert "Only 'yes' will be accepted" in proc.stdout
    assert proc.returncode == (0 if removed else 1), proc.stderr
    assert (read_lock(state_path) is None) is removed
    if not removed:
        assert proc.stderr == "force-unlock cancelled.\n"


def test_force_on_live_holder_warns(state_path: Path, live_lock: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "force-unlock", live_lock, "--force", "--state", str(state_path))
    assert code == 0
    assert "WARNING: the process holding this lock is still running" in err
    assert read_lock(state_path) is None
