"""Conformance: the official google-cloud-aiplatform client (GenAiTuningServiceClient, REST
transport) against a live emulator. It parses responses into protos and operation results
strictly, so any field the v1 protos do not define would fail these tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import google.oauth2.credentials
import pytest
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from reconciler.emulator.admin import EmulatorAdmin
from reconciler.emulator.server import RunningEmulator

PARENT = "projects/my-project/locations/us-central1"
TuningJob = aiplatform_v1.TuningJob
State = aiplatform_v1.JobState


def client_for(emulator: RunningEmulator) -> aiplatform_v1.GenAiTuningServiceClient:
    return aiplatform_v1.GenAiTuningServiceClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=emulator.url),
        credentials=google.oauth2.credentials.Credentials(emulator.token),
    )


@pytest.fixture
def client(emulator: RunningEmulator) -> aiplatform_v1.GenAiTuningServiceClient:
    return client_for(emulator)


def new_job(**labels: str) -> TuningJob:
    return TuningJob(
        base_model="gemini-2.5-flash",
        tuned_model_display_name="support-bot",
        supervised_tuning_spec=aiplatform_v1.SupervisedTuningSpec(
            training_dataset_uri="gs://bucket/train.jsonl",
            hyper_parameters=aiplatform_v1.SupervisedHyperParameters(epoch_count=2),
        ),
        labels=labels,
    )


def strict(message: type, data: dict[str, Any]) -> None:
    """Parse like a strict client: an unknown field raises."""
    json_format.ParseDict(data, message.pb()(), ignore_unknown_fields=False)


def test_create_get_and_state_machine(client: aiplatform_v1.GenAiTuningServiceClient, admin: EmulatorAdmin,
                                      emulator: RunningEmulator) -> None:
    created = client.create_tuning_job(parent=PARENT, tuning_job=new_job(team="support"))
    assert created.state == State.JOB_STATE_PENDING
    assert created.name.startswith(f"projects/{emulator.backend.project_number('my-project')}/")
    assert created.supervised_tuning_spec.hyper_parameters.epoch_count == 2
    admin.advance(100)
    done = client.get_tuning_job(name=created.name)
    assert done.state == State.JOB_STATE_SUCCEEDED
    assert done.tuned_model.model.endswith("@1") and done.tuned_model.endpoint
    assert len(done.tuned_model.checkpoints) == 2
    assert done.tuning_data_stats.supervised_tuning_data_stats.tuning_dataset_example_count > 0
    assert done.end_time == done.update_time
    hyper = done.supervised_tuning_spec.hyper_parameters
    assert hyper.adapter_size != aiplatform_v1.SupervisedHyperParameters.AdapterSize.ADAPTER_SIZE_UNSPECIFIED
    assert hyper.learning_rate_multiplier > 0


def test_every_emitted_job_parses_strictly(client: aiplatform_v1.GenAiTuningServiceClient, admin: EmulatorAdmin,
                                           emulator: RunningEmulator) -> None:
    names = [client.create_tuning_job(parent=PARENT, tuning_job=new_job()).name for _ in range(3)]
    client.cancel_tuning_job(name=names[1])
    admin.set_state(names[2], "JOB_STATE_FAILED")
    admin.advance(100)
    for name in names:
        strict(TuningJob, emulator.backend.get(name))


def test_list_paging_and_label_filter(client: aiplatform_v1.GenAiTuningServiceClient) -> None:
    mine = [client.create_tuning_job(parent=PARENT, tuning_job=new_job(**{"managed-by": "tuning-reconciler"})).name
            for _ in range(3)]
    client.create_tuning_job(parent=PARENT, tuning_job=new_job(**{"managed-by": "other"}))
    pager = client.list_tuning_jobs(
        request={"parent": PARENT, "page_size": 1, "filter": 'labels.managed-by="tuning-reconciler"'}
    )
    pages = list(pager.pages)
    assert len(pages) == 3
    assert [job.name for page in pages for job in page.tuning_jobs] == mine[::-1]
    assert len(list(client.list_tuning_jobs(parent=PARENT))) == 4


def status_of(error: gexc.GoogleAPICallError) -> str:
    status: str = error.response.json()["error"]["status"]
    return status


def test_errors_map_to_api_core_exceptions(client: aiplatform_v1.GenAiTuningServiceClient,
                                           admin: EmulatorAdmin) -> None:
    with pytest.raises(gexc.NotFound):
        client.get_tuning_job(name=f"{PARENT}/tuningJobs/1234567890123456789")
    # api_core picks the class by HTTP status: every 400 is BadRequest, the status tells them apart
    with pytest.raises(gexc.BadRequest) as info:
        client.create_tuning_job(parent=PARENT, tuning_job=TuningJob(base_model="gemini-2.5-flash"))
    assert status_of(info.value) == "INVALID_ARGUMENT"
    assert "tuning_job.tuning_spec" in info.value.message
    assert info.value.details[0]["fieldViolations"][0]["field"] == "tuning_job.tuning_spec"
    job = client.create_tuning_job(parent=PARENT, tuning_job=new_job())
    admin.advance(100)
    with pytest.raises(gexc.BadRequest) as info:
        client.cancel_tuning_job(name=job.name)
    assert status_of(info.value) == "FAILED_PRECONDITION"
    with pytest.raises(gexc.BadRequest) as info:
        list(client.list_tuning_jobs(request={"parent": PARENT, "filter": "state=JOB_STATE_NOPE"}))
    assert status_of(info.value) == "INVALID_ARGUMENT"


def test_injected_429_surfaces_as_too_many_requests(client: aiplatform_v1.GenAiTuningServiceClient,
                                                    admin: EmulatorAdmin) -> None:
    admin.faults(error_rate=1.0, seed=3)
    with pytest.raises((gexc.TooManyRequests, gexc.ServiceUnavailable)):
        client.get_tuning_job(name=f"{PARENT}/tuningJobs/1234567890123456789", retry=None)


def test_cancel(client: aiplatform_v1.GenAiTuningServiceClient, admin: EmulatorAdmin) -> None:
    job = client.create_tuning_job(parent=PARENT, tuning_job=new_job())
    client.cancel_tuning_job(name=job.name)
    assert client.get_tuning_job(name=job.name).state == State.JOB_STATE_CANCELLING
    admin.advance(100)
    cancelled = client.get_tuning_job(name=job.name)
    assert cancelled.state == State.JOB_STATE_CANCELLED and cancelled.error.code == 1


def test_rebase_result_with_virtual_clock(client: aiplatform_v1.GenAiTuningServiceClient,
                                          admin: EmulatorAdmin) -> None:
    source = client.create_tuning_job(parent=PARENT, tuning_job=new_job(team="a"))
    admin.advance(100)
    operation = client.rebase_tuned_model(
        request={"parent": PARENT, "tuned_model_ref": {"tuning_job": source.name},
                 "tuning_job": {"base_model": "gemini-3-flash"}}
    )
    assert not operation.done()
    metadata = operation.metadata
    assert isinstance(metadata, aiplatform_v1.RebaseTunedModelOperationMetadata)
    assert metadata.generic_metadata.create_time
    admin.advance(100)
    rebased = operation.result(timeout=10)  # polls /ui/.../operations/{op}
    assert isinstance(rebased, TuningJob)
    assert rebased.base_model == "gemini-3-flash" and rebased.labels == {"team": "a"}
    assert rebased.name != source.name
    assert client.get_tuning_job(name=rebased.name).state == State.JOB_STATE_SUCCEEDED
    ops = client.list_operations(request={"name": rebased.name})
    assert [op.name for op in ops.operations] == [operation.operation.name]
    assert client.get_operation(request={"name": operation.operation.name}).done


@pytest.mark.slow
def test_rebase_result_polls_a_real_clock(emulator_factory: Callable[..., RunningEmulator]) -> None:
    emulator = emulator_factory(job_duration=0.2)
    client = client_for(emulator)
    source = client.create_tuning_job(parent=PARENT, tuning_job=new_job())
    admin = EmulatorAdmin(emulator.url, emulator.token)
    admin.advance(1)
    assert client.get_tuning_job(name=source.name).state == State.JOB_STATE_SUCCEEDED
    operation = client.rebase_tuned_model(
        request={"parent": PARENT, "tuned_model_ref": {"tuning_job": source.name},
                 "tuning_job": {"base_model": "gemini-3-flash"}}
    )
    rebased = operation.result(timeout=20)
    assert rebased.base_model == "gemini-3-flash"
    assert rebased.state in (State.JOB_STATE_RUNNING, State.JOB_STATE_SUCCEEDED)
    assert admin.stats()["requests"].get("operations.get", 0) >= 1
    admin.close()
