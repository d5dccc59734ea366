"""Every benchmark runs end to end in its quick mode, checks what it measured, and writes its
README section, so the scripts cannot rot. (The validate benchmark has its own smoke test.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_quick(script: str, readme: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, f"bench/{script}", "--quick", "--json", "--readme", str(readme)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture
def readme(tmp_path: Path) -> Path:
    copy = tmp_path / "README.md"
    shutil.copy(ROOT / "bench" / "README.md", copy)
    return copy


def section(readme: Path, name: str) -> str:
    text = readme.read_text()
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    return text[text.index(start) + len(start):text.index(end)]


@pytest.mark.slow
def test_refresh_plan_bench(readme: Path) -> None:
    f = run_quick("refresh_plan_bench.py", readme)
    assert f["correct"] and f["jobs"] == 300 and f["plan_exit"] == 0
    assert f["plan_summary"] == f["plan_summary_expected"] == "Plan: 1 to create, 3 to replace, 0 to cancel, 0 to rebase."
    assert f["plan_requests"] == {"list": 1}  # 300 jobs fit one 1,000-job page
    assert f["refresh_requests"] == {"list": 1} and f["refresh_jobs_listed"] == 300
    assert f["naive_requests"] == {"get": 300} and f["naive_jobs_found"] == 300
    assert f["goals_met"]["requests"] and f["goals_met"]["rss"]
    # One list of 300 beats 300 GETs at parallelism 10 with 20 ms each even at this size.
    assert f["naive_refresh_seconds"] > f["refresh_seconds"]
    written = section(readme, "refresh-plan")
    assert "300 managed jobs" in written
    # The README shows the time to 2 decimals, the JSON to 3: compare the numbers, not the
    # strings (rounding twice could turn 1.4045 into "1.41" here and "1.40" there).
    shown = re.search(r"`plan` end to end \(CLI\), nothing cached \| ([0-9.]+) s", written)
    assert shown and abs(float(shown.group(1)) - f["plan_seconds"]) <= 0.0051, written


@pytest.mark.slow
def test_scaling_bench(readme: Path) -> None:
    f = run_quick("scaling_bench.py", readme)
    assert [r["jobs"] for r in f["rows"]] == [50, 200, 800]
    assert all(r["requests"] == 1 and r["plan_seconds"] > 0 for r in f["rows"])
    assert isinstance(f["slope_loglog_all"], float) and len(f["marginal_us_per_job"]) == 2
    assert "| 800 |" in section(readme, "scaling")


@pytest.mark.slow
def test_apply_bench(readme: Path) -> None:
    f = run_quick("apply_bench.py", readme)
    assert f["correct"]
    for run, n in (("serial", 60), ("parallel", 60), ("large", 240)):
        assert f[run]["exit"] == 0 and f[run]["requests"]["create"] == n
        assert f[run]["bytes_per_job"] > 200  # the journal really was written, per action
    assert all(a["duplicates"] == 0 and a["state_matches_jobs"] for a in f["audits"].values())
    assert f["audits"]["big"]["jobs_existing"] == 240
    assert f["faults_audit"] == {"jobs_existing": 20, "keys_with_a_job": 20, "duplicates": 0,
                                 "state_entries": 20, "state_matches_jobs": True}
    assert f["faults_replan"] == "No changes."
    assert sum(f["faults_run"]["faults"].values()) > 0  # faults were injected
    assert f["goals_met"]["bytes_linear"]
    assert "| 240 | 16 |" in section(readme, "apply")


@pytest.mark.slow
def test_emulator_bench(readme: Path) -> None:
    f = run_quick("emulator_bench.py", readme)
    assert f["correct"]
    assert set(f["results"]) == {"get", "list (default page, 50 jobs)", "list (1,000 jobs, plan fields)"}
    for r in f["results"].values():
        assert r["requests"] > 0 and r["errors"] == 0 and r["server_cpu_ms_per_request"] > 0
    assert f["get_capacity_per_second"] > 0
    assert "requests/s" in section(readme, "emulator")


@pytest.mark.slow
def test_startup_bench(readme: Path) -> None:
    f = run_quick("startup_bench.py", readme)
    assert f["runs"] == 5 and 0 < f["python_alone_median_ms"] <= f["help_median_ms"]
    shown = re.search(r"`reconciler --help` \| ([0-9]+) ms", section(readme, "startup"))
    assert shown and abs(int(shown.group(1)) - f["help_median_ms"]) <= 0.51  # shown whole, kept to 0.1


@pytest.mark.slow
def test_graph_bench(readme: Path) -> None:
    f = run_quick("graph_bench.py", readme)
    assert f["correct"] and f["jobs"] == 200 and f["chains"] == 50
    assert f["plan_summaries"] == {"independent": "No changes.", "chains": "No changes."}
    assert f["requests"]["independent"] == f["requests"]["chains"] == {"list": 1}  # references cost no request
    assert f["independent_plan_seconds"] > 0 and f["chains_plan_seconds"] > 0 and f["ratio"] > 0
    written = section(readme, "graph")
    assert "50 chains of 4" in written and f"{f['ratio']:.2f}x" in written


@pytest.mark.slow
def test_gcs_state_bench(readme: Path) -> None:
    f = run_quick("gcs_state_bench.py", readme)
    assert f["correct"] and f["jobs"] == 100
    assert f["plan_gcs_requests"] == {"lock create": 1, "list": 1, "download": 1, "lock delete": 1}
    assert f["plan_local_seconds"] > 0 and f["plan_gcs_seconds"] > 0 and f["plan_naive_copy_then_plan_seconds"] > 0
    assert f["apply_records"] == 200 and f["apply_journal_writes"] < 200 and 1 <= f["apply_state_writes"] <= 4
    assert f["apply_audit"] == {"jobs": 100, "duplicates": 0, "state_entries": 100, "state_matches_jobs": True}
    assert f["goals_met"]["state_writes_per_second"]
    assert "journal writes" in section(readme, "gcs-state")
