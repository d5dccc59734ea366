"""Discovery-driven decoding, and that every resource the emulator emits fits the schemas."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import aiplatform_v1

from reconciler.emulator import backend as models
from reconciler.emulator import exceptions as err
from reconciler.emulator import jobs, schema
from reconciler.emulator.config import EmulatorConfig

TUNING_JOB = f"{schema.PREFIX}TuningJob"
PARENT = "projects/p/locations/us-central1"


def test_snake_case() -> None:
    assert schema.snake("supervisedTuningSpec") == "supervised_tuning_spec"
    assert schema.snake("baseModel") == "base_model"


def test_decode_normalises_int64_enum_and_double() -> None:
    decoded = schema.decode_message(
        f"{schema.PREFIX}SupervisedHyperParameters",
        {"epochCount": 3, "adapter_size": 3, "learningRateMultiplier": 1},
        "hp",
    )
    # enum numbers are proto numbers: 3 is ADAPTER_SIZE_EIGHT (listed fifth, after TWO = 6)
    assert decoded == {"epochCount": "3", "adapterSize": "ADAPTER_SIZE_EIGHT", "learningRateMultiplier": 1.0}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"epochCount": 1.5}, "Invalid value at 'hp.epoch_count' (TYPE_INT64), 1.5"),
        ({"epochCount": True}, "Invalid value at 'hp.epoch_count' (TYPE_INT64), true"),
        ({"adapterSize": 99}, "Invalid value at 'hp.adapter_size' (TYPE_ENUM), 99"),
        ({"learningRateMultiplier": "fast"}, "Invalid value at 'hp.learning_rate_multiplier' (TYPE_DOUBLE)"),
        ({"extra": 1}, "Unknown name \"extra\" at 'hp': Cannot find field."),
        ([], "Expected an object at 'hp'"),
    ],
)
def test_decode_errors_name_the_field(value: Any, message: str) -> None:
    with pytest.raises(err.InvalidArgument) as info:
        schema.decode_message(f"{schema.PREFIX}SupervisedHyperParameters", value, "hp")
    assert message in info.value.message
    assert info.value.details[0]["@type"] == err.BAD_REQUEST_TYPE


def test_enums_as_numbers_walks_nested_messages() -> None:
    job = {"state": "JOB_STATE_RUNNING", "supervisedTuningSpec": {"hyperParameters": {"adapterSize": "ADAPTER_SIZE_ONE"}},
           "labels": {"state": "JOB_STATE_RUNNING"}}
    assert schema.enums_as_numbers(TUNING_JOB, job) == {
        "state": 3,
        "supervisedTuningSpec": {"hyperParameters": {"adapterSize": 1}},
        "labels": {"state": "JOB_STATE_RUNNING"},
    }


def emitted_jobs() -> list[dict[str, Any]]:
    """One job in every interesting state, as the API renders them."""
    backend = models.Backend(EmulatorConfig(virtual_clock=True, job_duration=10))
    spec = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"},
            "labels": {"a": "b"}, "description": "d", "tunedModelDisplayName": "n"}
    pref = {"baseModel": "gemini-2.5-flash",
            "preferenceOptimizationSpec": {"trainingDatasetUri": "gs://b/p.jsonl"}}
    names = [backend.create(PARENT, spec)["name"] for _ in range(3)]
    failed = backend.create(PARENT, {**spec, "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/fail.jsonl"}})
    preference = backend.create(PARENT, pref)
    out = [backend.get(names[0])]
    backend.advance(1)
    out.append(backend.get(names[0]))  # running
    backend.cancel(names[1])
    out.append(backend.get(names[1]))  # cancelling
    backend.advance(10)
    out += [backend.get(n) for n in names] + [backend.get(failed["name"]), backend.get(preference["name"])]
    op = backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": names[0]}})
    backend.advance(5)
    response = dict(backend.get_operation(op["name"])["response"])
    assert response.pop("@type") == jobs.TUNING_JOB_TYPE
    out.append(response)
    return out


def test_every_emitted_job_fits_the_discovery_schema() -> None:
    jobs = emitted_jobs()
    assert {j["state"] for j in jobs} >= {"JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING",
                                          "JOB_STATE_CANCELLED", "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"}
    for job in jobs:
        # keep_read_only: output-only fields are checked too; an unknown one would raise
        assert schema.decode_message(TUNING_JOB, job, "", keep_read_only=True) == job


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_operation_response_fields_are_all_in_the_proto(version: str) -> None:
    module = aiplatform_v1 if version == "v1" else pytest.importorskip("google.cloud.aiplatform_v1beta1")
    proto_fields = {f.json_name for f in module.TuningJob.pb().DESCRIPTOR.fields}
    assert jobs.PROTO_TUNING_JOB_FIELDS[version] <= proto_fields
