"""`reconciler demo`: the whole loop against an embedded emulator, as `make demo` runs it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from reconciler.cli import main


@pytest.mark.slow
def test_demo_runs_the_whole_loop_and_keeps_its_files(capsys):
    assert main(["demo", "--no-color", "--job-duration", "1"]) == 0
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("==> reconciler ")]
    assert [s.split()[2] for s in steps][:2] == ["validate", "plan"]
    # every example: 7 jobs through v1, 8 through v1beta1 (one per v1beta1 tuning spec)
    assert "Plan: 15 to create, 0 to replace, 0 to cancel, 0 to rebase." in out
    assert "Apply complete! Jobs: 15 created" in out
    assert re.search(r"^faq-distilled: SUCCEEDED -> endpoint projects/", out, re.M)
    assert "No changes." in out
    assert "Plan: 0 to create, 1 to replace, 0 to cancel, 0 to rebase." in out
    # a key in two locations is always named with its location
    assert "faq-bot-en (europe-west4): created projects/" in out
    assert re.search(r"^faq-bot-en \(us-central1\): SUCCEEDED -> endpoint projects/", out, re.M)
    kept = Path(re.search(r"are kept in (\S+) ", out).group(1))
    try:
        assert (kept / "state" / "default.json").is_file() and (kept / "tfplan.json").is_file()
        assert (kept / "state" / "default.json").stat().st_mode & 0o777 == 0o600
    finally:
        shutil.rmtree(kept, ignore_errors=True)


@pytest.mark.slow
def test_demo_clean_removes_its_working_directory(capsys):
    assert main(["demo", "--no-color", "--job-duration", "1", "--clean"]) == 0
    out = capsys.readouterr().out
    state = Path(re.search(r"^State file: (\S+)$", out, re.M).group(1))
    assert not state.exists() and "working directory was removed" in out
