"""Conformance: Google's discovery-based client (googleapiclient, static discovery document)
drives every tuningJobs method against a live emulator over HTTP, unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import google.auth.exceptions
import google.oauth2.credentials
import pytest
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from reconciler.emulator.admin import EmulatorAdmin
from reconciler.emulator.server import RunningEmulator

PARENT = "projects/my-project/locations/us-central1"
SPEC = {
    "baseModel": "gemini-2.5-flash",
    "tunedModelDisplayName": "support-bot",
    "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://bucket/train.jsonl",
        "hyperParameters": {"epochCount": "2", "adapterSize": "ADAPTER_SIZE_FOUR"},
    },
}


@pytest.fixture
def service(emulator: RunningEmulator) -> Iterator[Any]:
    credentials = google.oauth2.credentials.Credentials(emulator.token)
    with build(
        "aiplatform",
        "v1",
        static_discovery=True,
        client_options={"api_endpoint": emulator.url},
        credentials=credentials,
    ) as svc:
        yield svc


@pytest.fixture
def jobs(service: Any) -> Any:
    return service.projects().locations().tuningJobs()


def error_json(info: pytest.ExceptionInfo[HttpError]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(info.value.content)["error"]
    return body


def create(jobs: Any, **labels: str) -> dict[str, Any]:
    result: dict[str, Any] = jobs.create(parent=PARENT, body={**SPEC, "labels": labels}).execute()
    return result


def test_create_and_get(jobs: Any, admin: EmulatorAdmin) -> None:
    job = create(jobs, team="support")
    assert job["state"] == "JOB_STATE_PENDING"
    assert job["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": "2", "adapterSize": "ADAPTER_SIZE_FOUR"}
    assert jobs.get(name=job["name"]).execute() == job
    admin.advance(100)
    done = jobs.get(name=job["name"]).execute()
    assert done["state"] == "JOB_STATE_SUCCEEDED"
    assert done["tunedModelDisplayName"] == "support-bot"
    assert set(done["supervisedTuningSpec"]["hyperParameters"]) == {"epochCount", "adapterSize", "learningRateMultiplier"}


def test_list_pages_with_page_size_one_and_label_filter(jobs: Any) -> None:
    mine = [create(jobs, **{"managed-by": "tuning-reconciler", "reconciler-key": f"k{i}"})["name"] for i in range(3)]
    create(jobs, **{"managed-by": "someone-else"})
    request = jobs.list(parent=PARENT, pageSize=1, filter='labels.managed-by="tuning-reconciler"')
    seen: list[str] = []
    pages = 0
    while request is not None:
        response = request.execute()
        pages += 1
        seen += [job["name"] for job in response.get("tuningJobs", [])]
        request = jobs.list_next(request, response)
    assert seen == mine[::-1]
    assert pages == 3
    one = jobs.list(parent=PARENT, filter='labels.reconciler-key="k1"').execute()
    assert [j["name"] for j in one["tuningJobs"]] == [mine[1]]
    assert "nextPageToken" not in one


def test_get_missing_job_is_404(jobs: Any) -> None:
    with pytest.raises(HttpError) as info:
        jobs.get(name=f"{PARENT}/tuningJobs/1234567890123456789").execute()
    assert info.value.status_code == 404
    assert error_json(info)["status"] == "NOT_FOUND"


def test_invalid_create_is_400_with_field_violations(jobs: Any) -> None:
    with pytest.raises(HttpError) as info:
        jobs.create(parent=PARENT, body={"baseModel": "gemini-2.5-flash"}).execute()
    assert info.value.status_code == 400
    error = error_json(info)
    assert error["status"] == "INVALID_ARGUMENT"
    assert info.value.error_details == error["details"]
    assert error["details"][0]["fieldViolations"][0]["field"] == "tuning_job.tuning_spec"


def test_bad_filter_is_400(jobs: Any) -> None:
    with pytest.raises(HttpError) as info:
        jobs.list(parent=PARENT, filter="labels.a=(").execute()
    assert info.value.status_code == 400 and error_json(info)["status"] == "INVALID_ARGUMENT"


def test_cancel(jobs: Any, admin: EmulatorAdmin) -> None:
    job = create(jobs)
    assert jobs.cancel(name=job["name"], body={}).execute() == {}
    assert jobs.get(name=job["name"]).execute()["state"] == "JOB_STATE_CANCELLING"
    admin.advance(100)
    cancelled = jobs.get(name=job["name"]).execute()
    assert cancelled["state"] == "JOB_STATE_CANCELLED" and cancelled["error"]["code"] == 1
    with pytest.raises(HttpError) as info:
        jobs.cancel(name=job["name"], body={}).execute()
    assert info.value.status_code == 400 and error_json(info)["status"] == "FAILED_PRECONDITION"


def test_rebase_with_operation_polling(jobs: Any, admin: EmulatorAdmin) -> None:
    source = create(jobs, **{"managed-by": "tuning-reconciler"})
    admin.advance(100)
    op = jobs.rebaseTunedModel(
        parent=PARENT,
        body={"tunedModelRef": {"tuningJob": source["name"]}, "tuningJob": {"baseModel": "gemini-3-flash"}},
    ).execute()
    assert op["metadata"]["@type"].endswith("RebaseTunedModelOperationMetadata")
    operations = jobs.operations()
    polls = 0
    while True:
        current = operations.get(name=op["name"]).execute()
        polls += 1
        if current.get("done"):
            break
        assert polls < 5, "the operation never finished"
        admin.advance(1)
    assert polls > 1  # it was really polled while not done
    response = current["response"]
    assert response["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1.TuningJob"
    assert response["baseModel"] == "gemini-3-flash"
    assert response["state"] == "JOB_STATE_RUNNING"
    new_job = jobs.get(name=response["name"]).execute()
    assert new_job["labels"] == {"managed-by": "tuning-reconciler"}
    job_name = op["name"].split("/operations/")[0]
    assert [o["name"] for o in operations.list(name=job_name).execute()["operations"]] == [op["name"]]
    assert operations.wait(name=op["name"], timeout="1s").execute()["done"] is True
    assert operations.cancel(name=op["name"]).execute() == {}  # no effect on a finished operation
    assert operations.get(name=op["name"]).execute()["response"]["name"] == response["name"]
    assert operations.delete(name=op["name"]).execute() == {}
    with pytest.raises(HttpError) as info:
        operations.get(name=op["name"]).execute()
    assert info.value.status_code == 404


def test_rebase_of_missing_job_is_404(jobs: Any) -> None:
    with pytest.raises(HttpError) as info:
        jobs.rebaseTunedModel(
            parent=PARENT, body={"tunedModelRef": {"tuningJob": f"{PARENT}/tuningJobs/1234567890123456789"}}
        ).execute()
    assert info.value.status_code == 404


def test_wrong_token_makes_the_client_refresh(emulator: RunningEmulator) -> None:
    # Only a 401 makes google-auth try to refresh; a static token cannot, hence RefreshError.
    credentials = google.oauth2.credentials.Credentials("not-the-token")
    with build("aiplatform", "v1", static_discovery=True, client_options={"api_endpoint": emulator.url},
               credentials=credentials) as svc:
        with pytest.raises(google.auth.exceptions.RefreshError):
            svc.projects().locations().tuningJobs().list(parent=PARENT).execute()
    assert emulator.app.stats.as_dict()["responses"] == {"401": 1}
