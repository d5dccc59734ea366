"""Schema errors explained: field paths, positions, suggestions, output-only, one-of groups."""

from __future__ import annotations

import copy
import textwrap

import pytest
from jsonschema import Draft202012Validator

from reconciler.apischema.generated import manifest_schema as load_manifest_schema
from reconciler.manifests import validation, yaml_reader
from reconciler.manifests.validation import Problem

HEAD = """\
apiVersion: tuning.reconciler/v1
kind: TuningJob
metadata:
  name: job-a
  project: my-project
  location: us-central1
spec:
"""


def check(spec_yaml: str, tail: str = "") -> list[str]:
    """Problems (as `line:col: message`) of one document whose spec is `spec_yaml`."""
    text = HEAD + textwrap.indent(textwrap.dedent(spec_yaml), "  ") + textwrap.dedent(tail)
    parsed = yaml_reader.parse_text(text, "m.yaml")
    assert not parsed.problems
    (doc,) = parsed.documents
    found = doc.problems + validation.check_document(doc.data, "m.yaml", doc.values, doc.keys)
    return [str(p).removeprefix("m.yaml:") for p in found]


SFT = "supervisedTuningSpec:\n  trainingDatasetUri: gs://my-bucket/train.jsonl\n"


def test_valid_spec_has_no_problems() -> None:
    assert check("baseModel: gemini-2.5-flash\n" + SFT) == []


def test_misspelt_field_suggests_the_right_one_and_is_not_also_missing() -> None:
    assert check("""\
        baseModel: gemini-2.5-flash
        supervisedTuningSpec:
          trainingDatasetUrl: gs://my-bucket/train.jsonl
        """) == ["10:5: unknown field `spec.supervisedTuningSpec.trainingDatasetUrl`; "
                 "did you mean `trainingDatasetUri`?"]
    assert check("baseModle: gemini-2.5-flash\n" + SFT) == [
        "8:3: unknown field `spec.baseModle`; did you mean `baseModel`?"]


def test_unknown_field_without_a_near_match_lists_the_fields() -> None:
    assert check("baseModel: m\n" + SFT + "preTunedModel: {zzz: 1}\n", "") == [
        "11:3: `spec` may set only one of `baseModel`, `preTunedModel`, but sets `baseModel` "
        "and `preTunedModel`",
        "11:19: unknown field `spec.preTunedModel.zzz`; expected one of: `checkpointId`, "
        "`tunedModelName`"]


def test_output_only_fields_say_so() -> None:
    assert check("baseModel: m\nstate: JOB_STATE_RUNNING\n" + SFT +
                 "preTunedModel: {baseModel: x, tunedModelName: y}\n") == [
        "9:3: `spec.state` is output-only: the service sets it; remove it from the manifest",
        "12:3: `spec` may set only one of `baseModel`, `preTunedModel`, but sets `baseModel` "
        "and `preTunedModel`",
        "12:19: `spec.preTunedModel.baseModel` is output-only: the service sets it; remove it "
        "from the manifest"]


def test_missing_required_field() -> None:
    assert check("baseModel: m\nsupervisedTuningSpec: {validationDatasetUri: "
                 "'gs://my-bucket/v.jsonl'}\n") == [
        "9:3: missing required field `spec.supervisedTuningSpec.trainingDatasetUri`"]
    assert check("baseModel: m\n" + SFT + "encryptionSpec: {}\n") == [
        "11:3: missing required field `spec.encryptionSpec.kmsKeyName`"]


def test_exactly_one_tuning_spec() -> None:
    assert check("baseModel: m\n") == [
        "7:1: `spec` needs exactly one of `supervisedTuningSpec`, "
        "`preferenceOptimizationSpec`; none is set"]
    assert check("baseModel: m\n" + SFT + SFT.replace("supervisedTuningSpec",
                                                      "preferenceOptimizationSpec")) == [
        "11:3: `spec` may set only one of `supervisedTuningSpec`, `preferenceOptimizationSpec`, "
        "but sets `supervisedTuningSpec` and `preferenceOptimizationSpec`"]


def test_enum_with_suggestion() -> None:
    assert check("baseModel: m\n" + SFT + "  hyperParameters: {adapterSize: ADAPTER_SIZE_FOR}\n"
                 ) == ["11:36: `ADAPTER_SIZE_FOR` is not a valid value for "
                       "`spec.supervisedTuningSpec.hyperParameters.adapterSize`; did you mean "
                       "`ADAPTER_SIZE_FOUR`? (expected one of `ADAPTER_SIZE_UNSPECIFIED`, "
                       "`ADAPTER_SIZE_ONE`, `ADAPTER_SIZE_TWO`, `ADAPTER_SIZE_FOUR`, "
                       "`ADAPTER_SIZE_EIGHT`, `ADAPTER_SIZE_SIXTEEN`, `ADAPTER_SIZE_THIRTY_TWO`)"]


def test_types_and_int64() -> None:
    found = check("baseModel: m\n" + SFT +
                  "  hyperParameters: {epochCount: three, learningRateMultiplier: high}\n"
                  "tunedModelDisplayName: 42\n")
    assert found == [
        "11:35: `spec.supervisedTuningSpec.hyperParameters.epochCount`: `three` does not match "
        "`^-?[0-9]{1,19}$`",
        "11:66: `spec.supervisedTuningSpec.hyperParameters.learningRateMultiplier` must be a "
        "number, not a string",
        "12:26: `spec.tunedModelDisplayName` must be a string, not an integer (YAML read it as "
        "such; quote it to make it a string)"]
    assert check("baseModel: m\n" + SFT + "  hyperParameters: {epochCount: 3}\n") == []
    assert check("baseModel: m\n" + SFT + "  hyperParameters: {epochCount: '3'}\n") == []


def test_label_rules() -> None:
    found = check("baseModel: m\n" + SFT + "labels:\n  managed-by: me\n  Team: x\n"
                  "  env: Prod\n  ok: fine\n")
    assert found == [
        "12:5: label `managed-by` is reserved for the tool's own use (reserved: managed-by, "
        "reconciler-key, reconciler-request, reconciler-spec)",
        "13:5: label key `Team` is invalid: keys are 1-63 characters of lowercase letters, "
        "digits, `_` and `-`, starting with a letter",
        "14:10: label value `Prod` is invalid: values are up to 63 characters of lowercase "
        "letters, digits, `_` and `-`"]
    many = "".join(f"  k{i}: v\n" for i in range(61))
    assert check("baseModel: m\n" + SFT + "labels:\n" + many) == [
        "11:3: at most 60 labels are allowed: the tool adds its own 4 (managed-by, "
        "reconciler-key, reconciler-request, reconciler-spec) and Google allows 64"]


def test_dataset_uri_rule() -> None:
    assert check("baseModel: m\nsupervisedTuningSpec: {trainingDatasetUri: /data/t.jsonl}\n") == [
        "9:46: `/data/t.jsonl` is not a Cloud Storage URI (`gs://bucket/path.jsonl`) or a Vertex "
        "dataset resource name (`projects/P/locations/L/datasets/ID`)"]


def test_mutually_exclusive_fields_deep_in_the_spec() -> None:
    spec = "baseModel: m\n" + SFT + textwrap.dedent("""\
          evaluationConfig:
            metrics: [{bleuSpec: {}}]
            outputConfig: {gcsDestination: {outputUriPrefix: "gs://my-bucket/eval/"}}
            inferenceGenerationConfig:
              speechConfig:
                voiceConfig: {prebuiltVoiceConfig: {voiceName: a}}
                multiSpeakerVoiceConfig: {speakerVoiceConfigs: []}
        """).replace("\n", "\n  ").replace("evaluationConfig", "  evaluationConfig", 1)
    assert check(spec) == [
        "17:11: `spec.supervisedTuningSpec.evaluationConfig.inferenceGenerationConfig.speechConfig"
        ".multiSpeakerVoiceConfig` and `spec.supervisedTuningSpec.evaluationConfig."
        "inferenceGenerationConfig.speechConfig.voiceConfig` are mutually exclusive; set only one"]


def test_envelope_errors_stop_further_checks() -> None:
    doc = {"apiVersion": "v2", "spec": {"nonsense": 1}}
    found = validation.check_document(doc, "f", {(): (1, 1), ("apiVersion",): (1, 13)}, {})
    assert [str(p) for p in found] == [
        "f:1:13: unknown apiVersion `v2`: expected `tuning.reconciler/v1` or `tuning.reconciler/v1beta1`",
        "f:1:1: missing `kind` (expected `kind: TuningJob`)"]


def test_metadata_and_lifecycle() -> None:
    text = HEAD.replace("name: job-a", "name: Job_A").replace("location: us-central1",
                                                              "location: US Central")
    parsed = yaml_reader.parse_text(text + "  baseModel: m\n" + textwrap.indent(SFT, "  ") +
                                 "lifecycle: {onSpecChange: destroy, preventCancel: 'yes', x: 1}\n",
                                 "m.yaml")
    (doc,) = parsed.documents
    found = [str(p) for p in validation.check_document(doc.data, "m.yaml", doc.values, doc.keys)]
    assert found == [
        "m.yaml:4:9: `Job_A` is not a valid name: 1-63 characters of lowercase letters, digits "
        "and `-`, starting with a letter and not ending with `-`",
        "m.yaml:6:13: `US Central` is not a location such as `us-central1`",
        "m.yaml:11:27: `destroy` is not a valid value for `lifecycle.onSpecChange` (expected "
        "one of `replace`, `wait`, `fail`)",
        "m.yaml:11:51: `lifecycle.preventCancel` must be true or false, not a string",
        "m.yaml:11:58: unknown field `lifecycle.x`; expected one of: `ignoreDrift`, "
        "`onBaseModelChange`, `onFailure`, `onMissing`, `onSpecChange`, `onUpstreamChange`, `preventCancel`"]


def test_ignore_drift_takes_categories_or_field_paths() -> None:
    spec = "baseModel: gemini-2.5-flash\n" + SFT
    ok = "lifecycle:\n  ignoreDrift: [out-of-band, labels.team, supervisedTuningSpec.hyperParameters]\n"
    assert check(spec, ok) == []
    found = check(spec, "lifecycle:\n  ignoreDrift: [out-of-band, 'not a path!']\n")
    assert found == ["12:30: `not a path!` in `lifecycle.ignoreDrift` is neither a drift category "
                     "(`pending-change`, `out-of-band`, `orphan`, `unmanaged`) nor a spec field "
                     "path such as `labels.team`"]


def test_problem_str_and_dotted() -> None:
    assert str(Problem("f.yaml", 3, 5, "spec", "bad")) == "f.yaml:3:5: bad"
    assert str(Problem("dir", 0, 0, "", "empty")) == "dir: empty"
    assert validation.dotted(("spec", "metrics", 0, "bleuSpec")) == "spec.metrics[0].bleuSpec"


def test_inlined_validator_agrees_with_the_plain_one() -> None:
    """`inline_refs` is an optimisation only: same verdicts on valid and broken documents."""
    schema = load_manifest_schema()
    plain = Draft202012Validator(schema)
    fast = validation.validator()
    base = {"apiVersion": "tuning.reconciler/v1", "kind": "TuningJob",
            "metadata": {"name": "a"},
            "spec": {"baseModel": "m", "labels": {"team": "x"},
                     "supervisedTuningSpec": {"trainingDatasetUri": "gs://my-bucket/t.jsonl",
                                              "hyperParameters": {"epochCount": "3"}}}}
    variants = [base]
    edits = [("spec", "labels", "managed-by", "x"), ("spec", "supervisedTuningSpec", "zzz", 1),
             ("spec", "supervisedTuningSpec", "hyperParameters", "epochCount", "x"),
             ("spec", "preTunedModel", {"tunedModelName": "t"}), ("spec", "state", "X"),
             ("spec", "encryptionSpec", {}), ("metadata", "name", "A"), ("lifecycle", 1)]
    for *path, value in edits:
        doc = copy.deepcopy(base)
        target = doc
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
        variants.append(doc)
    for doc in variants:
        assert fast.is_valid(doc) == plain.is_valid(doc), doc
        assert sorted(e.message for e in fast.iter_errors(doc)) == \
            sorted(e.message for e in plain.iter_errors(doc))
    assert sum(plain.is_valid(d) for d in variants) == 1


def test_inline_refs_keeps_recursive_definitions_as_refs() -> None:
    schema = {"$defs": {"A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}},
                        "B": {"type": "string", "description": "d"},
                        "R": {"type": "object", "properties": {"r": {"$ref": "#/$defs/R"}}}},
              "properties": {"a": {"$ref": "#/$defs/A", "description": "x"},
                             "r": {"$ref": "#/$defs/R"},
                             "c": {"$ref": "#/$defs/B", "type": "integer"}}}
    out = validation.inline_refs(schema)
    assert out["properties"]["a"] == {"type": "object", "description": "x",
                                      "properties": {"b": {"type": "string", "description": "d"}}}
    assert out["properties"]["r"] == {"$ref": "#/$defs/R"}
    assert out["properties"]["c"] == {"type": "integer", "allOf": [
        {"type": "string", "description": "d"}]}
    v = Draft202012Validator(out)
    assert v.is_valid({"a": {"b": "s"}, "r": {"r": {}}})
    assert not v.is_valid({"c": 1}) and not v.is_valid({"r": {"r": 1}})


@pytest.mark.parametrize("value", [None, 3, "text", [1, 2]])
def test_non_mapping_documents(value: object) -> None:
    (found,) = validation.check_document(value, "f", {(): (2, 1)}, {})
    assert found.line == 2 and "must be a mapping" in found.message


def check_beta(spec_yaml: str) -> list[str]:
    """`check` with `apiVersion: tuning.reconciler/v1beta1`."""
    text = HEAD.replace("tuning.reconciler/v1", "tuning.reconciler/v1beta1") + textwrap.indent(
        textwrap.dedent(spec_yaml), "  ")
    parsed = yaml_reader.parse_text(text, "m.yaml")
    (doc,) = parsed.documents
    return [str(p).removeprefix("m.yaml:") for p in validation.check_document(doc.data, "m.yaml", doc.values, doc.keys)]


def test_v1beta1_fields_are_valid_there_and_named_in_a_v1_manifest() -> None:
    beta = "baseModel: m\noutputUri: gs://my-bucket/out\ndistillationSpec:\n  promptDatasetUri: gs://my-bucket/p.jsonl\n"
    assert check_beta(beta) == []
    assert check(beta) == [
        "7:1: `spec` needs exactly one of `supervisedTuningSpec`, `preferenceOptimizationSpec`; none is set",
        "9:3: unknown field `spec.outputUri`: it is a field of `apiVersion: tuning.reconciler/v1beta1`; set that to use it",
        "10:3: unknown field `spec.distillationSpec`: it is a field of `apiVersion: tuning.reconciler/v1beta1`; "
        "set that to use it"]


def test_v1beta1_one_of_the_eight_tuning_specs() -> None:
    two = "baseModel: m\n" + SFT + "veoTuningSpec:\n  trainingDatasetUri: gs://my-bucket/v.jsonl\n"
    (problem,) = check_beta(two)
    assert problem.startswith("11:3: `spec` may set only one of `supervisedTuningSpec`, `preferenceOptimizationSpec`, "
                              "`distillationSpec`, `reinforcementTuningSpec`, `fullFineTuningSpec`, "
                              "`partnerModelTuningSpec`, `veoTuningSpec`, `veoLoraTuningSpec`, but sets")
    assert check_beta("baseModel: m\n")[0].endswith("`veoLoraTuningSpec`; none is set")


def test_custom_base_model_needs_base_model_and_says_so_where_it_stands() -> None:
    spec = "preTunedModel: {tunedModelName: projects/p/locations/l/models/1}\ncustomBaseModel: gs://my-bucket/w\n" + SFT
    assert check_beta(spec) == ["9:3: `customBaseModel` needs `baseModel` (the model family the custom weights "
                                "belong to), not `preTunedModel`"]
    assert check_beta("baseModel: m\ncustomBaseModel: gs://my-bucket/w\n" + SFT) == []


def test_v1beta1_mutually_exclusive_learning_rates() -> None:
    spec = ("baseModel: m\nsupervisedTuningSpec:\n  trainingDatasetUri: gs://my-bucket/t.jsonl\n"
            "  hyperParameters: {learningRate: 0.1, learningRateMultiplier: 1.0}\n")
    assert check(spec.replace("learningRate: 0.1, ", "")) == []
    (problem,) = check_beta(spec)
    assert "learningRate` and `spec.supervisedTuningSpec.hyperParameters.learningRateMultiplier` are mutually " \
           "exclusive" in problem
