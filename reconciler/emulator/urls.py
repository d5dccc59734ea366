"""The routing table: (HTTP method, path pattern) -> handler name, API method and query
parameters, exactly as the discovery documents lay out `projects.locations.tuningJobs`.

Every tuningJobs method is served under `/v1` and `/v1beta1` (the route knows which: answers
follow that version). Operation routes are also served under `/ui`: the GAPIC clients'
operation pollers (and so the Vertex AI SDK's `rebase_tuned_model`) ask for
`/ui/projects/.../operations/{op}`; there an operation answers in the version it was started
through. `operations.list` exists in v1 only. The MetadataService `contexts.get` of a job's
experiment is served under both versions (the SDK asks v1 even for a v1beta1 job).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One path segment; ':' is excluded so that `{id}:cancel` splits off the custom verb.
_SEG = r"[^/:]+"
PARENT = rf"projects/{_SEG}/locations/{_SEG}"
JOB = rf"{PARENT}/tuningJobs/{_SEG}"
OPERATION = rf"{JOB}/operations/{_SEG}"
CONTEXT = rf"{PARENT}/metadataStores/{_SEG}/contexts/{_SEG}"
VERSIONS = ("v1", "v1beta1")

# System parameters Google's front end accepts on every method.
SYSTEM_PARAMS = frozenset(
    {
        "alt",
        "$alt",
        "prettyPrint",
        "$prettyPrint",
        "fields",
        "$fields",
        "key",
        "quotaUser",
        "$.xgafv",
        "access_token",
        "oauth_token",
        "callback",
        "uploadType",
        "upload_protocol",
        "userIp",
    }
)


@dataclass(frozen=True)
class Route:
    method: str  # HTTP method
    pattern: re.Pattern[str]  # full match on the path; group "name" is the resource name
    handler: str  # function name in server.py's handler table
    api_method: str  # stats key: create, get, list, cancel, rebaseTunedModel, operations.get, ...
    params: frozenset[str] = frozenset()  # query parameters besides the system ones
    admin: bool = False
    version: str | None = None  # the REST version of the path (None: `/ui`, the operation's own)


def _api(method: str, template: str, handler: str, api_method: str, params: tuple[str, ...] = (),
         prefixes: tuple[str, ...] = VERSIONS) -> list[Route]:
    return [
        Route(method, re.compile(f"^/{prefix}/{template}$"), handler, api_method, frozenset(params),
              version=prefix if prefix in VERSIONS else None)
        for prefix in prefixes
    ]


_BOTH = (*VERSIONS, "ui")

ROUTES: list[Route] = [
    *_api("POST", rf"(?P<name>{PARENT})/tuningJobs", "create", "create"),
    *_api("GET", rf"(?P<name>{PARENT})/tuningJobs", "list", "list", ("filter", "pageSize", "pageToken")),
    *_api("POST", rf"(?P<name>{PARENT})/tuningJobs:rebaseTunedModel", "rebase", "rebaseTunedModel"),
    *_api("GET", rf"(?P<name>{JOB})", "get", "get"),
    *_api("POST", rf"(?P<name>{JOB}):cancel", "cancel", "cancel"),
    *_api("GET", rf"(?P<name>{JOB})/operations", "list_operations", "operations.list",
          ("filter", "pageSize", "pageToken", "returnPartialSuccess"), ("v1", "ui")),
    *_api("GET", rf"(?P<name>{OPERATION})", "get_operation", "operations.get", (), _BOTH),
    *_api("DELETE", rf"(?P<name>{OPERATION})", "delete_operation", "operations.delete", (), _BOTH),
    *_api("POST", rf"(?P<name>{OPERATION}):cancel", "cancel_operation", "operations.cancel", (), _BOTH),
    *_api("POST", rf"(?P<name>{OPERATION}):wait", "wait_operation", "operations.wait", ("timeout",), _BOTH),
    *_api("GET", rf"(?P<name>{CONTEXT})", "get_context", "metadataStores.contexts.get"),
    Route("POST", re.compile(r"^/__emulator/seed$"), "admin_seed", "admin.seed", admin=True),
    Route("GET", re.compile(r"^/__emulator/stats$"), "admin_stats", "admin.stats", admin=True),
    Route("POST", re.compile(r"^/__emulator/advance$"), "admin_advance", "admin.advance", admin=True),
    Route("GET", re.compile(r"^/__emulator/faults$"), "admin_get_faults", "admin.faults", admin=True),
    Route("POST", re.compile(r"^/__emulator/faults$"), "admin_faults", "admin.faults", admin=True),
    Route("POST", re.compile(r"^/__emulator/jobs/(?P<name>[^:]+):setState$"), "admin_set_state", "admin.setState",
          admin=True),
    Route("POST", re.compile(r"^/__emulator/reset$"), "admin_reset", "admin.reset", admin=True),
]


@dataclass(frozen=True)
class Match:
    route: Route
    name: str


def resolve(method: str, path: str) -> Match | None:
    """The route for a request, or None (the caller answers 404)."""
    for route in ROUTES:
        if route.method != method:
            continue
        found = route.pattern.match(path)
        if found:
            return Match(route, found.groupdict().get("name") or "")
    return None
