"""What the discovery document cannot say, added on top of the generated schemas.

The discovery document describes each field on its own. Some rules span fields or come
from Google's prose documentation instead; they live here, small and each with its source,
so the generated schemas stay "the document plus this page":

- `tuning_spec` and `source_model` are proto `oneof`s (the REST reference lists them as
  "Union type"): exactly one of `supervisedTuningSpec` / `preferenceOptimizationSpec`,
  exactly one of `baseModel` / `preTunedModel` (continuous tuning).
- `TunedModelRef` is a union too: exactly one of `tuningJob`, `tunedModel`, `pipelineJob`.
- Google's label rules (https://cloud.google.com/resource-manager/docs/labels-overview):
  at most 64 labels; keys and values up to 63 characters of lowercase letters, digits,
  `_` and `-`; keys start with a letter. In a manifest the tool's own identity labels are
  reserved and count against the 64.
- Dataset URIs: a `gs://bucket/object` path, or for supervised tuning also the resource
  name of a Vertex multimodal dataset (`projects/../locations/../datasets/..`).

- References (`${jobs.KEY.OUTPUT}`, `reconciler.graph.references`) may stand in any string
  field of a spec; where a field has a pattern (dataset URIs, durations), a string holding a
  reference is accepted too, and checked as a reference by `validate` instead.

`x-messages` is our annotation (ignored by validators and editors alike): keyword -> the text
`reconciler validate` shows when that keyword of the subschema it sits in fails
(`{instance}` stands for the offending value).
"""

from __future__ import annotations

from typing import Any

from reconciler.apischema.discovery import TUNING_JOB_SCHEMA as TUNING_JOB
from reconciler.model import RESERVED_LABELS

TUNED_MODEL_REF = "GoogleCloudAiplatformV1TunedModelRef"
SUPERVISED_SPEC = "GoogleCloudAiplatformV1SupervisedTuningSpec"
PREFERENCE_SPEC = "GoogleCloudAiplatformV1PreferenceOptimizationSpec"

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


def apply_api_rules(defs: dict[str, dict[str, Any]]) -> None:
    """Rules that hold for the API itself, patched into the generated `$defs` in place."""
    ref = defs[TUNED_MODEL_REF]
    ref.setdefault("allOf", []).append(exactly_one("tuningJob", "tunedModel", "pipelineJob"))

    labels = defs[TUNING_JOB]["properties"]["labels"]
    labels.update(_labels_rules())

    supervised = _uri(
        f"{GCS_URI}|{DATASET_NAME}",
        "a Cloud Storage URI (`gs://bucket/path.jsonl`) or a Vertex dataset resource name "
        "(`projects/P/locations/L/datasets/ID`)",
    )
    preference = _uri(GCS_URI, "a Cloud Storage URI (`gs://bucket/path.jsonl`)")
    for name, rule in ((SUPERVISED_SPEC, supervised), (PREFERENCE_SPEC, preference)):
        for field in ("trainingDatasetUri", "validationDatasetUri"):
            defs[name]["properties"][field].update(rule)


# Any string holding `${jobs.`: `validate` checks the reference itself (reconciler.graph).
REFERENCE_ALTERNATIVE = r"\$\{\s*jobs\."


def accept_references(defs: dict[str, dict[str, Any]]) -> None:
    """Let every patterned string field of the messages in `defs` also take a reference.
    Map values (labels) are left alone: they are no fields, and label rules stay strict."""

    def visit(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if node.get("type") == "string" and "pattern" in node and "format" not in node:
            node["pattern"] = f"(?:{node['pattern']})|{REFERENCE_ALTERNATIVE}"
        for sub in node.get("properties", {}).values():
            visit(sub)
        visit(node.get("items"))

    for schema in defs.values():
        visit(schema)


def manifest_spec_rules() -> dict[str, Any]:
    """Rules for a job written in a manifest (not for partial bodies such as a rebase's
    `tuningJob`): the two unions, and labels the tool reserves for itself."""
    reserved = sorted(RESERVED_LABELS)
    return {
        "allOf": [
            exactly_one("supervisedTuningSpec", "preferenceOptimizationSpec"),
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
