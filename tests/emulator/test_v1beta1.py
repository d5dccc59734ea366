"""The emulator's v1beta1 surface: every tuningJobs method and its operations under `/v1beta1/`,
v1beta1 fields accepted and echoed (and left out of v1 answers), tuningJobState moving through
its sub-states, operations typed per version (`/ui/` in the version they were started through),
and the MetadataService context of a job's experiment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.emulator import exceptions as err
from reconciler.emulator import schema, store, substates
from reconciler.emulator.admin import EmulatorAdmin
from reconciler.emulator.backend import Backend
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import RunningEmulator

PARENT = "projects/my-project/locations/us-central1"
BETA = f"/v1beta1/{PARENT}/tuningJobs"
V1 = f"/v1/{PARENT}/tuningJobs"
SFT = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/train.jsonl"}}
# One body per v1beta1 tuning spec (distillation names its data promptDatasetUri).
SPECS: dict[str, dict[str, Any]] = {
    "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/t.jsonl", "tuningMode": "TUNING_MODE_PEFT_ADAPTER",
                             "hyperParameters": {"epochCount": "2", "batchSize": "8"}},
    "preferenceOptimizationSpec": {"trainingDatasetUri": "gs://bucket/p.jsonl", "hyperParameters": {"beta": 0.2}},
    "distillationSpec": {"promptDatasetUri": "gs://bucket/prompts.jsonl", "baseTeacherModel": "gemini-2.5-pro"},
    "reinforcementTuningSpec": {"trainingDatasetUri": "gs://bucket/r.jsonl",
                                "singleRewardConfig": {"rewardName": "exact", "stringMatchRewardScorer": {
                                    "stringMatchExpression": {"matchOperation": "EXACT_MATCH", "expression": "x"}}}},
    "fullFineTuningSpec": {"trainingDatasetUri": "gs://bucket/f.jsonl", "hyperParameters": {"learningRate": 0.001}},
    "partnerModelTuningSpec": {"trainingDatasetUri": "gs://bucket/m.jsonl", "hyperParameters": {"epochs": 3}},
    "veoTuningSpec": {"trainingDatasetUri": "gs://bucket/v.jsonl", "hyperParameters": {"tuningTask": "TUNING_TASK_T2V"}},
    "veoLoraTuningSpec": {"trainingDatasetUri": "gs://bucket/l.jsonl", "videoOrientation": "PORTRAIT",
                          "hyperParameters": {"adapterSize": "ADAPTER_SIZE_SIXTEEN"}},
}


def make(**overrides: Any) -> Backend:
    settings: dict[str, Any] = {"virtual_clock": True, "job_duration": 100.0}
    settings.update(overrides)
    return Backend(EmulatorConfig(**settings))


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {emulator.token}"}) as client:
        yield client


# --- the backend -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", sorted(SPECS))
def test_every_tuning_spec_is_accepted_echoed_and_fits_the_v1beta1_schema(spec: str) -> None:
    backend = make()
    body = {"baseModel": "gemini-2.5-flash", "outputUri": "gs://bucket/out", spec: SPECS[spec]}
    created = backend.create(PARENT, body, "v1beta1")
    assert created[spec]["hyperParameters"] == SPECS[spec].get("hyperParameters", {})  # `{}` when none given
    assert created["outputUri"] == "gs://bucket/out"
    seen = [created]
    for _ in range(4):
        backend.advance(30)
        seen.append(backend.get(created["name"], "v1beta1"))
    assert seen[-1]["state"] == "JOB_STATE_SUCCEEDED"
    job = schema.tuning_job("v1beta1")
    for answer in seen:
        # keep_read_only: output-only fields are checked too; an unknown one would raise
        assert schema.decode_message(job, answer, "", keep_read_only=True) == answer
        v1 = backend.get(created["name"], "v1")
        assert schema.decode_message(schema.TUNING_JOB, v1, "", keep_read_only=True) == v1  # v1 fits v1


def test_v1_answers_leave_the_v1beta1_fields_out() -> None:
    backend = make()
    created = backend.create(PARENT, {"baseModel": "meta/llama3_1@llama-3.1-8b", "customBaseModel": "gs://bucket/w",
                                      "outputUri": "gs://bucket/o", "supervisedTuningSpec": SPECS["supervisedTuningSpec"],
                                      "labels": {"a": "b"}}, "v1beta1")
    v1 = backend.get(created["name"], "v1")
    assert set(created) - set(v1) == {"customBaseModel", "outputUri", "tuningJobState"}
    assert v1["supervisedTuningSpec"] == {"trainingDatasetUri": "gs://bucket/t.jsonl",
                                          "hyperParameters": {"epochCount": "2"}}
    assert [j["name"] for j in backend.list(PARENT, version="v1").jobs] == [created["name"]]
    assert backend.list(PARENT, version="v1").jobs[0] == v1
    # A job made through v1 looks the same through either version, but for tuningJobState.
    plain = backend.create(PARENT, SFT)
    beta = backend.get(plain["name"], "v1beta1")
    assert beta.pop("tuningJobState") == substates.WAITING_FOR_QUOTA
    assert beta == backend.get(plain["name"], "v1")


def test_v1_refuses_v1beta1_fields() -> None:
    backend = make()
    for extra in ({"outputUri": "gs://b/o"}, {"customBaseModel": "gs://b/w"}):
        with pytest.raises(err.InvalidArgument, match="Unknown name"):
            backend.create(PARENT, {**SFT, **extra})
    with pytest.raises(err.InvalidArgument, match="Unknown name \"distillationSpec\""):
        backend.create(PARENT, {"baseModel": "m", "distillationSpec": SPECS["distillationSpec"]})
    with pytest.raises(err.InvalidArgument, match="Unknown name \"tuningMode\""):
        backend.create(PARENT, {"baseModel": "m", "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/t.jsonl", "tuningMode": "TUNING_MODE_FULL"}})


@pytest.mark.parametrize(("body", "field", "text"), [
    ({"baseModel": "m", "supervisedTuningSpec": SPECS["supervisedTuningSpec"], "veoTuningSpec": SPECS["veoTuningSpec"]},
     "tuning_job.tuning_spec", "Only one of supervised_tuning_spec or"),
    ({"baseModel": "m"}, "tuning_job.tuning_spec", "veo_lora_tuning_spec must be set"),
    ({"preTunedModel": {"tunedModelName": "projects/p/locations/l/models/1"}, "customBaseModel": "gs://b/w",
      "supervisedTuningSpec": SPECS["supervisedTuningSpec"]}, "tuning_job.custom_base_model", "requires base_model"),
    ({"baseModel": "m", "distillationSpec": {"baseTeacherModel": "gemini-2.5-pro"}},
     "tuning_job.distillation_spec.prompt_dataset_uri", "prompt_dataset_uri is required"),
    ({"baseModel": "m", "veoTuningSpec": {"trainingDatasetUri": "gs://b/v.mp4"}},
     "tuning_job.veo_tuning_spec.training_dataset_uri", "should be a GCS object of type JSONL"),
])
def test_v1beta1_validation(body: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(err.InvalidArgument) as info:
        make().create(PARENT, body, "v1beta1")
    violations = info.value.details[0]["fieldViolations"]
    assert any(v["field"] == field and text in v["description"] for v in violations), violations


def test_requests_decode_as_googles_front_end_does() -> None:
    """camelCase or snake_case keys, enum names or proto numbers, int64 as string or number."""
    backend = make()
    job = backend.create(PARENT, {
        "base_model": "veo-3.0-generate-001",
        "veo_lora_tuning_spec": {"training_dataset_uri": "gs://b/l.jsonl", "video_orientation": 2,
                                 "hyper_parameters": {"adapter_size": 16, "epoch_count": 3}},
    }, "v1beta1")
    assert job["veoLoraTuningSpec"] == {"trainingDatasetUri": "gs://b/l.jsonl", "videoOrientation": "PORTRAIT",
                                        "hyperParameters": {"adapterSize": "ADAPTER_SIZE_SIXTEEN", "epochCount": "3"}}
    with pytest.raises(err.InvalidArgument, match="TYPE_ENUM"):  # Veo's sizes are numbered 8, 16, 32
        backend.create(PARENT, {"baseModel": "m", "veoLoraTuningSpec": {
            "trainingDatasetUri": "gs://b/l.jsonl", "hyperParameters": {"adapterSize": 2}}}, "v1beta1")
    numbers = schema.enums_as_numbers(schema.tuning_job("v1beta1"), job)
    assert numbers["veoLoraTuningSpec"]["hyperParameters"]["adapterSize"] == 16
    assert numbers["tuningJobState"] == 1 and numbers["state"] == 2


def test_tuning_job_state_moves_through_its_sub_states() -> None:
    backend = make(start_delay=10.0)
    name = backend.create(PARENT, SFT, "v1beta1")["name"]
    seen = []
    for _ in range(21):  # every 5 s: the stages begin at 10, 19, 28 and 91 s, the job ends at 100 s
        job = backend.get(name, "v1beta1")
        seen.append((job["state"], job.get("tuningJobState")))
        backend.advance(5)
    assert seen[0] == ("JOB_STATE_PENDING", "TUNING_JOB_STATE_WAITING_FOR_QUOTA")
    running = [t for s, t in seen if s == "JOB_STATE_RUNNING"]
    assert list(dict.fromkeys(running)) == ["TUNING_JOB_STATE_PROCESSING_DATASET", "TUNING_JOB_STATE_WAITING_FOR_CAPACITY",
                                            "TUNING_JOB_STATE_TUNING", "TUNING_JOB_STATE_POST_PROCESSING"]
    assert seen[-1] == ("JOB_STATE_SUCCEEDED", None)
    # The sub-states do not move updateTime: only the job's own state does.
    other = backend.create(PARENT, SFT, "v1beta1")["name"]
    backend.advance(15)
    started = backend.get(other, "v1beta1")
    backend.advance(40)
    later = backend.get(other, "v1beta1")
    assert started["tuningJobState"] != later["tuningJobState"] and started["updateTime"] == later["updateTime"]


def test_sub_states_end_with_cancel_and_a_zero_length_job() -> None:
    backend = make()
    name = backend.create(PARENT, SFT, "v1beta1")["name"]
    backend.advance(50)
    assert backend.get(name, "v1beta1")["tuningJobState"] == "TUNING_JOB_STATE_TUNING"
    backend.cancel(name)
    assert "tuningJobState" not in backend.get(name, "v1beta1")
    instant = make(job_duration=0.0)
    quick = instant.create(PARENT, SFT, "v1beta1")["name"]
    instant.advance(0)
    assert instant.get(quick, "v1beta1")["state"] == "JOB_STATE_SUCCEEDED"


def test_pinned_states_have_their_sub_state() -> None:
    backend = make()
    name = backend.create(PARENT, SFT)["name"]
    assert backend.set_state(name, "JOB_STATE_RUNNING") and backend.get(name, "v1beta1")["tuningJobState"] == substates.TUNING
    backend.set_state(name, "JOB_STATE_PAUSED")
    assert "tuningJobState" not in backend.get(name, "v1beta1")


def test_sub_state_schedule() -> None:
    assert substates.next_stage(0, 100, None) == (0.0, substates.PROCESSING_DATASET)
    assert substates.next_stage(0, 100, substates.PROCESSING_DATASET) == (10.0, substates.WAITING_FOR_CAPACITY)
    assert substates.next_stage(0, 100, substates.TUNING) == (90.0, substates.POST_PROCESSING)
    assert substates.next_stage(0, 100, substates.POST_PROCESSING) is None
    assert substates.next_stage(5, 5, substates.PROCESSING_DATASET) is None  # nothing left: the end comes next


def test_operations_name_the_version_they_are_read_in() -> None:
    backend = make(start_delay=0.0)
    source = backend.create(PARENT, SFT, "v1beta1")["name"]
    backend.advance(200)
    op = backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": source}, "tuningJob": {"outputUri": "gs://b/o"}},
                        "v1beta1")
    assert op["metadata"]["@type"].endswith("aiplatform.v1beta1.RebaseTunedModelOperationMetadata")
    backend.advance(1)
    beta, v1, own = (backend.get_operation(op["name"], v) for v in ("v1beta1", "v1", None))
    assert beta["response"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1beta1.TuningJob"
    assert beta["response"]["outputUri"] == "gs://b/o"
    assert own == beta  # `/ui/`: the version the rebase was asked through
    assert v1["response"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1.TuningJob"
    assert "outputUri" not in v1["response"] and v1["metadata"]["@type"].endswith("v1.RebaseTunedModelOperationMetadata")
    # A rebase asked through v1 answers `/ui/` in v1 (what the v1 GAPIC client unpacks).
    again = backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": source}})
    backend.advance(1)
    assert backend.get_operation(again["name"])["response"]["@type"].endswith("aiplatform.v1.TuningJob")


def test_experiment_context_exists_once_the_job_runs() -> None:
    backend = make(project_numbers={"my-project": "123456789012"})
    name = backend.create(PARENT, SFT, "v1beta1")["name"]
    backend.advance(50)
    experiment = backend.get(name, "v1beta1")["experiment"]
    context = backend.get_context(experiment)
    assert context["schemaTitle"] == "system.Experiment" and context["metadata"] == {"experiment_deleted": False}
    assert context["name"] == experiment and experiment.startswith("projects/123456789012/")
    # Named by project id it is the same context.
    assert backend.get_context(experiment.replace("123456789012", "my-project")) == context
    with pytest.raises(err.NotFound):
        backend.get_context(f"{PARENT}/metadataStores/default/contexts/tuning-experiment-1")
    pending = backend.create(PARENT, SFT)["name"]
    assert "experiment" not in backend.get(pending)  # not before it runs, so no context either


def test_persistence_keeps_sub_states_v1beta1_fields_and_operation_versions(tmp_path: Path) -> None:
    backend = make(start_delay=0.0)
    name = backend.create(PARENT, {"baseModel": "m", "outputUri": "gs://b/o", **{"veoTuningSpec": SPECS["veoTuningSpec"]}},
                          "v1beta1")["name"]
    sft = backend.create(PARENT, SFT, "v1beta1")["name"]
    backend.advance(150)
    op = backend.rebase(PARENT, {"tunedModelRef": {"tuningJob": sft}}, "v1beta1")
    backend.advance(1)
    path = tmp_path / "data.json"
    store.write_atomic(path, json.dumps(backend.snapshot()).encode())
    restored = make(start_delay=0.0)
    restored.restore(store.load(path) or {})
    assert restored.get(name, "v1") == backend.get(name, "v1") and "outputUri" not in restored.get(name, "v1")
    assert restored.get(op["name"].rsplit("/operations/", 1)[0], "v1beta1")["tuningJobState"] == \
        backend.get(op["name"].rsplit("/operations/", 1)[0], "v1beta1")["tuningJobState"]
    assert restored.get_operation(op["name"]) == backend.get_operation(op["name"])
    restored.advance(200)
    assert "tuningJobState" not in restored.get(name, "v1beta1")


# --- over HTTP ---------------------------------------------------------------------------------

def test_every_method_under_v1beta1(http: httpx.Client, admin: EmulatorAdmin) -> None:
    created = http.post(BETA, params={"$alt": "json;enum-encoding=int"}, json={
        "baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://bucket/t.jsonl", "tuningMode": 1, "hyperParameters": {"adapterSize": 2}}})
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["supervisedTuningSpec"]["tuningMode"] == 1 and job["state"] == 2  # enums as proto numbers
    assert job["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == 2
    name = job["name"]
    assert http.get(f"/v1beta1/{name}").json()["tuningJobState"] == "TUNING_JOB_STATE_WAITING_FOR_QUOTA"
    assert [j["name"] for j in http.get(BETA).json()["tuningJobs"]] == [name]
    admin.advance(100)
    op = http.post(f"{BETA}:rebaseTunedModel", json={"tunedModelRef": {"tuningJob": name}}).json()
    for path in (f"/v1beta1/{op['name']}", f"/ui/{op['name']}"):
        assert http.get(path).json()["metadata"]["@type"].endswith("v1beta1.RebaseTunedModelOperationMetadata")
    waited = http.post(f"/v1beta1/{op['name']}:wait", params={"timeout": "0s"})
    assert waited.status_code == 200 and waited.json()["name"] == op["name"]
    assert http.post(f"/v1beta1/{op['name']}:cancel").status_code == 200
    assert http.get(f"/v1beta1/{name}/operations").status_code == 404  # no operations.list in v1beta1
    assert http.get(f"/v1/{op['name'].rsplit('/operations/', 1)[0]}/operations").status_code == 200
    assert http.delete(f"/v1beta1/{op['name']}").status_code == 200
    other = http.post(BETA, json=SFT).json()["name"]
    assert http.post(f"/v1beta1/{other}:cancel", json={}).json() == {}
    assert http.post(f"/v1beta1/{other}:cancel", content=b"").status_code == 200  # genai sends no body
    counts = admin.stats()["versions"]
    assert counts["v1beta1"] >= 10 and counts["ui"] == 1


def test_context_is_served_under_both_versions(http: httpx.Client, admin: EmulatorAdmin) -> None:
    name = http.post(BETA, json=SFT).json()["name"]
    admin.advance(1)
    experiment = http.get(f"/v1beta1/{name}").json()["experiment"]
    for version in ("v1", "v1beta1"):
        answer = http.get(f"/{version}/{experiment}", params={"$alt": "json;enum-encoding=int"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["schemaTitle"] == "system.Experiment" and "metadata" in answer.json()
    missing = http.get(f"/v1/{PARENT}/metadataStores/default/contexts/nope")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_v1_create_of_a_v1beta1_field_is_a_400(http: httpx.Client) -> None:
    answer = http.post(V1, json={**SFT, "outputUri": "gs://bucket/o"})
    assert answer.status_code == 400
    assert 'Unknown name "outputUri"' in answer.json()["error"]["message"]
