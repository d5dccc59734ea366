"""The validate benchmark runs end to end in its small mode and reports sane figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_validate_bench_quick() -> None:
    proc = subprocess.run([sys.executable, "bench/validate_bench.py", "--quick", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["documents"] == 200 and figures["problems"] == 0
    assert figures["validate_cli_exit"] == 0
    assert figures["validate_cli_summary"] == "200 documents in 4 files are valid."
    assert figures["naive_documents_timed"] == 10 and figures["naive_total_extrapolated"]
    # Even at this size the naive way (schema check + new validator per document) is slower.
    assert figures["naive_seconds_total"] > figures["validate_in_process_seconds"]
