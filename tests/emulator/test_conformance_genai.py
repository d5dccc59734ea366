"""Conformance: google-genai (`client.tunings`, `api_version='v1beta1'`) against a live
emulator over HTTP, unchanged. It sends enums as strings, int64 as JSON numbers and
snake_case keys inside `preTunedModel`, and needs `state` as a string in every answer."""

from __future__ import annotations

from collections.abc import Iterator

import google.oauth2.credentials
import pytest
from google import genai
from google.genai import errors, types

from reconciler.emulator.admin import EmulatorAdmin
from reconciler.emulator.server import RunningEmulator

pytestmark = pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning")

PROJECT, LOCATION = "my-project", "us-central1"
TRAIN = types.TuningDataset(gcs_uri="gs://bucket/train.jsonl")


@pytest.fixture
def client(emulator: RunningEmulator) -> Iterator[genai.Client]:
    # A static token credential (AnonymousCredentials has no token, and genai refreshes those).
    made = genai.Client(vertexai=True, project=PROJECT, location=LOCATION,
                        credentials=google.oauth2.credentials.Credentials(token=emulator.token),
                        http_options=types.HttpOptions(api_version="v1beta1", base_url=emulator.url + "/"))
    yield made  # kept referenced: a collected Client closes its HTTP connection
    made.close()


def test_tune_get_through_its_states(client: genai.Client, admin: EmulatorAdmin, emulator: RunningEmulator) -> None:
    job = client.tunings.tune(
        base_model="gemini-2.5-flash", training_dataset=TRAIN,
        config=types.CreateTuningJobConfig(
            tuned_model_display_name="support", description="d", epoch_count=3, learning_rate_multiplier=1.0,
            adapter_size="ADAPTER_SIZE_FOUR", export_last_checkpoint_only=True, labels={"team": "x"},
            validation_dataset=types.TuningValidationDataset(gcs_uri="gs://bucket/val.jsonl")))
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.tuning_job_state == types.TuningJobState.TUNING_JOB_STATE_WAITING_FOR_QUOTA
    hyper = job.supervised_tuning_spec.hyper_parameters
    assert (hyper.epoch_count, hyper.adapter_size) == (3, types.AdapterSize.ADAPTER_SIZE_FOUR)
    assert job.labels == {"team": "x"} and job.tuned_model_display_name == "support"
    seen = []
    for _ in range(12):  # the finer state moves on while the job runs
        admin.advance(emulator.config.job_duration / 10)
        got = client.tunings.get(name=job.name)
        seen.append((got.state, got.tuning_job_state))
    assert (types.JobState.JOB_STATE_RUNNING, types.TuningJobState.TUNING_JOB_STATE_TUNING) in seen
    assert [s for s, _ in seen].count(types.JobState.JOB_STATE_SUCCEEDED) >= 1
    done = client.tunings.get(name=job.name)
    assert done.has_ended and done.has_succeeded and done.tuning_job_state is None
    assert done.tuned_model.model.endswith("@1") and done.tuned_model.endpoint
    assert done.experiment.startswith(f"projects/{emulator.backend.project_number(PROJECT)}/")


def test_list_pages_and_cancel(client: genai.Client, admin: EmulatorAdmin) -> None:
    names = [client.tunings.tune(base_model="gemini-2.5-flash",
                                 training_dataset=types.TuningDataset(gcs_uri=f"gs://bucket/t{i}.jsonl")).name
             for i in range(3)]
    pager = client.tunings.list(config=types.ListTuningJobsConfig(page_size=2))
    assert [j.name for j in pager] == names[::-1]  # newest first, over two pages
    client.tunings.cancel(name=names[0])  # no body at all
    assert client.tunings.get(name=names[0]).state == types.JobState.JOB_STATE_CANCELLING
    admin.advance(10)
    assert client.tunings.get(name=names[0]).state == types.JobState.JOB_STATE_CANCELLED
    assert admin.stats()["versions"] == {"v1beta1": 8}  # 3 creates, 2 list pages, a cancel, 2 gets


def test_continuous_tuning_sends_snake_case_pre_tuned_model(client: genai.Client, admin: EmulatorAdmin) -> None:
    first = client.tunings.tune(base_model="gemini-2.5-flash", training_dataset=TRAIN)
    admin.advance(10)
    model = client.tunings.get(name=first.name).tuned_model.model
    again = client.tunings.tune(base_model=model, training_dataset=TRAIN,
                                config=types.CreateTuningJobConfig(pre_tuned_model_checkpoint_id="1"))
    assert again.pre_tuned_model.tuned_model_name == model and again.pre_tuned_model.checkpoint_id == "1"
    assert again.base_model is None
    admin.advance(10)
    assert client.tunings.get(name=again.name).tuned_model.model.endswith("@2")  # a new version of that model


def test_v1beta1_methods_distillation_and_preference(client: genai.Client, emulator: RunningEmulator) -> None:
    distilled = client.tunings.tune(
        base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri="gs://bucket/prompts.jsonl"),
        config=types.CreateTuningJobConfig(method="DISTILLATION", base_teacher_model="gemini-2.5-pro",
                                           output_uri="gs://bucket/out"))
    assert distilled.distillation_spec.prompt_dataset_uri == "gs://bucket/prompts.jsonl"
    assert distilled.distillation_spec.base_teacher_model == "gemini-2.5-pro"
    assert distilled.output_uri == "gs://bucket/out"
    assert "distillationSpec" not in emulator.backend.get(distilled.name, "v1")  # v1 has no distillation
    preferred = client.tunings.tune(
        base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri="gs://bucket/pairs.jsonl"),
        config=types.CreateTuningJobConfig(method="PREFERENCE_TUNING", beta=0.1))
    assert preferred.preference_optimization_spec.hyper_parameters.beta == 0.1


def test_errors_are_client_errors(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        client.tunings.get(name=f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/1234567890123456789")
    assert info.value.code == 404
    with pytest.raises(errors.ClientError) as info:
        client.tunings.tune(base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri="gs://b/x.csv"))
    assert info.value.code == 400 and "training_dataset_uri" in str(info.value)


def test_genai_v1_sees_no_v1beta1_fields(emulator: RunningEmulator) -> None:
    """The same job through `api_version='v1'`: v1's answer leaves tuningJobState out."""
    beta = genai.Client(vertexai=True, project=PROJECT, location=LOCATION,
                        credentials=google.oauth2.credentials.Credentials(token=emulator.token),
                        http_options=types.HttpOptions(api_version="v1beta1", base_url=emulator.url + "/"))
    v1 = genai.Client(vertexai=True, project=PROJECT, location=LOCATION,
                      credentials=google.oauth2.credentials.Credentials(token=emulator.token),
                      http_options=types.HttpOptions(api_version="v1", base_url=emulator.url + "/"))
    try:
        job = beta.tunings.tune(base_model="gemini-2.5-flash", training_dataset=TRAIN)
        assert beta.tunings.get(name=job.name).tuning_job_state is not None
        assert v1.tunings.get(name=job.name).tuning_job_state is None
        assert v1.tunings.get(name=job.name).state == types.JobState.JOB_STATE_PENDING
    finally:
        beta.close()
        v1.close()
