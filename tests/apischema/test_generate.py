"""The generator: each rule on a small synthetic document, then on the real snapshot."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.apischema import discovery, generated
from reconciler.apischema import generate as schema_gen
from reconciler.apischema import overlay as schema_overlay
from reconciler.model import RESERVED_LABELS

TJ = "GoogleCloudAiplatformV1TuningJob"


def _defs_validator(schema: dict[str, Any], name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]})


# --- each rule on a synthetic document -------------------------------------------------

def _synthetic() -> dict[str, Any]:
    """The smallest discovery document the generator and overlay accept, plus one message
    (`Thing`) exercising every rule."""
    s = lambda **kw: kw  # noqa: E731
    return {
        "revision": "1",
        "schemas": {
            TJ: s(type="object", properties={
                "baseModel": s(type="string"),
                "labels": s(type="object", additionalProperties=s(type="string")),
                "state": s(type="string", readOnly=True, enum=["A"]),
                "createTime": s(type="string", format="google-datetime",
                                description="Output only. When."),
                "thing": s(**{"$ref": "Thing"}),
                "preTunedModel": s(**{"$ref": "GoogleCloudAiplatformV1PreTunedModel"}),
                "supervisedTuningSpec": s(
                    **{"$ref": "GoogleCloudAiplatformV1SupervisedTuningSpec"}),
                "preferenceOptimizationSpec": s(
                    **{"$ref": "GoogleCloudAiplatformV1PreferenceOptimizationSpec"}),
            }),
            "Thing": s(type="object", description="A thing.", properties={
                "name": s(type="string", description="Required. The name."),
                "count": s(type="string", format="int64"),
                "big": s(type="string", format="uint64"),
                "small": s(type="integer", format="int32"),
                "ratio": s(type="number", format="double"),
                "at": s(type="string", format="google-datetime"),
                "ttl": s(type="string", format="google-duration"),
                "blob": s(type="string", format="byte"),
                "anything": s(type="any"),
                "size": s(type="string", enum=["S", "M"], enumDescriptions=["small", "medium"]),
                "tags": s(type="array", items=s(type="string")),
                "left": s(type="string", description="Mutually exclusive with `right_side`."),
                "rightSide": s(type="string"),
                "ghost": s(type="string", description="Mutually exclusive with `no_such`."),
                "child": s(**{"$ref": "Thing"}),  # recursive
                "old": s(type="boolean", deprecated=True),
            }),
            "GoogleCloudAiplatformV1PreTunedModel": s(type="object", properties={
                "tunedModelName": s(type="string")}),
            "GoogleCloudAiplatformV1SupervisedTuningSpec": s(type="object", properties={
                "trainingDatasetUri": s(type="string", description="Required. Data."),
                "validationDatasetUri": s(type="string")}),
            "GoogleCloudAiplatformV1PreferenceOptimizationSpec": s(type="object", properties={
                "trainingDatasetUri": s(type="string", description="Required. Data."),
                "validationDatasetUri": s(type="string")}),
            "GoogleCloudAiplatformV1RebaseTunedModelRequest": s(type="object", properties={
                "tunedModelRef": s(**{"$ref": "GoogleCloudAiplatformV1TunedModelRef"}),
                "tuningJob": s(**{"$ref": TJ})}),
            "GoogleCloudAiplatformV1TunedModelRef": s(type="object", properties={
                "tuningJob": s(type="string"), "tunedModel": s(type="string"),
                "pipelineJob": s(type="string")}),
            "Unreachable": s(type="object", properties={"x": s(type="string")}),
        },
    }


@pytest.fixture(scope="module")
def synthetic() -> dict[str, Any]:
    return schema_gen.generate({"v1": _synthetic()})[schema_gen.SPEC_SCHEMA_FILE]


def test_output_only_fields_are_left_out_and_listed(synthetic: dict) -> None:
    tj = synthetic["$defs"][TJ]
    assert "state" not in tj["properties"] and "createTime" not in tj["properties"]
    assert tj["x-outputOnly"] == ["createTime", "state"]
    assert synthetic["x-outputOnlyPaths"] == ["createTime", "state"]


def test_required_enum_and_unknown_fields(synthetic: dict) -> None:
    thing = synthetic["$defs"]["Thing"]
    assert thing["required"] == ["name"]
    assert thing["additionalProperties"] is False
    assert thing["properties"]["size"]["enum"] == ["S", "M"]
    assert thing["properties"]["size"]["enumDescriptions"] == ["small", "medium"]
    assert thing["properties"]["old"]["deprecated"] is True
    assert thing["properties"]["anything"] == {}
    assert "Unreachable" not in synthetic["$defs"]


@pytest.mark.parametrize(("field", "good", "bad"), [
    ("count", ["3", 3, "-9223372036854775808"], ["three", 3.5, "1" * 20, True]),
    ("big", ["18446744073709551615", 0], ["-1", -1]),
    ("small", [2**31 - 1], [2**31, "1"]),
    ("ratio", [0.5, 1], ["0.5"]),
    ("at", ["2024-10-08T23:20:13.040864Z", "2024-10-08T23:20:13+02:00"],
     ["2024-10-08", "yesterday"]),
    ("ttl", ["3.5s", "10s"], ["10", "1m"]),
    ("blob", ["aGVsbG8=", "aGk"], ["not base64!"]),
    ("tags", [["a"], []], ["a", [1]]),
])
def test_formats(synthetic: dict, field: str, good: list, bad: list) -> None:
    v = _defs_validator(synthetic, "Thing")
    for value in good:
        assert v.is_valid({"name": "n", field: value}), (field, value)
    for value in bad:
        assert not v.is_valid({"name": "n", field: value}), (field, value)


def test_mutually_exclusive_becomes_a_constraint(synthetic: dict) -> None:
    thing = synthetic["$defs"]["Thing"]
    assert thing["allOf"] == [{"not": {"required": ["left", "rightSide"]}}]  # `no_such`: absent
    v = _defs_validator(synthetic, "Thing")
    assert v.is_valid({"name": "n", "left": "a"})
    assert not v.is_valid({"name": "n", "left": "a", "rightSide": "b"})


def test_recursive_refs_become_defs(synthetic: dict) -> None:
    assert synthetic["$defs"]["Thing"]["properties"]["child"]["$ref"] == "#/$defs/Thing"
    v = _defs_validator(synthetic, "Thing")
    assert v.is_valid({"name": "a", "child": {"name": "b", "child": {"name": "c"}}})
    assert not v.is_valid({"name": "a", "child": {"child": {}}})


def test_generation_is_pure_and_deterministic() -> None:
    doc = _synthetic()
    before = copy.deepcopy(doc)
    first = schema_gen.rendered({"v1": doc})
    assert doc == before
    assert schema_gen.rendered({"v1": copy.deepcopy(doc)}) == first
    for text in first.values():
        assert text.endswith("}\n")


# --- the real snapshot ------------------------------------------------------------------

@pytest.fixture(scope="module")
def real() -> dict[str, dict]:
    return schema_gen.generate(discovery.load_snapshots())


BETA_SPEC = "tuningjob.v1beta1.schema.json"


def test_files_on_disk_are_what_the_generator_writes(real: dict) -> None:
    assert schema_gen.stale_files(discovery.schemas_dir(), discovery.load_snapshots()) == []
    assert sorted(real) == sorted([schema_gen.MANIFEST_SCHEMA_FILE, schema_gen.SPEC_SCHEMA_FILE, BETA_SPEC])
    assert generated.spec_schema() == real[schema_gen.SPEC_SCHEMA_FILE]
    assert generated.spec_schema("v1beta1") == real[BETA_SPEC]
    assert generated.manifest_schema() == real[schema_gen.MANIFEST_SCHEMA_FILE]


def test_schemas_are_valid_2020_12(real: dict) -> None:
    for schema in real.values():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_real_output_only_and_required(real: dict) -> None:
    defs = real[schema_gen.SPEC_SCHEMA_FILE]["$defs"]
    tj = defs[TJ]
    for field in ("name", "state", "createTime", "updateTime", "error", "tunedModel",
                  "tuningDataStats", "experiment"):
        assert field not in tj["properties"] and field in tj["x-outputOnly"]
    assert "baseModel" not in defs["GoogleCloudAiplatformV1PreTunedModel"]["properties"]
    assert defs["GoogleCloudAiplatformV1SupervisedTuningSpec"]["required"] == ["trainingDatasetUri"]
    assert defs["GoogleCloudAiplatformV1EncryptionSpec"]["required"] == ["kmsKeyName"]
    assert "GoogleCloudAiplatformV1TuningDataStats" not in defs  # reachable only via output-only
    assert {"createTime", "preTunedModel.baseModel", "tunedModel"} <= set(generated.spec_schema()["x-outputOnlyPaths"])


def test_every_real_message_rejects_unknown_fields(real: dict) -> None:
    for name, schema in real[schema_gen.SPEC_SCHEMA_FILE]["$defs"].items():
        if "properties" in schema:
            assert schema["additionalProperties"] is False, name


def test_real_formats_and_enums(real: dict) -> None:
    defs = real[schema_gen.SPEC_SCHEMA_FILE]["$defs"]
    hp = defs["GoogleCloudAiplatformV1SupervisedHyperParameters"]["properties"]
    assert hp["epochCount"]["type"] == ["integer", "string"]
    assert hp["learningRateMultiplier"]["type"] == "number"
    assert "ADAPTER_SIZE_FOUR" in hp["adapterSize"]["enum"]
    assert len(hp["adapterSize"]["enum"]) == len(hp["adapterSize"]["enumDescriptions"])
    # "Mutually exclusive with `learning_rate`": no such field in v1, so no constraint...
    assert "allOf" not in defs["GoogleCloudAiplatformV1SupervisedHyperParameters"]
    # ...while SpeechConfig's two voice configs do exclude each other.
    assert {"not": {"required": ["multiSpeakerVoiceConfig", "voiceConfig"]}} in \
        defs["GoogleCloudAiplatformV1SpeechConfig"]["allOf"]


def test_overlay_tuned_model_ref_is_a_union(real: dict) -> None:
    v = _defs_validator(real[schema_gen.SPEC_SCHEMA_FILE],
                        "GoogleCloudAiplatformV1RebaseTunedModelRequest")
    assert v.is_valid({"tunedModelRef": {"tuningJob": "projects/1/locations/l/tuningJobs/2"}})
    assert not v.is_valid({"tunedModelRef": {}})
    assert not v.is_valid({"tunedModelRef": {"tuningJob": "a", "tunedModel": "b"}})
    # A rebase's `tuningJob` is partial: no tuning-spec union there.
    assert v.is_valid({"tunedModelRef": {"tunedModel": "m"},
                       "tuningJob": {"baseModel": "gemini-2.5-flash"}})


def test_overlay_spec_unions_and_labels(real: dict) -> None:
    v = Draft202012Validator(real[schema_gen.SPEC_SCHEMA_FILE])
    sft = {"trainingDatasetUri": "gs://bucket/train.jsonl"}
    assert v.is_valid({"baseModel": "m", "supervisedTuningSpec": sft})
    assert not v.is_valid({"baseModel": "m"})
    assert not v.is_valid({"baseModel": "m", "supervisedTuningSpec": sft,
                           "preferenceOptimizationSpec": sft})
    assert not v.is_valid({"supervisedTuningSpec": sft})
    assert v.is_valid({"preTunedModel": {"tunedModelName": "x"}, "supervisedTuningSpec": sft})
    ok = {"baseModel": "m", "supervisedTuningSpec": sft}
    for reserved in RESERVED_LABELS:
        assert not v.is_valid({**ok, "labels": {reserved: "x"}})
    limit = schema_overlay.MAX_LABELS - len(RESERVED_LABELS)
    assert v.is_valid({**ok, "labels": {f"k{i}": "v" for i in range(limit)}})
    assert not v.is_valid({**ok, "labels": {f"k{i}": "v" for i in range(limit + 1)}})
    for bad in ({"Team": "x"}, {"1team": "x"}, {"k" * 64: "x"}, {"team": "X"},
                {"team": "v" * 64}, {"team": "a b"}):
        assert not v.is_valid({**ok, "labels": bad}), bad
    assert v.is_valid({**ok, "labels": {"k" * 63: "v" * 63, "cost_center": "", "a-b": "1_2"}})


@pytest.mark.parametrize(("spec", "uri", "valid"), [
    ("supervisedTuningSpec", "gs://my-bucket/a/b.jsonl", True),
    ("supervisedTuningSpec", "projects/p/locations/us-central1/datasets/123", True),
    ("supervisedTuningSpec", "https://example.com/x.jsonl", False),
    ("supervisedTuningSpec", "gs://my-bucket", False),
    ("supervisedTuningSpec", "/tmp/train.jsonl", False),
    ("preferenceOptimizationSpec", "gs://my-bucket/p.jsonl", True),
    ("preferenceOptimizationSpec", "projects/p/locations/l/datasets/1", False),
])
def test_overlay_dataset_uris(real: dict, spec: str, uri: str, valid: bool) -> None:
    v = Draft202012Validator(real[schema_gen.SPEC_SCHEMA_FILE])
    assert v.is_valid({"baseModel": "m", spec: {"trainingDatasetUri": uri}}) is valid
    assert v.is_valid({"baseModel": "m", spec: {"trainingDatasetUri": "gs://my-bucket/t.jsonl",
                                                  "validationDatasetUri": uri}}) is valid


def test_manifest_schema_envelope(real: dict) -> None:
    m = real[schema_gen.MANIFEST_SCHEMA_FILE]
    refs = set(discovery._refs(m))
    assert refs and all(r.startswith("#/$defs/") for r in refs)  # self-contained
    assert {r.removeprefix("#/$defs/") for r in refs} <= set(m["$defs"])
    v = Draft202012Validator(m)
    doc = {"apiVersion": "tuning.reconciler/v1", "kind": "TuningJob",
           "metadata": {"name": "job-a", "project": "p-1", "location": "us-central1"},
           "spec": {"baseModel": "m", "supervisedTuningSpec": {
               "trainingDatasetUri": "gs://bucket/t.jsonl"}},
           "lifecycle": {"onSpecChange": "wait", "onFailure": "recreate",
                         "onBaseModelChange": "rebase", "preventCancel": True,
                         "ignoreDrift": ["labels.team"]}}
    assert v.is_valid(doc)
    for path, value in [(("apiVersion",), "v2"), (("kind",), "Job"),
                        (("metadata", "name"), "Bad_Name"), (("metadata", "name"), "a-"),
                        (("lifecycle", "onSpecChange"), "destroy"),
                        (("lifecycle", "onFailure"), "ignore"),
                        (("lifecycle", "onBaseModelChange"), "keep"),
                        (("lifecycle", "preventCancel"), "yes"),
                        (("lifecycle", "ignoreDrift"), ["a", "a"]),
                        (("lifecycle", "surprise"), 1), (("extra",), 1)]:
        bad = copy.deepcopy(doc)
        target = bad
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        assert not v.is_valid(bad), path
    lifecycle = m["properties"]["lifecycle"]["properties"]
    assert lifecycle["onSpecChange"]["enum"] == ["replace", "wait", "fail"]
    assert lifecycle["onSpecChange"]["default"] == "replace"


def test_loaders_are_cached() -> None:
    assert generated.spec_schema() is generated.spec_schema()
    assert generated.manifest_schema() is generated.manifest_schema()


# --- v1beta1 --------------------------------------------------------------------------------

BETA_SPECS = ("supervisedTuningSpec", "preferenceOptimizationSpec", "distillationSpec", "reinforcementTuningSpec",
              "fullFineTuningSpec", "partnerModelTuningSpec", "veoTuningSpec", "veoLoraTuningSpec")


def test_v1beta1_spec_has_its_own_fields_and_output_only_ones(real: dict) -> None:
    defs = real[BETA_SPEC]["$defs"]
    tj = defs["GoogleCloudAiplatformV1beta1TuningJob"]
    for field in (*BETA_SPECS, "customBaseModel", "outputUri"):
        assert field in tj["properties"], field
    for field in ("tuningJobState", "tuningJobMetadata", "pipelineJob", "gcsMetricsUri", "satisfiesPzs"):
        assert field in tj["x-outputOnly"] and field not in tj["properties"]
    assert not any(name.startswith("GoogleCloudAiplatformV1") and not name.startswith("GoogleCloudAiplatformV1beta1")
                   for name in defs)
    # "Mutually exclusive with `learning_rate_multiplier`": both exist in v1beta1.
    hp = defs["GoogleCloudAiplatformV1beta1SupervisedHyperParameters"]
    assert {"not": {"required": ["learningRate", "learningRateMultiplier"]}} in hp["allOf"]


def test_v1beta1_unions(real: dict) -> None:
    v = Draft202012Validator(real[BETA_SPEC])
    for spec in BETA_SPECS:
        body = {"baseModel": "m", spec: {"trainingDatasetUri": "gs://bucket/t.jsonl"}}
        if spec == "distillationSpec":
            body = {"baseModel": "m", spec: {"promptDatasetUri": "gs://bucket/t.jsonl"}}
        assert v.is_valid(body), spec
    sft = {"trainingDatasetUri": "gs://bucket/t.jsonl"}
    assert not v.is_valid({"baseModel": "m"})  # no tuning spec
    assert not v.is_valid({"baseModel": "m", "supervisedTuningSpec": sft, "veoTuningSpec": sft})
    assert not v.is_valid({"baseModel": "m", "preTunedModel": {"tunedModelName": "x"}, "supervisedTuningSpec": sft})
    assert v.is_valid({"baseModel": "m", "customBaseModel": "gs://bucket/w", "supervisedTuningSpec": sft})
    # customBaseModel is not in the source-model union, but it needs baseModel.
    assert not v.is_valid({"preTunedModel": {"tunedModelName": "x"}, "customBaseModel": "gs://bucket/w",
                           "supervisedTuningSpec": sft})


def test_manifest_schema_branches_on_api_version(real: dict) -> None:
    v = Draft202012Validator(real[schema_gen.MANIFEST_SCHEMA_FILE])
    envelope = {"kind": "TuningJob", "metadata": {"name": "job-a"}}
    beta = {"baseModel": "m", "outputUri": "gs://bucket/out",
            "distillationSpec": {"promptDatasetUri": "gs://bucket/p.jsonl"}}
    assert v.is_valid({**envelope, "apiVersion": "tuning.reconciler/v1beta1", "spec": beta})
    assert not v.is_valid({**envelope, "apiVersion": "tuning.reconciler/v1", "spec": beta})
    sft = {"baseModel": "m", "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/t.jsonl"}}
    for version in ("tuning.reconciler/v1", "tuning.reconciler/v1beta1"):
        assert v.is_valid({**envelope, "apiVersion": version, "spec": sft})
        assert not v.is_valid({**envelope, "apiVersion": version, "spec": {"baseModel": "m"}})
    api = real[schema_gen.MANIFEST_SCHEMA_FILE]["properties"]["apiVersion"]
    assert api["enum"] == ["tuning.reconciler/v1", "tuning.reconciler/v1beta1"]
