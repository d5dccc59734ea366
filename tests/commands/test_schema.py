"""`reconciler schema generate [--check]` and `schema refresh-discovery`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.apischema import discovery
from reconciler.apischema import generate as schema_gen
from reconciler.cli import main

GENERATED = sorted([schema_gen.MANIFEST_SCHEMA_FILE, schema_gen.SPEC_SCHEMA_FILE, "tuningjob.v1beta1.schema.json"])


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
    assert sorted(p.name for p in tmp_path.iterdir()) == GENERATED
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (discovery.schemas_dir() / name).read_bytes()
    assert run(capsys, "generate", "--check", "--out", str(tmp_path))[0] == 0
    code, out, _ = run(capsys, "generate", "--out", str(tmp_path))
    assert code == 0 and "already up to date" in out


def test_check_fails_on_a_stale_or_missing_file(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    for name in GENERATED:
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
    for version in ("v1", "v1beta1"):
        doc, source = discovery.load_installed_document(version)
        if source != discovery.load_snapshot(version=version)["x-reconciler-snapshot"]["source"]:
            pytest.skip(f"installed {source} is not the snapshot's source")
    code, out, _ = run(capsys, "refresh-discovery", "--check")
    assert code == 0
    for version in ("v1", "v1beta1"):
        assert f"aiplatform.{version}.tuning.json matches google-api-python-client" in out


def test_refresh_discovery_check_names_a_stale_snapshot(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both versions are covered: a changed v1beta1 snapshot is reported and nothing is written."""
    (tmp_path / "discovery").mkdir()
    for version in ("v1", "v1beta1"):
        shutil.copy(discovery.snapshot_path(version), tmp_path / "discovery" / f"aiplatform.{version}.tuning.json")
    beta = tmp_path / "discovery" / "aiplatform.v1beta1.tuning.json"
    beta.write_text(beta.read_text().replace('"revision": "20261106"', '"revision": "1"'))
    monkeypatch.setattr(discovery, "schemas_dir", lambda: tmp_path)
    code, out, err = run(capsys, "refresh-discovery", "--check")
    assert code == 1
    assert f"{beta} differs from google-api-python-client" in err
    assert '"revision": "1"' in beta.read_text()
