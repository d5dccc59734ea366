"""Continuous tuning in the emulator, over real HTTP, as the service does it: the pre-tuned
model must come from a SUCCEEDED job of the same project and location (400 INVALID_ARGUMENT
with google.rpc.BadRequest field violations otherwise), `preTunedModel.baseModel` is filled by
the server, and the new job's model is a new version of that model, or a new model (@1) when
`tunedModelDisplayName` is set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconciler.api.client import ClientOptions, TuningClient
from reconciler.api.errors import InvalidArgumentError
from reconciler.emulator.admin import EmulatorAdmin
from reconciler.emulator.server import RunningEmulator

PARENT = "projects/my-project/locations/us-central1"
FIELD = "tuning_job.pre_tuned_model.tuned_model_name"
SFT = {"supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/more.jsonl"}}


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {emulator.token}"}) as client:
        yield client


def create(http: httpx.Client, body: dict[str, Any], parent: str = PARENT) -> httpx.Response:
    return http.post(f"/v1/{parent}/tuningJobs", json=body)


def succeeded_model(http: httpx.Client, admin: EmulatorAdmin, body: dict[str, Any] | None = None) -> dict:
    job = create(http, body or {"baseModel": "gemini-2.5-flash", **SFT}).json()
    admin.advance(3600)
    return http.get(f"/v1/{job['name']}").json()


def continued(model: str, **extra: Any) -> dict[str, Any]:
    return {"preTunedModel": {"tunedModelName": model}, **SFT, **extra}


def violation(response: httpx.Response) -> str:
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith("List of found errors:\t1.Field: ")
    (detail,) = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    (v,) = detail["fieldViolations"]
    assert v["field"] == FIELD
    return v["description"]


def test_a_new_version_of_the_same_model_and_the_base_model_filled_in(http, admin):
    first = succeeded_model(http, admin)
    model = first["tunedModel"]["model"]
    assert model.endswith("@1")
    second = create(http, continued(model)).json()
    assert second["preTunedModel"] == {"tunedModelName": model, "baseModel": "gemini-2.5-flash"}
    assert "baseModel" not in second
    admin.advance(3600)
    done = http.get(f"/v1/{second['name']}").json()
    assert done["tunedModel"]["model"] == model[:-2] + "@2"
    # From @2 again, a third stage: @3, and the base model is still the chain's first.
    third = create(http, continued(done["tunedModel"]["model"])).json()
    admin.advance(3600)
    third = http.get(f"/v1/{third['name']}").json()
    assert third["tunedModel"]["model"] == model[:-2] + "@3"
    assert third["preTunedModel"]["baseModel"] == "gemini-2.5-flash"
    # Tuning @1 again makes the next version after the latest, not @2 a second time.
    again = create(http, continued(model)).json()
    admin.advance(3600)
    assert http.get(f"/v1/{again['name']}").json()["tunedModel"]["model"] == model[:-2] + "@4"


def test_a_display_name_makes_a_new_model_at_version_one(http, admin):
    model = succeeded_model(http, admin)["tunedModel"]["model"]
    job = create(http, continued(model, tunedModelDisplayName="specialist")).json()
    admin.advance(3600)
    new = http.get(f"/v1/{job['name']}").json()["tunedModel"]["model"]
    assert new.endswith("@1") and new.split("@")[0] != model.split("@")[0]


def test_the_model_must_come_from_a_succeeded_job_of_the_same_project_and_location(http, admin):
    done = succeeded_model(http, admin)
    model = done["tunedModel"]["model"]
    model_id = model.split("/models/")[1].split("@")[0]
    number = model.split("/")[1]
    assert "must be in the project and location" in violation(
        create(http, continued(model), parent="projects/other-project/locations/us-central1"))
    assert "must be in the project and location" in violation(
        create(http, continued(model.replace("us-central1", "europe-west4")), parent=PARENT))
    assert "does not exist" in violation(create(http, continued(f"projects/{number}/locations/us-central1/models/42@1")))
    assert "does not exist" in violation(create(http, continued(f"projects/{number}/locations/us-central1/models/"
                                                                f"{model_id}@9")))
    assert "Invalid Model resource name" in violation(create(http, continued("models/1@1")))
    # The project id works as well as its number.
    assert create(http, continued(model.replace(f"projects/{number}/", "projects/my-project/"))).status_code == 200
    # A running job's model (it has none yet) and a FAILED job's model (uploaded, but failed) are refused.
    running = create(http, {"baseModel": "gemini-2.5-flash", **SFT}).json()
    running_model = f"projects/{number}/locations/us-central1/models/{running['name'].rsplit('/', 1)[1]}@1"
    assert "does not exist" in violation(create(http, continued(running_model)))
    failed = succeeded_model(http, admin, {"baseModel": "gemini-2.5-flash",
                                           "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/fail.jsonl"}})
    assert failed["state"] == "JOB_STATE_FAILED" and failed["tunedModel"]["model"]
    message = violation(create(http, continued(failed["tunedModel"]["model"])))
    assert "cannot be tuned further" in message and "JOB_STATE_FAILED" in message


def test_our_client_gets_the_error_as_invalid_argument_with_field_violations(emulator, http, admin):
    with TuningClient(ClientOptions(endpoint=emulator.url, access_token=emulator.token)) as client:
        with pytest.raises(InvalidArgumentError) as info:
            client.create_job(PARENT, continued("projects/1/locations/us-central1/models/7@1"), request_id="r1")
    assert info.value.field_violations()[0][0] == FIELD


def test_admin_seed_takes_one_spec_per_job(http, admin):
    """What benchmarks seed continuous-tuning chains with: each job its own spec and labels."""
    (head,) = admin.seed(PARENT, state="JOB_STATE_SUCCEEDED")
    model = http.get(f"/v1/{head}").json()["tunedModel"]["model"]
    names = admin.seed(PARENT, specs=[{**continued(model), "labels": {"own": f"v{i}"}} for i in range(2)],
                       labels={"k": "job-{n}"}, state="JOB_STATE_SUCCEEDED")
    jobs = [http.get(f"/v1/{n}").json() for n in names]
    assert [j["labels"] for j in jobs] == [{"own": "v0", "k": "job-0"}, {"own": "v1", "k": "job-1"}]
    assert all(j["preTunedModel"]["tunedModelName"] == model and j["state"] == "JOB_STATE_SUCCEEDED" for j in jobs)
    bad = http.post("/__emulator/seed", json={"parent": PARENT, "specs": ["x"]})
    assert bad.status_code == 400
