"""The backend on its own: state machine, defaults, validation, paging, rebase, persistence."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from reconciler.emulator import exceptions as err
from reconciler.emulator.backend import Backend
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.jobs import chosen_hyper_parameters

PARENT = "projects/my-project/locations/us-central1"


def make(**overrides: Any) -> Backend:
    settings: dict[str, Any] = {"virtual_clock": True, "job_duration": 100.0}
    settings.update(overrides)
    return Backend(EmulatorConfig(**settings))


def body(uri: str = "gs://bucket/train.jsonl", **extra: Any) -> dict[str, Any]:
    return {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": uri}, **extra}


def test_create_returns_pending_job_with_number_name_and_19_digit_id() -> None:
    backend = make(project_numbers={"my-project": "713601331534"})
    job = backend.create(PARENT, body(labels={"team": "a"}))
    assert re.fullmatch(r"projects/713601331534/locations/us-central1/tuningJobs/\d{19}", job["name"])
    assert job["state"] == "JOB_STATE_PENDING"
    assert job["createTime"] == job["updateTime"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", job["createTime"])
    for absent in ("startTime", "endTime", "experiment", "tunedModel", "tuningDataStats", "error"):
        assert absent not in job
    assert job["supervisedTuningSpec"]["hyperParameters"] == {}
    assert job["labels"] == {"team": "a"}


def test_default_project_number_is_stable_12_digits_and_numbers_map_to_themselves() -> None:
    backend = make()
    number = backend.project_number("some-project")
    assert re.fullmatch(r"[1-9]\d{11}", number)
    assert make().project_number("some-project") == number
    assert backend.project_number("some-other-project") != number
    assert backend.project_number("123456") == "123456"


def test_get_by_project_id_or_number() -> None:
    backend = make()
    job = backend.create(PARENT, body())
    job_id = job["name"].rsplit("/", 1)[1]
    by_id = backend.get(f"{PARENT}/tuningJobs/{job_id}")
    by_number = backend.get(job["name"])
    assert by_id == by_number == job


def test_state_machine_follows_the_clock_and_fills_server_defaults() -> None:
    backend = make(job_duration=100.0, start_delay=10.0)
    job = backend.create(PARENT, body(supervisedTuningSpec={"trainingDatasetUri": "gs://b/t.jsonl",
                                                            "hyperParameters": {"epochCount": 3}}))
    name = job["name"]
    backend.advance(9.9)
    assert backend.get(name)["state"] == "JOB_STATE_PENDING"
    backend.advance(0.1)
    running = backend.get(name)
    assert running["state"] == "JOB_STATE_RUNNING"
    assert "startTime" in running and "experiment" in running and "tunedModel" not in running
    assert re.fullmatch(
        r"projects/\d{12}/locations/us-central1/metadataStores/default/contexts/tuning-experiment-\d{20}",
        running["experiment"],
    )
    hyper = running["supervisedTuningSpec"]["hyperParameters"]
    assert hyper["epochCount"] == "3"  # as the user set it, int64 as a string
    assert isinstance(hyper["learningRateMultiplier"], float)
    assert hyper["adapterSize"].startswith("ADAPTER_SIZE_")
    backend.advance(90.0)
    done = backend.get(name)
    assert done["state"] == "JOB_STATE_SUCCEEDED"
    assert done["endTime"] == done["updateTime"]
    assert done["startTime"] < done["endTime"]
    tuned = done["tunedModel"]
    assert re.fullmatch(r"projects/\d{12}/locations/us-central1/models/\d{19}@1", tuned["model"])
    assert re.fullmatch(r"projects/\d{12}/locations/us-central1/endpoints/\d{19}", tuned["endpoint"])
    assert [c["epoch"] for c in tuned["checkpoints"]] == ["1", "2", "3"]
    assert tuned["checkpoints"][-1]["endpoint"] == tuned["endpoint"]
    stats = done["tuningDataStats"]["supervisedTuningDataStats"]
    assert int(stats["tuningDatasetExampleCount"]) > 0 and isinstance(stats["totalBillableTokenCount"], str)


@pytest.mark.parametrize("count", [90, 500, 5000])
def test_chosen_hyper_parameters_are_typed_like_the_api(count: int) -> None:
    chosen = chosen_hyper_parameters(count)
    assert isinstance(chosen["epochCount"], str) and int(chosen["epochCount"]) > 0
    assert isinstance(chosen["learningRateMultiplier"], float)
    assert chosen["adapterSize"].startswith("ADAPTER_SIZE_")
    assert chosen_hyper_parameters(90) == {
        "epochCount": "40", "learningRateMultiplier": 0.5, "adapterSize": "ADAPTER_SIZE_FOUR"
    }
    assert chosen_hyper_parameters(500) == {
        "epochCount": "10", "learningRateMultiplier": 1.0, "adapterSize": "ADAPTER_SIZE_EIGHT"
    }


def test_dataset_uri_with_fail_ends_failed_with_code_13_and_no_endpoint() -> None:
    backend = make()
    name = backend.create(PARENT, body("gs://bucket/fail.jsonl"))["name"]
    backend.advance(100.0)
    job = backend.get(name)
    assert job["state"] == "JOB_STATE_FAILED"
    assert job["error"]["code"] == 13 and job["error"]["message"]
    assert "model" in job["tunedModel"] and "endpoint" not in job["tunedModel"]
    assert job["endTime"] == job["updateTime"]


def test_cancel_goes_through_cancelling_to_cancelled_with_code_1() -> None:
    backend = make(cancel_delay=5.0)
    name = backend.create(PARENT, body())["name"]
    backend.advance(50.0)
    assert backend.cancel(name) == {}
    assert backend.get(name)["state"] == "JOB_STATE_CANCELLING"
    assert backend.cancel(name) == {}  # cancelling again is fine
    backend.advance(5.0)
    job = backend.get(name)
    assert job["state"] == "JOB_STATE_CANCELLED"
    assert job["error"]["code"] == 1
    assert job["endTime"] == job["updateTime"]
    backend.advance(100.0)  # the old schedule must not resurrect it
    assert backend.get(name)["state"] == "JOB_STATE_CANCELLED"


def test_cancel_of_finished_job_is_failed_precondition() -> None:
    backend = make()
    name = backend.create(PARENT, body())["name"]
    backend.advance(100.0)
    with pytest.raises(err.FailedPrecondition) as info:
        backend.cancel(name)
    assert "JOB_STATE_SUCCEEDED" in info.value.message


def test_unknown_and_malformed_names() -> None:
    backend = make()
    with pytest.raises(err.NotFound):
        backend.get(f"{PARENT}/tuningJobs/1234567890123456789")
    with pytest.raises(err.InvalidArgument):
        backend.get(f"{PARENT}/tuningJobs/not-a-number")
    with pytest.raises(err.InvalidArgument):
        backend.list("projects/p")


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}, "tuning_job.base_model",
         "base_model is required."),
        ({"baseModel": "m"}, "tuning_job.tuning_spec", "One of supervised_tuning_spec"),
        ({"baseModel": "m", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"},
          "preferenceOptimizationSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}},
         "tuning_job.tuning_spec", "Only one of"),
        ({"baseModel": "m", "supervisedTuningSpec": {}}, "tuning_job.supervised_tuning_spec.training_dataset_uri",
         "training_dataset_uri is required."),
        (body("/local/train.jsonl"), "tuning_job.supervised_tuning_spec.training_dataset_uri",
         "training_dataset_uri should be a GCS object of type JSONL."),
        (body(labels={"Team": "a"}), "tuning_job.labels", 'Label key "Team" is invalid'),
        (body(labels={"team": "A B"}), "tuning_job.labels", 'Label value "A B" of key "team" is invalid'),
        (body(labels={"k": "v" * 64}), "tuning_job.labels", "is invalid"),
        (body(supervisedTuningSpec={"trainingDatasetUri": "gs://b/t.jsonl", "hyperParameters": {"epochCount": "0"}}),
         "tuning_job.supervised_tuning_spec.hyper_parameters.epoch_count", "epoch_count must be positive."),
    ],
)
def test_create_validation_lists_field_violations(payload: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(err.InvalidArgument) as info:
        make().create(PARENT, payload)
    error = info.value
    assert error.message.startswith("List of found errors:\t1.Field: ")
    violations = error.details[0]["fieldViolations"]
    assert error.details[0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert any(v["field"] == field and message in v["description"] for v in violations), violations


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (body(foo=1), "Unknown name \"foo\" at 'tuning_job': Cannot find field."),
        (body(supervisedTuningSpec={"trainingDatasetUri": "gs://b/t.jsonl", "bogus": True}),
         "Unknown name \"bogus\" at 'tuning_job.supervised_tuning_spec'"),
        (body(supervisedTuningSpec={"trainingDatasetUri": "gs://b/t.jsonl",
                                    "hyperParameters": {"epochCount": "three"}}),
         "Invalid value at 'tuning_job.supervised_tuning_spec.hyper_parameters.epoch_count' (TYPE_INT64)"),
        (body(supervisedTuningSpec={"trainingDatasetUri": "gs://b/t.jsonl",
                                    "hyperParameters": {"adapterSize": "ADAPTER_SIZE_HUGE"}}),
         "Invalid value at 'tuning_job.supervised_tuning_spec.hyper_parameters.adapter_size' (TYPE_ENUM)"),
        (body(labels=["a"]), "Invalid value at 'tuning_job.labels'"),
        (body(baseModel=5), "Invalid value at 'tuning_job.base_model' (TYPE_STRING), 5"),
    ],
)
def test_decoding_rejects_unknown_fields_and_wrong_types(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(err.InvalidArgument) as info:
        make().create(PARENT, payload)
    assert message in info.value.message


def test_request_accepts_enum_numbers_int64_numbers_and_snake_case() -> None:
    backend = make()
    job = backend.create(
        PARENT,
        {
            "base_model": "gemini-2.5-flash",
            "supervised_tuning_spec": {
                "training_dataset_uri": "gs://b/t.jsonl",
                # adapter size 2 is ADAPTER_SIZE_FOUR by proto number (TWO, listed before it, is 6)
                "hyper_parameters": {"epoch_count": 4, "adapter_size": 2, "learning_rate_multiplier": "0.5"},
            },
            "state": "JOB_STATE_SUCCEEDED",  # output only: ignored, like the service does
        },
    )
    assert job["state"] == "JOB_STATE_PENDING"
    assert job["supervisedTuningSpec"]["hyperParameters"] == {
        "epochCount": "4", "adapterSize": "ADAPTER_SIZE_FOUR", "learningRateMultiplier": 0.5,
    }


def test_list_is_newest_first_and_pages_stay_correct_while_creating() -> None:
    backend = make()
    names = [backend.create(PARENT, body(labels={"managed-by": "r", "i": str(i)}))["name"] for i in range(5)]
    first = backend.list(PARENT, 'labels.managed-by="r"', page_size=2)
    assert [j["name"] for j in first.jobs] == names[:2:-1][:2] == [names[4], names[3]]
    backend.create(PARENT, body(labels={"managed-by": "r"}))  # a newer job appears while paging
    second = backend.list(PARENT, 'labels.managed-by="r"', page_size=2, page_token=first.next_page_token or "")
    assert [j["name"] for j in second.jobs] == [names[2], names[1]]
    third = backend.list(PARENT, 'labels.managed-by="r"', page_size=2, page_token=second.next_page_token or "")
    assert [j["name"] for j in third.jobs] == [names[0]]
    assert third.next_page_token is None


def test_last_full_page_has_no_token_when_nothing_follows() -> None:
    backend = make()
    for _ in range(4):
        backend.create(PARENT, body())
    page = backend.list(PARENT, page_size=4)
    assert len(page.jobs) == 4 and page.next_page_token is None
    other = backend.list("projects/other/locations/us-central1")
    assert other.jobs == [] and other.next_page_token is None


def test_page_size_default_and_maximum() -> None:
    backend = make(default_page_size=3, max_page_size=5)
    backend.seed(PARENT, 12)
    assert len(backend.list(PARENT).jobs) == 3
    assert len(backend.list(PARENT, page_size=100).jobs) == 5
    with pytest.raises(err.InvalidArgument):
        backend.list(PARENT, page_size=-1)


@pytest.mark.parametrize("token", ["garbage", "eyJwIjogMX0", ""])
def test_invalid_or_foreign_page_token_is_rejected(token: str) -> None:
    backend = make()
    backend.seed(PARENT, 3)
    page = backend.list(PARENT, page_size=1)
    assert page.next_page_token
    bad = token or page.next_page_token
    filter_text = 'labels.x="y"' if not token else ""  # a real token used with another filter
    with pytest.raises(err.InvalidArgument) as info:
        backend.list(PARENT, filter_text, page_size=1, page_token=bad)
    assert "page token" in info.value.message


def test_seed_templates_labels_and_can_set_state() -> None:
    backend = make()
    names = backend.seed(PARENT, 3, labels={"reconciler-key": "k{n}", "managed-by": "r"},
                         state="JOB_STATE_SUCCEEDED")
    jobs = [backend.get(n) for n in names]
    assert [j["labels"]["reconciler-key"] for j in jobs] == ["k0", "k1", "k2"]
    assert {j["state"] for j in jobs} == {"JOB_STATE_SUCCEEDED"}
    assert all("tunedModel" in j for j in jobs)
    with pytest.raises(err.InvalidArgument):
        backend.seed(PARENT, 1, labels={"BAD": "x"})


def test_set_state_out_of_band_pins_the_job() -> None:
    backend = make()
    name = backend.create(PARENT, body())["name"]
    job = backend.set_state(name.rsplit("/", 1)[1], "JOB_STATE_CANCELLED")
    assert job["state"] == "JOB_STATE_CANCELLED" and job["error"]["code"] == 1
    failed = backend.set_state(backend.create(PARENT, body())["name"], "JOB_STATE_FAILED")
    assert failed["error"]["code"] == 13
    running = backend.set_state(backend.create(PARENT, body())["name"], "JOB_STATE_RUNNING")
    backend.advance(1000)
    assert backend.get(running["name"])["state"] == "JOB_STATE_RUNNING"
    with pytest.raises(err.InvalidArgument):
        backend.set_state(name, "JOB_STATE_BOGUS")
    with pytest.raises(err.NotFound):
        backend.set_state("42", "JOB_STATE_FAILED")


def test_rebase_creates_a_new_job_on_the_new_base_model_and_finishes_its_operation() -> None:
    backend = make(start_delay=10.0)
    source = backend.create(PARENT, body(labels={"k": "v"}))
    with pytest.raises(err.FailedPrecondition):  # not SUCCEEDED yet
        backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": source["name"]}})
    backend.advance(100)
    op = backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": source["name"]},
                                 "tuningJob": {"baseModel": "gemini-3-flash"}, "deployToSameEndpoint": True})
    assert "done" not in op
    assert op["metadata"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1.RebaseTunedModelOperationMetadata"
    new_job_name = op["name"].split("/operations/")[0]
    assert new_job_name != source["name"]
    backend.advance(10)
    done = backend.get_operation(op["name"])
    assert done["done"] is True
    response = done["response"]
    assert response["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1.TuningJob"
    assert response["name"] == new_job_name and response["baseModel"] == "gemini-3-flash"
    assert response["labels"] == {"k": "v"}
    backend.advance(100)
    new_job = backend.get(new_job_name)
    old_job = backend.get(source["name"])
    model_id = old_job["tunedModel"]["model"].split("@")[0]
    assert new_job["tunedModel"]["model"] == f"{model_id}@2"
    assert new_job["tunedModel"]["endpoint"] == old_job["tunedModel"]["endpoint"]
    assert [o["name"] for o in backend.list_operations(new_job_name)] == [op["name"]]


def test_rebase_errors() -> None:
    backend = make()
    with pytest.raises(err.InvalidArgument):
        backend.rebase(PARENT, {})
    with pytest.raises(err.InvalidArgument):
        backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": "a", "tunedModel": "b"}})
    with pytest.raises(err.NotFound):
        backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": f"{PARENT}/tuningJobs/1234567890123456789"}})
    with pytest.raises(err.NotFound):
        backend.rebase(PARENT, {"tunedModelRef": {"tunedModel": f"{PARENT}/models/1234567890123456789"}})


def test_operation_cancel_and_delete() -> None:
    backend = make(start_delay=10.0)
    source = backend.create(PARENT, body())
    backend.advance(100)
    op = backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": source["name"]}})
    assert backend.cancel_operation(op["name"]) == {}
    cancelled = backend.get_operation(op["name"])
    assert cancelled["done"] is True and cancelled["error"]["code"] == 1
    assert backend.get(op["name"].split("/operations/")[0])["state"] == "JOB_STATE_CANCELLED"
    assert backend.delete_operation(op["name"]) == {}
    with pytest.raises(err.NotFound):
        backend.get_operation(op["name"])


def test_snapshot_and_restore_keep_jobs_operations_and_schedule() -> None:
    backend = make(start_delay=10.0)
    done = backend.create(PARENT, body())
    backend.advance(100)
    op = backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": done["name"]}})
    pending = backend.create(PARENT, body(labels={"a": "b"}))
    snapshot = backend.snapshot()
    copy = make(start_delay=10.0)
    copy.restore(snapshot)
    assert copy.get(done["name"]) == backend.get(done["name"])
    assert copy.get_operation(op["name"]) == backend.get_operation(op["name"])
    assert [j["name"] for j in copy.list(PARENT, 'labels.a="b"').jobs] == [pending["name"]]
    copy.advance(100)
    assert copy.get(pending["name"])["state"] == "JOB_STATE_SUCCEEDED"
    assert copy.create(PARENT, body())["name"] not in {done["name"], pending["name"]}


@pytest.mark.slow
def test_seed_and_list_scale_to_50000_jobs() -> None:
    backend = make()
    started = time.perf_counter()
    backend.seed(PARENT, 50_000, labels={"managed-by": "tuning-reconciler", "reconciler-key": "k{n}"})
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    seen = 0
    token = ""
    while True:
        page = backend.list(PARENT, 'labels.managed-by="tuning-reconciler"', page_size=1000, page_token=token)
        seen += len(page.jobs)
        if not page.next_page_token:
            break
        token = page.next_page_token
    listed = time.perf_counter() - started
    assert seen == 50_000
    assert seeded < 5.0, seeded
    assert listed < 10.0, listed
