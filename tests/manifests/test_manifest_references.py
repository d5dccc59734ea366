"""References in manifests: accepted by the generated schema where patterns apply, checked
across all files, each problem at the `file:line:col` of the string that holds it."""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler.manifests.loader import check
from reconciler.model import Defaults

DEFAULTS = Defaults("proj", "us-central1")


def doc(key: str, source: str, dataset: str = "gs://bucket/train.jsonl", extra: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: tuning.reconciler/v1
        kind: TuningJob
        metadata:
          name: {key}
        spec:
        """) + textwrap.indent(source, "  ") + (
        f"  supervisedTuningSpec:\n    trainingDatasetUri: {dataset}\n" + textwrap.indent(extra, "  "))


def pre(key: str, output: str = "tunedModel.model") -> str:
    return f"preTunedModel:\n  tunedModelName: ${{jobs.{key}.{output}}}\n"


def problems(tmp_path: Path, files: dict[str, str]) -> list[str]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return [str(p).replace(f"{tmp_path}/", "") for p in check([str(tmp_path)], DEFAULTS).problems]


def test_a_valid_chain_across_files(tmp_path):
    result = problems(tmp_path, {"a.yaml": doc("a", "baseModel: m\n"), "b.yaml": doc("b", pre("a")),
                                 "c.yaml": doc("c", pre("proj/us-central1/b"))})
    assert result == []


def test_the_schema_accepts_references_in_patterned_fields_and_still_checks_plain_values(tmp_path):
    assert problems(tmp_path, {"a.yaml": doc("a", "baseModel: m\n"),
                               "b.yaml": doc("b", "baseModel: m\n", dataset="${jobs.a.name}")}) == []
    assert problems(tmp_path, {"b.yaml": doc("b", "baseModel: m\n", dataset="s3://nope")}) == [
        "b.yaml:8:25: `s3://nope` is not a Cloud Storage URI (`gs://bucket/path.jsonl`) or a Vertex dataset "
        "resource name (`projects/P/locations/L/datasets/ID`)"]
    # Label values stay strict: a reference there is refused by the schema (labels are no fields).
    found = problems(tmp_path, {"b.yaml": doc("b", "baseModel: m\n", extra="labels: {x: '${jobs.a.name}'}\n")})
    assert len(found) == 1 and "label value" in found[0]


def test_every_problem_is_placed_at_its_string(tmp_path):
    found = problems(tmp_path, {
        "a.yaml": doc("a", pre("c")),
        "b.yaml": doc("b", pre("a"), extra="description: \"${jobs.b.name} and ${jobs.nope.name}\"\n"),
        "c.yaml": doc("c", pre("b"), extra="description: ${jobs.a.tunedModel}\n"),
        "d.yaml": doc("d", pre("zzz")),
        "e.yaml": doc("e", "baseModel: m\n", extra="description: \"${env.HOME}\"\n"),
    })
    assert found == [
        "a.yaml:7:21: reference cycle: a -> c -> b -> a (each uses the next one's output, so none of them can "
        "ever start)",
        "b.yaml:7:21: reference cycle: a -> c -> b -> a (each uses the next one's output, so none of them can "
        "ever start)",
        "b.yaml:10:16: `${jobs.b.name}`: a job cannot use its own outputs (they exist only once it has run)",
        "b.yaml:10:16: `${jobs.nope.name}`: no manifest declares a job `nope` (a job that others reference "
        "cannot leave the manifests: remove the references to it first)",
        "c.yaml:7:21: reference cycle: a -> c -> b -> a (each uses the next one's output, so none of them can "
        "ever start)",
        "c.yaml:10:16: `${jobs.a.tunedModel}`: `tunedModel` is not an output of a job (outputs: "
        "`tunedModel.model`, `tunedModel.endpoint`, `name`)",
        "d.yaml:7:21: `${jobs.zzz.tunedModel.model}`: no manifest declares a job `zzz` (a job that others "
        "reference cannot leave the manifests: remove the references to it first)",
        "e.yaml:9:16: `${env.HOME}` is not a reference: write `${jobs.KEY.OUTPUT}` to use another job's "
        "output, or `$${` for a literal `${`",
    ]


def test_a_reference_to_a_document_with_its_own_problems_is_not_reported_as_unknown(tmp_path):
    found = problems(tmp_path, {"a.yaml": doc("a", "baseModel: m\n", dataset="nope"),
                                "b.yaml": doc("b", pre("a"))})
    assert len(found) == 1 and found[0].startswith("a.yaml:8:25:")
