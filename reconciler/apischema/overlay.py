"""What the discovery document cannot say, added on top of the generated schemas.

The discovery document describes each field on its own. Some rules span fields or come
from Google's prose documentation instead; they live here, small and each with its source,
so the generated schemas stay "the document plus this page":

- `tuning_spec` and `source_model` are proto `oneof`s (the REST reference lists them as
  "Union type"): exactly one tuning spec of the version (v1: `supervisedTuningSpec` /
  `preferenceOptimizationSpec`; v1beta1 adds six more, see `versions.py`), exactly one of
  `baseModel` / `preTunedModel` (continuous tuning).
- v1beta1's `customBaseModel` (custom weights of an open model) is not in that union: its
  description says it tunes "a custom model" of the `baseModel` family, so it needs `baseModel`.
- `TunedModelRef` is a union too: exactly one of `tuningJob`, `tunedModel`, `pipelineJob`.
- Google's label rules (https://cloud.google.com/resource-manager/docs/labels-overview):
  at most 64 labels; keys and values up to 63 characters of lowercase letters, digits,
  `_` and `-`; keys start with a letter. In a manifest the tool's own identity labels are
  reserved and count against the 64.
- Dataset URIs: a `gs://bucket/object` path, or where the field's description says so
  (supervised, full fine-tuning and Veo tuning) also the resource name of a Vertex
  multimodal dataset (`projects/../locations/../datasets/..`).

`x-messages` is our annotation (ignored by validators and editors alike): keyword -> the text
`reconciler validate` shows when that keyword of the subschema it sits in fails
(`{instance}` stands for the offending value).
"""

from __future__ import annotations

from typing import Any

from reconciler.apischema.versions import Surface, surface
from reconciler.model import RESERVED_LABELS, V1

# Dataset fields per tuning-spec message, and whether a Vertex dataset name may stand for the
# Cloud Storage path (from each field's description in the discovery document).
_DATASETS: dict[str, tuple[tuple[str, ...], bool]] = {
    "SupervisedTuningSpec": (("trainingDatasetUri", "validationDatasetUri"), True),
    "PreferenceOptimizationSpec": (("trainingDatasetUri", "validationDatasetUri"), False),
    "DistillationSpec": (("promptDatasetUri", "trainingDatasetUri", "validationDatasetUri"), False),
    "ReinforcementTuningSpec": (("trainingDatasetUri", "validationDatasetUri"), False),
    "FullFineTuningSpec": (("trainingDatasetUri", "validationDatasetUri"), True),
    "PartnerModelTuningSpec": (("trainingDatasetUri", "validationDatasetUri"), False),
    "VeoTuningSpec": (("trainingDatasetUri", "validationDatasetUri"), True),
    "VeoLoraTuningSpec": (("trainingDatasetUri", "validationDatasetUri"), True),
}
# v1's names (callers that only ever meant v1).
TUNED_MODEL_REF = surface(V1).schema("TunedModelRef")
SUPERVISED_SPEC = surface(V1).schema("SupervisedTuningSpec")
PREFERENCE_SPEC = surface(V1).schema("PreferenceOptimizationSpec")

MAX_LABELS = 64
LABEL_KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
LABEL_VALUE_PATTERN = r"^[a-z0-9_-]{0,63}$"
GCS_URI = r"gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]/[^\s]+"
DATASET_NAME = r"projects/[^/\s]+/locations/[^/\s]+/datasets/[^/\s]+"


def exactly_one(*fields: str) -> dict[str, Any]:
    """`oneOf` over `required` branches: validation.py turns its failure into 'none'/'several'."""
    return {"oneOf": [{"required": [f]} for f in fields]}


def _labels_rules() -> dict[str, Any]:
    return {
        "maxProperties": MAX_LABELS,
        "propertyNames": {
            "pattern": LABEL_KEY_PATTERN,
            "x-messages": {
                "pattern": "label key `{instance}` is invalid: keys are 1-63 characters of "
                "lowercase letters, digits, `_` and `-`, starting with a letter"
            },
        },
        "additionalProperties": {
            "type": "string",
            "pattern": LABEL_VALUE_PATTERN,
            "x-messages": {
                "pattern": "label value `{instance}` is invalid: values are up to 63 characters "
                "of lowercase letters, digits, `_` and `-`"
            },
        },
        "x-messages": {"maxProperties": f"at most {MAX_LABELS} labels are allowed"},
    }


def _uri(pattern: str, what: str) -> dict[str, Any]:
    return {"pattern": f"^(?:{pattern})$",
            "x-messages": {"pattern": f"`{{instance}}` is not {what}"}}


def apply_api_rules(defs: dict[str, dict[str, Any]], api: Surface | None = None) -> None:
    """Rules that hold for the API itself, patched into the generated `$defs` in place."""
    api = api or surface(V1)
    ref = defs[api.schema("TunedModelRef")]
    ref.setdefault("allOf", []).append(exactly_one("tuningJob", "tunedModel", "pipelineJob"))

    labels = defs[api.tuning_job]["properties"]["labels"]
    labels.update(_labels_rules())

    gcs_or_dataset = _uri(
        f"{GCS_URI}|{DATASET_NAME}",
        "a Cloud Storage URI (`gs://bucket/path.jsonl`) or a Vertex dataset resource name "
        "(`projects/P/locations/L/datasets/ID`)",
    )
    gcs = _uri(GCS_URI, "a Cloud Storage URI (`gs://bucket/path.jsonl`)")
    for short, (fields, datasets) in _DATASETS.items():
        message = defs.get(api.schema(short))
        if message is None:  # a spec this version does not have
            continue
        for field in fields:
            if field in message["properties"]:
                message["properties"][field].update(gcs_or_dataset if datasets else gcs)


def manifest_spec_rules(api: Surface | None = None, defs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Rules for a job written in a manifest (not for partial bodies such as a rebase's
    `tuningJob`): the unions, and labels the tool reserves for itself. `defs`: the generated
    `$defs` (whether the version has `customBaseModel` is read there)."""
    api = api or surface(V1)
    reserved = sorted(RESERVED_LABELS)
    rules: dict[str, Any] = {
        "allOf": [
            exactly_one(*api.tuning_specs),
            exactly_one("baseModel", "preTunedModel"),
        ],
        "properties": {
            "labels": {
                # The tool adds its identity labels to every job it creates.
                "maxProperties": MAX_LABELS - len(reserved),
                "x-messages": {
                    "maxProperties": f"at most {MAX_LABELS - len(reserved)} labels are allowed: "
                    f"the tool adds its own {len(reserved)} ({', '.join(reserved)}) "
                    f"and Google allows {MAX_LABELS}"
                },
                "propertyNames": {
                    "not": {"enum": reserved},
                    "x-messages": {
                        "not": "label `{instance}` is reserved for the tool's own use "
                        f"(reserved: {', '.join(reserved)})"
                    },
                },
            }
        },
    }
    if "customBaseModel" in ((defs or {}).get(api.tuning_job) or {}).get("properties", {}):
        rules["dependentRequired"] = {"customBaseModel": ["baseModel"]}
        rules["x-messages"] = {"dependentRequired": "`customBaseModel` needs `baseModel` (the model family "
                                                    "the custom weights belong to), not `preTunedModel`"}
    return rules
