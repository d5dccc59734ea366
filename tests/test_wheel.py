"""The wheel ships every generated schema and both discovery snapshots, and an installed copy
(no checkout beside it) validates v1 and v1beta1 manifests from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_the_schemas_of_both_versions(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                            str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"reconciler/schemas/{p.relative_to(ROOT / 'schemas').as_posix()}"
                for p in (ROOT / "schemas").rglob("*.json")}
    assert {"reconciler/schemas/tuningjob.v1beta1.schema.json",
            "reconciler/schemas/discovery/aiplatform.v1beta1.tuning.json"} <= expected
    assert expected <= names
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for example in ("minimal-supervised.yaml", "v1beta1-distillation.yaml", "v1beta1-veo-lora.yaml"):
        shutil.copy(ROOT / "manifests" / "examples" / example, manifests / example)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    run = subprocess.run([sys.executable, "-c", "import reconciler, sys; from reconciler.cli import main; "
                          "assert reconciler.__file__.startswith(sys.argv[1]); sys.exit(main(['validate', sys.argv[2]]))",
                          str(installed), str(manifests)], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "3 documents in 3 files are valid." in run.stdout
