from __future__ import annotations

import pytest

from reconciler.emulator.urls import resolve

JOB = "projects/p/locations/us-central1/tuningJobs/123"
OP = f"{JOB}/operations/456"


@pytest.mark.parametrize(
    ("method", "path", "handler", "name"),
    [
        ("POST", "/v1/projects/p/locations/l/tuningJobs", "create", "projects/p/locations/l"),
        ("GET", "/v1/projects/p/locations/l/tuningJobs", "list", "projects/p/locations/l"),
        ("POST", "/v1/projects/p/locations/l/tuningJobs:rebaseTunedModel", "rebase", "projects/p/locations/l"),
        ("GET", f"/v1/{JOB}", "get", JOB),
        ("POST", f"/v1/{JOB}:cancel", "cancel", JOB),
        ("GET", f"/v1/{JOB}/operations", "list_operations", JOB),
        ("GET", f"/ui/{JOB}/operations", "list_operations", JOB),
        ("GET", f"/v1/{OP}", "get_operation", OP),
        ("GET", f"/ui/{OP}", "get_operation", OP),
        ("DELETE", f"/ui/{OP}", "delete_operation", OP),
        ("POST", f"/v1/{OP}:cancel", "cancel_operation", OP),
        ("POST", f"/ui/{OP}:wait", "wait_operation", OP),
        ("POST", "/__emulator/jobs/123:setState", "admin_set_state", "123"),
        ("POST", f"/__emulator/jobs/{JOB}:setState", "admin_set_state", JOB),
        ("GET", "/__emulator/stats", "admin_stats", ""),
    ],
)
def test_routes(method: str, path: str, handler: str, name: str) -> None:
    match = resolve(method, path)
    assert match is not None
    assert (match.route.handler, match.name) == (handler, name)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/ui/{JOB}"),  # only operations are served under /ui
        ("DELETE", f"/v1/{JOB}"),  # tuning jobs cannot be deleted
        ("GET", f"/v1/{JOB}:cancel"),
        ("POST", f"/v1/{JOB}:bogus"),
        ("GET", "/v2/projects/p/locations/l/tuningJobs"),
        ("GET", "/v1/projects/p/tuningJobs"),
    ],
)
def test_unrouted(method: str, path: str) -> None:
    assert resolve(method, path) is None
