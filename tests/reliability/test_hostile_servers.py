"""Hostile servers: answers that would make plan adopt, re-create or cancel the wrong jobs, or
keep it waiting for ever, all served by a scriptable server on 127.0.0.1. Each must end in a
short `Error:` (exit 1, no plan, no traceback) or, for the client, a typed error in bounded time."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.api.client import ClientOptions, TuningClient
from reconciler.api.errors import ApiError, MalformedResponseError, TransportError
from reconciler.errors import ReconcilerError

from .conftest import LOCATION, assert_no_traceback, cli, write_manifests
from .servers import Answer, HostileServer, Request, job

PROJECT = "hostile-p"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
NUMBER = "123456789012"
TOKEN = "hostile-token-5c1d"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    s = HostileServer()
    monkeypatch.setenv("RECONCILER_ENDPOINT", s.url)
    monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", TOKEN)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)
    yield s
    s.close()


def client(server: HostileServer, **options: object) -> TuningClient:
    settings = {"endpoint": server.url, "access_token": TOKEN, "initial_backoff": 0.001, "max_backoff": 0.01}
    settings.update(options)
    return TuningClient(ClientOptions(**settings))  # type: ignore[arg-type]


def plan(capsys, tmp_path: Path, keys: list[str] = ["alpha"], project: str = PROJECT):  # noqa: B006
    write_manifests(tmp_path / "m", keys, project=project)
    return cli(capsys, "plan", str(tmp_path / "m"), "--state", str(tmp_path / "s.json"), "--location", LOCATION,
               "--no-color")


def assert_refused(run, *words: str) -> None:
    assert run.code == 1, run.text[:3000]
    assert_no_traceback(run.text)
    assert run.err.startswith("Error: "), run.err[:3000]
    assert run.out == "", run.out[:3000]  # no plan, not even part of one
    assert len(run.err) < 3000, run.err[:3000]
    for word in words:
        assert word in run.err, (word, run.err)


def lists_only(body: bytes | dict | list, status: int = 200):
    """A script answering every list with `body`, and everything else with a 404."""
    def script(request: Request) -> Answer:
        if request.path.endswith("/tuningJobs"):
            return Answer(status, body)
        return Answer(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "no"}})
    return script


# --- list answers that are not list answers ------------------------------------------------


@pytest.mark.parametrize("body, words", [
    (b"", ("empty",)),
    ({"jobs": []}, ("not a list answer",)),
    ({"error": {"code": 200}}, ("not a list answer",)),
    ({"tuningjobs": [job(f"projects/{NUMBER}/locations/{LOCATION}/tuningJobs/1")]}, ("not a list answer",)),
])
def test_a_list_answer_without_a_body_or_the_fields_of_a_list_is_malformed(server, tmp_path, capsys, body, words):
    server.script = lists_only(body)
    assert_refused(plan(capsys, tmp_path), "tuningJobs", *words)
    assert not (tmp_path / "s.json").exists()
    assert not [r for r in server.requests if r.method == "POST"]


def test_an_empty_object_is_an_empty_list(server, tmp_path, capsys):
    """proto3 JSON leaves an empty list out: `{}` is what a location without jobs answers."""
    server.script = lists_only({})
    run = plan(capsys, tmp_path)
    assert run.code == 0 and "1 to create" in run.out, run.text


# --- jobs of another project or location -----------------------------------------------------


def _pages(*pages: list[dict]):
    """A list answered in these pages (each with a fresh token but the last)."""
    tokens = [uuid.uuid4().hex for _ in pages]

    def script(request: Request) -> Answer:
        if not request.path.endswith("/tuningJobs"):
            return Answer(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "no"}})
        i = tokens.index(request.query["pageToken"]) + 1 if "pageToken" in request.query else 0
        body: dict = {"tuningJobs": pages[i]}
        if i + 1 < len(pages):
            body["nextPageToken"] = tokens[i]
        return Answer(200, body)
    return script


def labelled(name: str, key: str) -> dict:
    j = job(name)
    j["labels"]["reconciler-key"] = key
    return j


@pytest.mark.parametrize("pages, words", [
    ([[labelled(f"projects/other-project/locations/{LOCATION}/tuningJobs/7", "alpha")]],
     ("belongs to project other-project", "not hostile-p")),
    ([[labelled(f"projects/{NUMBER}/locations/europe-west4/tuningJobs/7", "alpha")]],
     ("in location europe-west4", f"not {LOCATION}")),
    ([[labelled(f"projects/{NUMBER}/locations/{LOCATION}/tuningJobs/7", "alpha")],
      [labelled(f"projects/987654321098/locations/{LOCATION}/tuningJobs/8", "beta")]],
     ("987654321098", f"carried {NUMBER}", "two projects")),
], ids=["other-project-id", "other-location", "two-project-numbers"])
def test_jobs_of_another_project_or_location_are_a_malformed_answer(server, tmp_path, capsys, pages, words):
    server.script = _pages(*pages)
    assert_refused(plan(capsys, tmp_path, ["alpha", "beta"]), "tuningJobs", *words)


def test_a_list_by_number_must_name_that_number(server, tmp_path, capsys):
    server.script = _pages([labelled(f"projects/987654321098/locations/{LOCATION}/tuningJobs/7", "alpha")])
    assert_refused(plan(capsys, tmp_path, project=f"\"{NUMBER}\""), "belongs to project 987654321098", f"not {NUMBER}")


def test_a_list_naming_another_number_than_state_recorded_is_malformed(server, tmp_path, capsys):
    """One number throughout the answer, but not the one state's jobs of that project carry."""
    from reconciler.state.model import StateEntry
    from reconciler.state.store import StateStore

    store = StateStore(tmp_path / "s.json")
    with store.lock("test"):
        store.load()
        store.record(StateEntry("alpha", PROJECT, LOCATION, f"projects/{NUMBER}/locations/{LOCATION}/tuningJobs/1",
                                "h", "JOB_STATE_SUCCEEDED"), f"{PROJECT}/{LOCATION}/alpha")
        store.commit()
    server.script = _pages([labelled(f"projects/987654321098/locations/{LOCATION}/tuningJobs/7", "beta")])
    assert_refused(plan(capsys, tmp_path, ["alpha", "beta"]), "987654321098", f"carried {NUMBER}", "state")


def test_one_number_for_the_project_id_throughout_is_accepted(server, tmp_path, capsys):
    """Vertex names jobs by number when asked by id: that is no reason to refuse."""
    server.script = _pages([labelled(f"projects/{NUMBER}/locations/{LOCATION}/tuningJobs/7", "alpha")],
                           [labelled(f"projects/{NUMBER}/locations/{LOCATION}/tuningJobs/8", "beta")])
    run = plan(capsys, tmp_path, ["alpha", "beta"])
    assert run.code == 0 and "2 to adopt" in run.out, run.text


def test_get_and_create_answers_must_be_the_job_asked_for(server):
    name = f"projects/{NUMBER}/locations/{LOCATION}/tuningJobs/42"
    answers = {"GET": job(f"projects/{NUMBER}/locations/{LOCATION}/tuningJobs/43"),
               "POST": job(f"projects/other-project/locations/{LOCATION}/tuningJobs/44")}
    server.script = lambda request: Answer(200, answers[request.method])
    with client(server) as c:
        with pytest.raises(MalformedResponseError, match="is not the job asked for"):
            c.get_job(name)
        with pytest.raises(MalformedResponseError, match="belongs to project other-project"):
            c.create_job(PARENT, {"baseModel": "m"}, "rid-1")


# --- lists that never end, answers that never end -------------------------------------------


def _endless(request: Request) -> Answer:
    return Answer(200, {"tuningJobs": [], "nextPageToken": uuid.uuid4().hex})


def test_endless_distinct_page_tokens_are_bounded(server):
    server.script = _endless
    with client(server) as c:
        with pytest.raises(MalformedResponseError, match="still more pages after 3 pages"):
            list(c.list_jobs(PARENT, page_size=500_000))  # a million jobs' worth of pages: 2, and one more
    assert len(server.lists()) == 3


@pytest.mark.slow
def test_plan_against_endless_page_tokens_stops_with_an_error(server, tmp_path, capsys):
    server.script = _endless
    assert_refused(plan(capsys, tmp_path), "still more pages", "never stops paging")
    assert len(server.lists()) == 1001  # 1,000,000 jobs at the plan's page size of 1,000, and one more


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["headers", "body"])
def test_a_slow_loris_answer_is_cut_at_the_total_deadline(server, phase):
    """One byte every 50 ms: each read is quick, the answer never is. The client gives up at
    its total deadline while the server is still sending."""
    body = {"tuningJobs": [], "padding": "x" * 2000}
    server.script = lambda request: Answer(200, body, trickle=0.05, trickle_body_only=phase == "body")
    with client(server, timeout=1.0, max_attempts=1) as c:
        with pytest.raises(TransportError, match="within 1s"):
            list(c.list_jobs(PARENT))
    assert not server.trickled.is_set()  # cut off mid-answer (sent whole, it would take 100 s)


# --- nesting past reason --------------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("status, body", [
    (200, DEEP),
    (200, b'{"tuningJobs": ' + DEEP + b"}"),
    (200, b'{"tuningJobs": [{"name": "x", "labels": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}]}"),
    (400, b'{"error": ' + DEEP + b"}"),
    (404, DEEP),
], ids=["list", "jobs", "labels", "error-400", "error-404"])
def test_deeply_nested_answers_are_malformed_not_a_recursion_error(server, tmp_path, capsys, status, body):
    server.script = lists_only(body, status)
    run = plan(capsys, tmp_path)
    assert run.code == 1 and run.err.startswith("Error: "), run.text[:3000]
    assert_no_traceback(run.text)
    assert "Recursion" not in run.text and len(run.err) < 3000


def test_deeply_nested_create_answer_is_refused(server):
    server.script = lambda request: Answer(200, DEEP)
    with client(server) as c:
        with pytest.raises(ApiError, match="nested deeper than"):
            c.create_job(PARENT, {"baseModel": "m"}, "rid-1")


# --- whatever the server says, a clear error ------------------------------------------------

_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                st.sampled_from(["tuningJobs", "nextPageToken", "name", "state", "labels",
                                                 "error", "x"]), inner, max_size=3), max_leaves=10)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# (no 5xx: those are retried for a minute)
@given(pages=st.lists(_json_values, min_size=1, max_size=3), status=st.sampled_from([200, 200, 400, 404]))
def test_random_list_answers_give_a_plan_or_a_clear_error(server, tmp_path, capsys, pages, status):
    counter = itertools.count()

    def script(request: Request) -> Answer:
        page = pages[min(next(counter), len(pages) - 1)]
        return Answer(status, json.dumps(page).encode())

    server.script = script
    run = plan(capsys, tmp_path)
    assert run.code in (0, 1), run.text[:3000]
    assert_no_traceback(run.text)
    if run.code == 1:
        assert run.err.startswith("Error: ") and len(run.err) < 5000, run.err[:3000]
    assert not [r for r in server.requests if r.method == "POST"]  # plan never creates


def test_the_client_never_raises_anything_but_its_own_errors(server):
    """The same answers straight at the client: only ReconcilerError subclasses come out."""
    for body in (b"", b"null", b"[]", b"{\"tuningJobs\": 5}", DEEP, b"\xff\xfe", b'{"nextPageToken": []}'):
        server.script = lambda request, body=body: Answer(200, body)
        with client(server, max_attempts=1) as c:
            try:
                list(c.list_jobs(PARENT))
            except ReconcilerError:
                pass
