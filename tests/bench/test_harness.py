"""The benchmark helpers that compute or write figures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import harness as h  # noqa: E402


def test_slope_of_power_laws() -> None:
    xs = [100, 1_000, 10_000, 50_000]
    assert h.slope_loglog(xs, [3 * x for x in xs]) == pytest.approx(1.0)
    assert h.slope_loglog(xs, [x * x for x in xs]) == pytest.approx(2.0)
    assert h.slope_loglog(xs, [5.0 for _ in xs]) == pytest.approx(0.0)


def test_update_readme_replaces_only_its_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\n<!-- bench:a -->\nold a\n<!-- /bench:a -->\n\n<!-- bench:b -->\nold b\n<!-- /bench:b -->\n")
    h.update_readme("a", "new a with $1 \\1 text", readme)
    text = readme.read_text()
    assert "new a with $1 \\1 text" in text and "old a" not in text and "old b" in text
    h.update_readme("c", "brand new", readme)  # a missing section is appended
    assert readme.read_text().rstrip().endswith("<!-- bench:c -->\nbrand new\n<!-- /bench:c -->")
    h.update_readme("a", "ignored", None)  # smoke runs write nothing
    assert "ignored" not in readme.read_text()


def test_manifest_documents_are_valid_yaml_of_the_spec() -> None:
    doc = yaml.safe_load(h.manifest_document("job-7", h.SPEC))
    assert doc["metadata"] == {"name": "job-7", "project": h.PROJECT, "location": h.LOCATION}
    assert doc["spec"] == h.SPEC and doc["kind"] == "TuningJob"


def test_run_measured_reports_exit_time_and_rss() -> None:
    run = h.run_measured([sys.executable, "-c", "import sys; b = bytearray(50_000_000); print('hi'); sys.exit(3)"])
    assert run.returncode == 3 and run.stdout == "hi\n" and not run.timed_out
    assert run.peak_rss_mb > 50 and run.seconds > 0
    slow = h.run_measured([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert slow.timed_out and slow.seconds < 10
