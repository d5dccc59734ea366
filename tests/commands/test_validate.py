"""`reconciler validate` through the real CLI: output formats, summary, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
apiVersion: tuning.reconciler/v1
kind: TuningJob
metadata:
  name: {name}
spec:
  baseModel: gemini-2.5-flash
  supervisedTuningSpec:
    trainingDatasetUri: gs://my-bucket/train.jsonl
"""


@pytest.fixture(autouse=True)
def _no_ambient_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a.yaml").write_text(GOOD.format(name="a") + "---\n" + GOOD.format(name="b"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yml").write_text(GOOD.format(name="c"))
    return tmp_path


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_tree(tree: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, str(tree), "--project", "p-1", "--location", "us-central1")
    assert (code, out, err) == (0, "3 documents in 2 files are valid.\n", "")


def test_environment_supplies_the_target(tree: Path, capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-east1")
    assert run(capsys, str(tree))[0] == 0


def test_errors_in_text_format(tree: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tree / "sub" / "c.yml"
    bad.write_text(GOOD.format(name="c").replace("trainingDatasetUri", "trainingDatasetUrl"))
    code, out, err = run(capsys, str(tree), "--project", "p-1")
    a = tree / "a.yaml"
    assert code == 1 and err == ""
    assert out.splitlines() == [
        f"{a}:3:1: no location for `a`: set `metadata.location`, pass --location, "
        "or set $GOOGLE_CLOUD_LOCATION",
        f"{a}:12:1: no location for `b`: set `metadata.location`, pass --location, "
        "or set $GOOGLE_CLOUD_LOCATION",
        f"{bad}:3:1: no location for `c`: set `metadata.location`, pass --location, "
        "or set $GOOGLE_CLOUD_LOCATION",
        f"{bad}:8:5: unknown field `spec.supervisedTuningSpec.trainingDatasetUrl`; "
        "did you mean `trainingDatasetUri`?",
        "4 errors in 2 of 2 files (3 documents).",
    ]


def test_json_format(tree: Path, capsys: pytest.CaptureFixture) -> None:
    (tree / "a.yaml").write_text(GOOD.format(name="a").replace("name: a", "name: A"))
    code, out, _ = run(capsys, str(tree), "--format", "json", "--project", "p",
                       "--location", "l")
    doc = json.loads(out)
    assert code == 1
    assert doc == {"format_version": "1", "valid": False, "files": 2, "documents": 2,
                   "problems": [{"file": str(tree / "a.yaml"), "line": 4, "column": 9,
                                 "path": "metadata.name",
                                 "message": "`A` is not a valid name: 1-63 characters of "
                                            "lowercase letters, digits and `-`, starting with a "
                                            "letter and not ending with `-`"}]}


def test_github_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "x,y.yaml"
    f.write_text(GOOD.format(name="a").replace("baseModel", "baseModle"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    code, out, _ = run(capsys, str(tmp_path), "--format", "github", "--project", "p",
                       "--location", "l")
    escaped = str(tmp_path).replace(":", "%3A").replace(",", "%2C")
    assert code == 1
    assert out.splitlines() == [
        f"::error file={escaped}/empty.yaml::no YAML documents in file (empty)",
        f"::error file={escaped}/x%2Cy.yaml,line=6,col=3::unknown field `spec.baseModle`; "
        "did you mean `baseModel`?",
        "2 errors in 2 of 2 files (1 document).",
    ]


def test_no_manifests(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 1
    assert out.splitlines() == [
        f"{tmp_path}: no manifests here: no .yaml or .yml files in this directory or below it",
        "1 error; no manifest files found.",
    ]


def test_hostile_input_as_a_real_process(tmp_path: Path) -> None:
    """No traceback and a clean exit 1, end to end in a separate interpreter."""
    (tmp_path / "blob.yaml").write_bytes(b"\x00\x01\x02")
    (tmp_path / "tabs.yaml").write_text("a:\n\tb: 1\n")
    (tmp_path / "bomb.yaml").write_text(
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
            for p, c in zip("abcdefgh", "bcdefghi")))
    proc = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{tmp_path}/blob.yaml: binary file (contains NUL bytes), not YAML text"
    assert lines[1].startswith(f"{tmp_path}/bomb.yaml:")
    assert "billion laughs" in lines[1]
    assert lines[2] == (f"{tmp_path}/tabs.yaml:2:1: tab character in indentation or before a "
                        "value: YAML indents with spaces only")
    assert lines[3] == "3 errors in 3 of 3 files (1 document)."
