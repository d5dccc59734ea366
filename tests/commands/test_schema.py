"""`reconciler schema generate [--check]` and `schema refresh-discovery`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.apischema import discovery
from reconciler.apischema import generate as schema_gen
from reconciler.cli import main


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["schema", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_checked_in_schemas_are_up_to_date(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "generate", "--check")
    assert code == 0, err
    assert "up to date (discovery revision 20261106)" in out


def test_generate_writes_then_check_passes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "generate", "--out", str(tmp_path))
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [schema_gen.MANIFEST_SCHEMA_FILE,
                                                          schema_gen.SPEC_SCHEMA_FILE]
    for name in (schema_gen.MANIFEST_SCHEMA_FILE, schema_gen.SPEC_SCHEMA_FILE):
        assert (tmp_path / name).read_bytes() == (discovery.schemas_dir() / name).read_bytes()
    assert run(capsys, "generate", "--check", "--out", str(tmp_path))[0] == 0
    code, out, _ = run(capsys, "generate", "--out", str(tmp_path))
    assert code == 0 and "already up to date" in out


def test_check_fails_on_a_stale_or_missing_file(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    for name in (schema_gen.MANIFEST_SCHEMA_FILE, schema_gen.SPEC_SCHEMA_FILE):
        shutil.copy(discovery.schemas_dir() / name, tmp_path / name)
    spec = tmp_path / schema_gen.SPEC_SCHEMA_FILE
    spec.write_text(spec.read_text().replace('"baseModel"', '"baseModelX"', 1))
    code, _, err = run(capsys, "generate", "--check", "--out", str(tmp_path))
    assert code == 1
    assert err == f"{spec} is out of date; run `reconciler schema generate`\n"
    (tmp_path / schema_gen.MANIFEST_SCHEMA_FILE).unlink()
    code, _, err = run(capsys, "generate", "--check", "--out", str(tmp_path))
    assert code == 1 and len(err.splitlines()) == 2
    # --check wrote nothing
    assert not (tmp_path / schema_gen.MANIFEST_SCHEMA_FILE).exists()


def test_refresh_discovery_check(capsys: pytest.CaptureFixture) -> None:
    doc, source = discovery.load_installed_document()
    if source != discovery.load_snapshot()["x-reconciler-snapshot"]["source"]:
        pytest.skip(f"installed {source} is not the snapshot's source")
    code, out, _ = run(capsys, "refresh-discovery", "--check")
    assert code == 0 and "matches google-api-python-client" in out
