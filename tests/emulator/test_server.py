"""The emulator over raw HTTP: wire format, errors, auth, admin API, faults, persistence."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.emulator.admin import AdminError, EmulatorAdmin
from reconciler.emulator.server import RunningEmulator

PARENT = "projects/my-project/locations/us-central1"
JOBS = f"/v1/{PARENT}/tuningJobs"
BODY = {
    "baseModel": "gemini-2.5-flash",
    "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/train.jsonl"},
    "labels": {"managed-by": "tuning-reconciler"},
}


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {emulator.token}"}) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == response.status_code
    return error


def test_create_get_list_cancel_round_trip(http: httpx.Client, admin: EmulatorAdmin) -> None:
    created = http.post(JOBS, json=BODY)
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["state"] == "JOB_STATE_PENDING"
    assert http.get(f"/v1/{job['name']}").json() == job
    listed = http.get(JOBS, params={"filter": 'labels.managed-by="tuning-reconciler"'}).json()
    assert [j["name"] for j in listed["tuningJobs"]] == [job["name"]]
    assert "nextPageToken" not in listed
    cancelled = http.post(f"/v1/{job['name']}:cancel", json={})
    assert cancelled.status_code == 200 and cancelled.json() == {}
    admin.advance(10)
    final = http.get(f"/v1/{job['name']}").json()
    assert final["state"] == "JOB_STATE_CANCELLED" and final["error"]["code"] == 1


def test_empty_list_is_an_empty_object(http: httpx.Client) -> None:
    response = http.get(JOBS)
    assert response.status_code == 200 and response.json() == {}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Request is missing required authentication credential."),
        ({"Authorization": "Basic abc"}, "Request is missing required authentication credential."),
        ({"Authorization": "Bearer wrong"}, "Request had invalid authentication credentials."),
    ],
)
@pytest.mark.parametrize("path", [JOBS, "/__emulator/stats"])
def test_requests_without_the_token_get_401(emulator: RunningEmulator, headers: dict[str, str], message: str,
                                            path: str) -> None:
    response = httpx.get(emulator.url + path, headers=headers)
    assert response.status_code == 401
    error = error_of(response)
    assert error["status"] == "UNAUTHENTICATED"
    assert error["message"].startswith(message)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_token_none_accepts_any_bearer_token(emulator_factory: Callable[..., RunningEmulator]) -> None:
    emulator = emulator_factory(token=None)
    assert httpx.get(emulator.url + JOBS, headers={"Authorization": "Bearer anything"}).status_code == 200
    assert httpx.get(emulator.url + JOBS).status_code == 401


def test_unknown_path_is_json_404(http: httpx.Client) -> None:
    response = http.get("/v1/projects/p/locations/l/widgets")
    assert response.status_code == 404
    assert error_of(response)["status"] == "NOT_FOUND"


def test_get_missing_job_is_404_with_name(http: httpx.Client) -> None:
    response = http.get(f"{JOBS}/1234567890123456789")
    assert response.status_code == 404
    error = error_of(response)
    assert error["status"] == "NOT_FOUND"
    assert "1234567890123456789" in error["message"] and "does not exist" in error["message"]


def test_system_parameters_are_accepted(http: httpx.Client) -> None:
    job = http.post(JOBS, json=BODY).json()
    for query in ("alt=json", "prettyPrint=false", "fields=name", "key=abc", "%24alt=json%3Benum-encoding%3Dint",
                  "$alt=json;enum-encoding=int", "quotaUser=x"):
        response = http.get(f"/v1/{job['name']}?{query}")
        assert response.status_code == 200, (query, response.text)


def test_enum_encoding_int_returns_enum_numbers(http: httpx.Client, admin: EmulatorAdmin) -> None:
    job = http.post(JOBS, json=BODY).json()
    admin.advance(100)
    raw = http.get(f"/v1/{job['name']}?$alt=json;enum-encoding=int").json()
    assert raw["state"] == 4  # JOB_STATE_SUCCEEDED
    assert isinstance(raw["supervisedTuningSpec"]["hyperParameters"]["adapterSize"], int)
    named = http.get(f"/v1/{job['name']}").json()
    assert named["state"] == "JOB_STATE_SUCCEEDED"


def test_pretty_print(http: httpx.Client) -> None:
    job = http.post(JOBS, json=BODY).json()
    assert "\n" in http.get(f"/v1/{job['name']}?prettyPrint=true").text
    assert "\n" not in http.get(f"/v1/{job['name']}").text


def test_unknown_query_parameter_is_400(http: httpx.Client) -> None:
    response = http.get(JOBS, params={"bogus": "1"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith('Invalid JSON payload received. Unknown name "bogus"')


def test_bad_page_size_is_400(http: httpx.Client) -> None:
    response = http.get(JOBS, params={"pageSize": "ten"})
    assert response.status_code == 400
    assert "page_size" in error_of(response)["message"]


def test_create_validation_error_has_google_shape(http: httpx.Client) -> None:
    response = http.post(JOBS, json={"baseModel": "m", "supervisedTuningSpec": {"trainingDatasetUri": "/x.csv"}})
    assert response.status_code == 400
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == (
        "List of found errors:\t1.Field: tuning_job.supervised_tuning_spec.training_dataset_uri; "
        "Message: training_dataset_uri should be a GCS object of type JSONL.\t"
    )
    assert error["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [
                {
                    "field": "tuning_job.supervised_tuning_spec.training_dataset_uri",
                    "description": "training_dataset_uri should be a GCS object of type JSONL.",
                }
            ],
        }
    ]


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]"])
def test_malformed_body_is_400(http: httpx.Client, content: bytes) -> None:
    response = http.post(JOBS, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith("Invalid JSON payload received.")


def test_bad_filter_and_bad_page_token_are_400(http: httpx.Client) -> None:
    bad_filter = http.get(JOBS, params={"filter": 'labels.a="b" AND ('})
    assert bad_filter.status_code == 400
    assert error_of(bad_filter)["message"].startswith('Invalid filter "labels.a="b" AND (": expected')
    bad_token = http.get(JOBS, params={"pageToken": "not-a-token"})
    assert bad_token.status_code == 400
    assert error_of(bad_token)["status"] == "INVALID_ARGUMENT"
    assert "page token" in error_of(bad_token)["message"]


def test_cancel_finished_job_is_failed_precondition(http: httpx.Client, admin: EmulatorAdmin) -> None:
    job = http.post(JOBS, json=BODY).json()
    admin.advance(100)
    response = http.post(f"/v1/{job['name']}:cancel", json={})
    assert response.status_code == 400
    error = error_of(response)
    assert error["status"] == "FAILED_PRECONDITION" and "JOB_STATE_SUCCEEDED" in error["message"]


def test_paging_with_page_size_one_visits_every_job_once(http: httpx.Client, admin: EmulatorAdmin) -> None:
    names = admin.seed(PARENT, 5, labels={"managed-by": "tuning-reconciler", "reconciler-key": "k{n}"})
    admin.seed(PARENT, 3, labels={"managed-by": "someone-else"})
    seen: list[str] = []
    token = None
    while True:
        params = {"pageSize": "1", "filter": 'labels.managed-by="tuning-reconciler"'}
        if token:
            params["pageToken"] = token
        page = http.get(JOBS, params=params).json()
        seen += [j["name"] for j in page["tuningJobs"]]
        token = page.get("nextPageToken")
        if not token:
            break
        http.post(JOBS, json=BODY)  # newer matching jobs must not disturb the walk
    assert seen == names[::-1]


def test_operations_are_served_under_v1_and_ui(http: httpx.Client, admin: EmulatorAdmin) -> None:
    source = http.post(JOBS, json=BODY).json()
    admin.advance(100)
    op = http.post(f"{JOBS}:rebaseTunedModel", json={"tunedModelRef": {"tuningJob": source["name"]},
                                                     "tuningJob": {"baseModel": "gemini-3-flash"}}).json()
    for prefix in ("/v1/", "/ui/"):
        got = http.get(prefix + op["name"])
        assert got.status_code == 200 and got.json()["name"] == op["name"]
    job_name = op["name"].split("/operations/")[0]
    listed = http.get(f"/ui/{job_name}/operations").json()
    assert [o["name"] for o in listed["operations"]] == [op["name"]]
    waited = http.post(f"/v1/{op['name']}:wait", params={"timeout": "0.05s"})
    assert waited.status_code == 200 and "done" not in waited.json()
    admin.advance(10)
    done = http.post(f"/ui/{op['name']}:wait", params={"timeout": "5s"}).json()
    assert done["done"] is True and done["response"]["baseModel"] == "gemini-3-flash"
    assert http.delete(f"/v1/{op['name']}").json() == {}
    assert http.get(f"/v1/{op['name']}").status_code == 404


def test_rebase_of_unfinished_job_is_failed_precondition(http: httpx.Client) -> None:
    source = http.post(JOBS, json=BODY).json()
    response = http.post(f"{JOBS}:rebaseTunedModel", json={"tunedModelRef": {"tuningJob": source["name"]}})
    assert response.status_code == 400 and error_of(response)["status"] == "FAILED_PRECONDITION"


# --- admin -----------------------------------------------------------------------------


def test_admin_seed_set_state_stats_reset(admin: EmulatorAdmin, http: httpx.Client) -> None:
    names = admin.seed(PARENT, 3, labels={"reconciler-key": "k{n}"}, state="JOB_STATE_RUNNING")
    job = admin.set_state(names[0].rsplit("/", 1)[1], "JOB_STATE_CANCELLED")
    assert job["state"] == "JOB_STATE_CANCELLED" and job["error"]["code"] == 1
    assert admin.set_state(names[1], "JOB_STATE_FAILED")["error"]["code"] == 13
    http.get(JOBS)
    http.get(JOBS)
    stats = admin.stats()
    assert stats["requests"]["list"] == 2
    assert stats["jobs"] == {"JOB_STATE_CANCELLED": 1, "JOB_STATE_FAILED": 1, "JOB_STATE_RUNNING": 1}
    admin.reset()
    assert http.get(JOBS).json() == {}
    assert admin.stats()["requests"].get("list") == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: a.seed("nonsense", 1), "Invalid parent"),
        (lambda a: a.seed(PARENT, -1), "count must be an integer"),
        (lambda a: a.advance(-1), "seconds must be a non-negative number"),
        (lambda a: a.faults(error_rate=2), "error_rate and drop_rate must lie between 0 and 1"),
        (lambda a: a.faults(speed=1), "unknown fault setting 'speed'"),
        (lambda a: a.set_state("1", "JOB_STATE_FAILED"), "HTTP 404"),
    ],
)
def test_admin_rejects_bad_requests(admin: EmulatorAdmin, call: Callable[[EmulatorAdmin], Any], message: str) -> None:
    with pytest.raises(AdminError) as info:
        call(admin)
    assert message in str(info.value)


# --- faults ----------------------------------------------------------------------------


def test_error_rate_gives_429_with_retry_after_and_503_but_not_on_admin(
    emulator: RunningEmulator, http: httpx.Client, admin: EmulatorAdmin
) -> None:
    admin.faults(error_rate=1.0, retry_after=2)
    statuses = []
    for _ in range(20):
        response = http.get(JOBS)
        error = error_of(response)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert error["status"] == "RESOURCE_EXHAUSTED" and response.headers["retry-after"] == "2"
        else:
            assert response.status_code == 503 and error["status"] == "UNAVAILABLE"
    assert set(statuses) == {429, 503}
    stats = admin.stats()  # admin routes never fault
    assert stats["requests"]["list"] == 20
    assert stats["faults"]["429"] + stats["faults"]["503"] == 20
    assert emulator.backend.jobs == {}


def test_faults_are_reproducible_for_a_seed(emulator_factory: Callable[..., RunningEmulator]) -> None:
    def run(seed: int) -> list[int]:
        emulator = emulator_factory(error_rate=0.5, seed=seed)
        headers = {"Authorization": f"Bearer {emulator.token}"}
        with httpx.Client(base_url=emulator.url, headers=headers) as client:
            return [client.get(JOBS).status_code for _ in range(30)]

    first = run(7)
    assert run(7) == first
    assert run(8) != first
    assert 200 in first and (429 in first or 503 in first)


def test_dropped_create_commits_the_job_and_breaks_the_connection(
    emulator: RunningEmulator, http: httpx.Client, admin: EmulatorAdmin
) -> None:
    admin.faults(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        http.post(JOBS, json=BODY)
    admin.faults(drop_rate=0.0)
    listed = http.get(JOBS).json()
    assert len(listed["tuningJobs"]) == 1  # committed exactly once
    assert admin.stats()["faults"]["dropped"] == 1
    # reads are never dropped
    admin.faults(drop_rate=1.0)
    assert http.get(JOBS).status_code == 200


@pytest.mark.slow
def test_quota_per_minute_refuses_creates_above_it_with_429(
    emulator: RunningEmulator, http: httpx.Client, admin: EmulatorAdmin
) -> None:
    admin.faults(quota_per_minute=60)  # one a second, ten in the bucket
    started = time.monotonic()
    codes = [http.post(JOBS, json=BODY).status_code for _ in range(14)]
    refilled = int(time.monotonic() - started) + 1  # one a second came back meanwhile (more on a slow machine)
    assert 10 <= codes.count(200) <= 10 + refilled and 429 in codes and set(codes) == {200, 429}
    refused = http.post(JOBS, json=BODY)
    assert refused.status_code == 429 and error_of(refused)["status"] == "RESOURCE_EXHAUSTED"
    assert all(http.get(JOBS).status_code == 200 for _ in range(5))  # reads are not counted
    time.sleep(1.1)
    assert http.post(JOBS, json=BODY).status_code == 200  # a token came back
    stats = admin.stats()
    assert stats["faults"]["quota"] == codes.count(429) + 1 and stats["faults"]["429"] == 0
    assert len(emulator.backend.jobs) == codes.count(200) + 1
    with pytest.raises(AdminError, match="must not be negative"):
        admin.faults(quota_per_minute=-1)


def test_the_quota_counts_per_project_and_location(
    emulator: RunningEmulator, http: httpx.Client, admin: EmulatorAdmin
) -> None:
    admin.faults(quota_per_minute=6)  # a bucket of one: the second create in a region is refused
    number = emulator.backend.project_number("my-project")
    assert http.post(JOBS, json=BODY).status_code == 200
    assert http.post(JOBS, json=BODY).status_code == 429
    # The same project by number shares the bucket; other regions and projects have their own.
    assert http.post(f"/v1/projects/{number}/locations/us-central1/tuningJobs", json=BODY).status_code == 429
    assert http.post("/v1/projects/my-project/locations/europe-west4/tuningJobs", json=BODY).status_code == 200
    assert http.post("/v1/projects/other-project/locations/us-central1/tuningJobs", json=BODY).status_code == 200
    assert admin.stats()["faults"]["quota"] == 2


def test_latency_does_not_block_16_concurrent_requests(emulator: RunningEmulator, admin: EmulatorAdmin) -> None:
    admin.faults(latency_ms=300)
    headers = {"Authorization": f"Bearer {emulator.token}"}
    limits = httpx.Limits(max_connections=32)
    with httpx.Client(base_url=emulator.url, headers=headers, limits=limits, timeout=10) as client:
        client.get(JOBS)  # warm up
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda _: client.get(JOBS).status_code, range(16)))
    assert codes == [200] * 16
    assert admin.stats()["maxInFlight"] >= 16  # all 16 held at once, not one after another


# --- persistence -----------------------------------------------------------------------


def test_data_file_keeps_jobs_and_operations_across_restarts(
    tmp_path: Path, emulator_factory: Callable[..., RunningEmulator]
) -> None:
    data = tmp_path / "emulator.json"
    first = emulator_factory(data_file=str(data), virtual_clock=True)
    headers = {"Authorization": f"Bearer {first.token}"}
    source = httpx.post(first.url + JOBS, json=BODY, headers=headers).json()
    EmulatorAdmin(first.url, first.token).advance(100)
    op = httpx.post(first.url + f"{JOBS}:rebaseTunedModel", headers=headers,
                    json={"tunedModelRef": {"tuningJob": source["name"]}}).json()
    before = httpx.get(first.url + f"/v1/{source['name']}", headers=headers).json()
    first.stop()
    saved = json.loads(data.read_text())
    assert len(saved["jobs"]) == 2 and len(saved["operations"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["emulator.json"]  # no temp files left behind
    second = emulator_factory(data_file=str(data), virtual_clock=True)
    assert httpx.get(second.url + f"/v1/{source['name']}", headers=headers).json() == before
    assert httpx.get(second.url + f"/v1/{op['name']}", headers=headers).json()["name"] == op["name"]
    assert len(httpx.get(second.url + JOBS, headers=headers).json()["tuningJobs"]) == 2


def test_fields_partial_response_over_http(http: httpx.Client, admin: EmulatorAdmin) -> None:
    admin.seed(PARENT, 3, labels={"reconciler-key": "k{n}"})
    page = http.get(JOBS, params={"pageSize": 2, "fields": "nextPageToken,tuningJobs(name,labels)"}).json()
    assert set(page) == {"nextPageToken", "tuningJobs"}
    assert all(set(job) == {"name", "labels"} for job in page["tuningJobs"])
    bad = http.get(JOBS, params={"fields": "tuningJobs("})
    assert bad.status_code == 400 and error_of(bad)["status"] == "INVALID_ARGUMENT"


@pytest.mark.slow
def test_50000_jobs_seed_and_list_over_http(http: httpx.Client, admin: EmulatorAdmin) -> None:
    started = time.perf_counter()
    names = admin.seed(PARENT, 50_000, labels={"managed-by": "tuning-reconciler", "reconciler-key": "k{n}"},
                       state="JOB_STATE_SUCCEEDED")
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    seen = 0
    params = {"pageSize": "1000", "filter": 'labels.managed-by="tuning-reconciler"',
              "fields": "nextPageToken,tuningJobs(name,state,labels)"}
    while True:
        page = http.get(JOBS, params=params).json()
        seen += len(page["tuningJobs"])
        if "nextPageToken" not in page:
            break
        params["pageToken"] = page["nextPageToken"]
    listed = time.perf_counter() - started
    assert seen == len(names) == 50_000
    assert seeded < 5.0, seeded
    assert listed < 10.0, listed


def test_dropped_rebase_commits_the_new_job(http: httpx.Client, admin: EmulatorAdmin,
                                            emulator: RunningEmulator) -> None:
    [source] = admin.seed(PARENT, 1, state="JOB_STATE_SUCCEEDED")
    admin.faults(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        http.post(f"{JOBS}:rebaseTunedModel", json={"tunedModelRef": {"tuningJob": source},
                                                    "tuningJob": {"labels": {"reconciler-request": "r1"}}})
    admin.faults(drop_rate=0.0)
    found = http.get(JOBS, params={"filter": 'labels.reconciler-request="r1"'}).json()["tuningJobs"]
    assert len(found) == 1 and found[0]["name"] != source
    assert len(emulator.backend.operations) == 1


def test_admin_seed_with_spec_and_faults_read_back(http: httpx.Client, admin: EmulatorAdmin) -> None:
    spec = {"baseModel": "gemini-2.0-flash",
            "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/other.jsonl"}, "labels": {"team": "t"}}
    [name] = admin.seed(PARENT, 1, labels={"k": "v"}, spec=spec)
    job = http.get(f"/v1/{name}").json()
    assert job["baseModel"] == "gemini-2.0-flash" and job["labels"] == {"team": "t", "k": "v"}
    with pytest.raises(AdminError, match="base_model is required"):
        admin.seed(PARENT, 1, spec={"supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}})
    admin.faults(latency_ms=5, error_rate=0.25)
    settings = http.get("/__emulator/faults").json()
    assert settings == {"latency_ms": 5, "error_rate": 0.25, "drop_rate": 0.0, "retry_after": 1,
                        "quota_per_minute": 0.0}
