"""Conformance: the Vertex AI SDK (`vertexai.tuning.sft` of google-cloud-aiplatform) against a
live emulator over HTTP, unchanged, as a new user would point it there: every call goes to
`/v1beta1/` (GAPIC REST with `$alt=json;enum-encoding=int`: enums travel as proto numbers),
`job.refresh()` also reads the job's experiment context from `/v1/`, and
`rebase_tuned_model` polls its operation at `/ui/` and unpacks a v1beta1 TuningJob from it."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import google.oauth2.credentials
import pytest
from google.api_core import exceptions as gexc

from reconciler.emulator.admin import EmulatorAdmin
from reconciler.emulator.server import RunningEmulator

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the SDK warns about deprecations on import
    import vertexai
    from google.cloud.aiplatform import initializer
    from google.cloud.aiplatform_v1beta1 import JobState, SupervisedHyperParameters
    from vertexai.preview.tuning import sft as preview_sft
    from vertexai.tuning import SourceModel, sft

pytestmark = pytest.mark.filterwarnings("ignore:This feature is deprecated:UserWarning")

PROJECT, LOCATION = "my-project", "us-central1"
DURATION = 100.0  # emulated seconds from create to the end of a job


def init(emulator: RunningEmulator) -> None:
    vertexai.init(project=PROJECT, location=LOCATION, api_endpoint=emulator.url, api_transport="rest",
                  credentials=google.oauth2.credentials.Credentials(token=emulator.token))


@pytest.fixture
def sdk_emulator(emulator_factory: Callable[..., RunningEmulator]) -> Iterator[RunningEmulator]:
    emulator = emulator_factory(virtual_clock=True, job_duration=DURATION)
    init(emulator)
    yield emulator
    initializer.global_config.__init__()  # type: ignore[misc]  # forget the endpoint and credentials


@pytest.fixture
def sdk_admin(sdk_emulator: RunningEmulator) -> Iterator[EmulatorAdmin]:
    with EmulatorAdmin(sdk_emulator.url, sdk_emulator.token) as client:
        yield client


def requests(admin: EmulatorAdmin) -> dict[str, int]:
    counts: dict[str, int] = admin.stats()["requests"]
    return counts


def train(**overrides: Any) -> sft.SupervisedTuningJob:
    settings: dict[str, Any] = dict(source_model="gemini-2.5-flash", train_dataset="gs://bucket/train.jsonl")
    settings.update(overrides)
    return sft.train(**settings)


def test_train_refresh_while_running_and_after_success(sdk_emulator: RunningEmulator, sdk_admin: EmulatorAdmin) -> None:
    job = train(validation_dataset="gs://bucket/val.jsonl", tuned_model_display_name="my-tuned", epochs=3,
                learning_rate_multiplier=1.0, adapter_size=4, labels={"team": "x"})
    assert job.state == JobState.JOB_STATE_PENDING and not job.has_ended
    # The SDK sent adapterSize 2 (ADAPTER_SIZE_FOUR's proto number): decoded by number, not position.
    stored = sdk_emulator.backend.get(job.resource_name, "v1beta1")
    assert stored["supervisedTuningSpec"]["hyperParameters"] == {
        "epochCount": "3", "learningRateMultiplier": 1.0, "adapterSize": "ADAPTER_SIZE_FOUR"}
    assert "experiment" not in stored  # a non-empty experiment in the create answer crashes sft.train
    hyper = job.to_dict()["supervisedTuningSpec"]["hyperParameters"]
    assert hyper["adapterSize"] == "ADAPTER_SIZE_FOUR" and job.labels == {"team": "x"}

    sdk_admin.advance(DURATION * 0.5)
    job.refresh()  # GET /v1beta1/{job}, then GET /v1/{experiment}
    assert job.state == JobState.JOB_STATE_RUNNING and not job.has_ended
    assert job.experiment is not None and job.experiment.name.startswith("tuning-experiment-")
    assert requests(sdk_admin).get("metadataStores.contexts.get", 0) >= 1

    sdk_admin.advance(DURATION)
    job.refresh()
    assert job.state == JobState.JOB_STATE_SUCCEEDED and job.has_ended and job.has_succeeded
    assert job.tuned_model_name.endswith("@1") and "/models/" in job.tuned_model_name
    assert "/endpoints/" in job.tuned_model_endpoint_name
    assert job.tuning_data_statistics.supervised_tuning_data_stats.tuning_step_count > 0
    assert job.error is None or not job.error.code


def test_every_call_went_through_v1beta1(sdk_emulator: RunningEmulator, sdk_admin: EmulatorAdmin) -> None:
    """The SDK talks v1beta1 only: v1 would have made no job (and a 404 is what it saw before)."""
    job = train()
    sft.SupervisedTuningJob(job.resource_name)
    list(sft.SupervisedTuningJob.list())
    job.cancel()
    stats = sdk_admin.stats()
    assert stats["versions"] == {"v1beta1": 4}
    assert set(stats["responses"]) == {"200"}


def test_constructor_by_name_and_by_id_and_list(sdk_emulator: RunningEmulator, sdk_admin: EmulatorAdmin) -> None:
    first, second = train(), train(train_dataset="gs://bucket/other.jsonl")
    sdk_admin.advance(DURATION * 2)
    by_name = sft.SupervisedTuningJob(first.resource_name)
    assert by_name.resource_name == first.resource_name and by_name.state == JobState.JOB_STATE_SUCCEEDED
    by_id = sft.SupervisedTuningJob(first.resource_name.rsplit("/", 1)[-1])  # expanded with the init project
    assert by_id.resource_name == first.resource_name
    listed = {j.resource_name: j.state for j in sft.SupervisedTuningJob.list()}
    assert listed == {first.resource_name: JobState.JOB_STATE_SUCCEEDED,
                      second.resource_name: JobState.JOB_STATE_SUCCEEDED}
    assert [j.resource_name for j in sft.SupervisedTuningJob.list(filter='labels.team="nobody"')] == []


def test_list_follows_page_tokens(emulator_factory: Callable[..., RunningEmulator]) -> None:
    emulator = emulator_factory(virtual_clock=True, default_page_size=2)
    init(emulator)
    try:
        made = {train(train_dataset=f"gs://bucket/t{i}.jsonl").resource_name for i in range(5)}
        assert {j.resource_name for j in sft.SupervisedTuningJob.list()} == made  # 3 pages of 2
    finally:
        initializer.global_config.__init__()  # type: ignore[misc]


def test_cancel(sdk_emulator: RunningEmulator, sdk_admin: EmulatorAdmin) -> None:
    job = train()
    job.cancel()
    job.refresh()
    assert job.state == JobState.JOB_STATE_CANCELLING
    sdk_admin.advance(DURATION)
    job.refresh()
    assert job.state == JobState.JOB_STATE_CANCELLED and job.has_ended and not job.has_succeeded
    assert job.error.code == 1
    with pytest.raises(gexc.BadRequest, match="already in state"):  # FAILED_PRECONDITION: nothing to cancel
        job.cancel()


def test_open_model_fields_of_v1beta1_round_trip(sdk_emulator: RunningEmulator) -> None:
    """customBaseModel, outputUri, tuningMode FULL (an enum number) and learningRate: v1beta1 only."""
    job = train(source_model=SourceModel(base_model="meta/llama3_1@llama-3.1-8b", custom_base_model="gs://bucket/w"),
                tuning_mode="FULL", learning_rate=1e-4, epochs=1, output_uri="gs://bucket/out")
    body = job.to_dict()
    assert body["customBaseModel"] == "gs://bucket/w" and body["outputUri"] == "gs://bucket/out"
    assert body["supervisedTuningSpec"]["tuningMode"] == "TUNING_MODE_FULL"
    assert body["supervisedTuningSpec"]["hyperParameters"]["learningRate"] == 1e-4
    # A v1 read of the same job leaves the v1beta1 fields out.
    v1 = sdk_emulator.backend.get(job.resource_name, "v1")
    assert "customBaseModel" not in v1 and "outputUri" not in v1
    assert "tuningMode" not in v1["supervisedTuningSpec"]
    assert v1["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": "1"}


def test_a_bad_request_is_a_bad_request(sdk_emulator: RunningEmulator) -> None:
    with pytest.raises(gexc.BadRequest, match="training_dataset_uri"):
        train(train_dataset="gs://bucket/train.csv")
    with pytest.raises(gexc.NotFound):
        sft.SupervisedTuningJob(f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/1234567890123456789")


def test_rebase_tuned_model_polls_ui_and_returns_a_v1beta1_job(
        emulator_factory: Callable[..., RunningEmulator]) -> None:
    # start_delay 0: the rebased job starts at the first poll, so the SDK's blocking wait ends
    # without anyone moving the virtual clock meanwhile.
    emulator = emulator_factory(virtual_clock=True, job_duration=DURATION, start_delay=0)
    init(emulator)
    try:
        with EmulatorAdmin(emulator.url, emulator.token) as admin:
            source = train(adapter_size=4, labels={"team": "a"})
            admin.advance(DURATION * 2)
            source.refresh()
            assert source.state == JobState.JOB_STATE_SUCCEEDED
            rebased = preview_sft.rebase_tuned_model(source.resource_name, artifact_destination="gs://bucket/out",
                                                     deploy_to_same_endpoint=True)
            assert rebased.resource_name != source.resource_name
            assert rebased.state == JobState.JOB_STATE_RUNNING and rebased.labels == {"team": "a"}
            counts = requests(admin)
            assert counts["rebaseTunedModel"] == 1 and counts["operations.get"] >= 1  # GET /ui/{operation}
            (operation,) = emulator.backend.list_operations(rebased.resource_name, "v1beta1")
            assert operation["response"]["@type"].endswith("aiplatform.v1beta1.TuningJob")
            admin.advance(DURATION * 2)
            rebased.refresh()
            assert rebased.state == JobState.JOB_STATE_SUCCEEDED
            # deploy_to_same_endpoint: the new model version serves from the old endpoint.
            assert rebased.tuned_model_endpoint_name == source.tuned_model_endpoint_name
            assert rebased.tuned_model_name.endswith("@2")
    finally:
        initializer.global_config.__init__()  # type: ignore[misc]


def test_int_enums_go_out_as_proto_numbers(sdk_emulator: RunningEmulator) -> None:
    """What the GAPIC client reads back: ADAPTER_SIZE_FOUR must come back as FOUR (2), not EIGHT (3)."""
    job = train(adapter_size=4)
    again = sft.SupervisedTuningJob(job.resource_name)
    size = again.gca_resource.supervised_tuning_spec.hyper_parameters.adapter_size
    assert size == SupervisedHyperParameters.AdapterSize.ADAPTER_SIZE_FOUR
