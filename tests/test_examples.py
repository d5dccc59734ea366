"""The example manifests: each valid, editor-ready, and covering the documented cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.manifests import loader as manifest
from reconciler.manifests import yaml_reader

EXAMPLES = Path(__file__).resolve().parents[1] / "manifests" / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))
SCHEMA_COMMENT = "# yaml-language-server: $schema=../../schemas/manifest.schema.json"


def test_there_are_examples() -> None:
    assert len(FILES) >= 5


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_is_valid_and_points_editors_at_the_schema(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_COMMENT
    assert (path.parent / "../../schemas/manifest.schema.json").resolve().is_file()
    result = manifest.check([str(path)])
    assert result.problems == []
    assert result.jobs


def test_examples_cover_the_documented_cases() -> None:
    jobs = {(j.key, j.location): j for j in manifest.load_desired([str(EXAMPLES)])}
    specs = [j.spec for j in jobs.values()]
    minimal = jobs[("support-bot-sft", "us-central1")].spec
    assert set(minimal) == {"baseModel", "supervisedTuningSpec"}
    full = jobs[("claims-triage-sft", "us-central1")].spec
    sft = full["supervisedTuningSpec"]
    assert {"validationDatasetUri", "hyperParameters", "evaluationConfig"} <= set(sft)
    assert "kmsKeyName" in full["encryptionSpec"]
    assert any("preferenceOptimizationSpec" in s for s in specs)
    continued = jobs[("support-bot-continued", "us-central1")]
    assert "preTunedModel" in continued.spec and "baseModel" not in continued.spec
    assert continued.lifecycle.on_base_model_change == "rebase"
    multi = yaml_reader.parse_text((EXAMPLES / "multi-document.yaml").read_text(), "multi-document.yaml")
    assert len(multi.documents) >= 3
    # The same key in two locations is two jobs.
    assert ("faq-bot-en", "us-central1") in jobs and ("faq-bot-en", "europe-west4") in jobs


BETA_SPECS = {"supervisedTuningSpec", "preferenceOptimizationSpec", "distillationSpec", "reinforcementTuningSpec",
              "fullFineTuningSpec", "partnerModelTuningSpec", "veoTuningSpec", "veoLoraTuningSpec"}


def test_one_v1beta1_example_per_tuning_spec() -> None:
    beta = [j for j in manifest.load_desired([str(EXAMPLES)]) if j.api_version == "v1beta1"]
    used = [next(k for k in j.spec if k in BETA_SPECS) for j in beta]
    assert sorted(used) == sorted(BETA_SPECS)  # each spec once
    for path in EXAMPLES.glob("v1beta1-*.yaml"):
        assert "apiVersion: tuning.reconciler/v1beta1" in path.read_text(encoding="utf-8")
    assert all(j.api_version == "v1" for j in manifest.load_desired([str(EXAMPLES)])
               if not j.source.file.rsplit("/", 1)[-1].startswith("v1beta1-"))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("v1beta1-*.yaml")), ids=lambda p: p.name)
def test_v1beta1_examples_need_v1beta1(path: Path, tmp_path: Path) -> None:
    """Each uses something v1 does not have; as v1 it is refused, naming the apiVersion to use."""
    text = path.read_text(encoding="utf-8").replace("tuning.reconciler/v1beta1", "tuning.reconciler/v1")
    (tmp_path / path.name).write_text(text, encoding="utf-8")
    result = manifest.check([str(tmp_path / path.name)])
    assert result.problems and not result.jobs
    assert any("apiVersion: tuning.reconciler/v1beta1" in p.message for p in result.problems)
