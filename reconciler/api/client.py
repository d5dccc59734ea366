"""A typed, thread-safe client for the Vertex AI `tuningJobs` REST surface.

Safe to point at the real service: idempotent calls retry transient failures with bounded
backoff; creates (and rebases) are never repeated blindly but first look for the job an
earlier, unanswered attempt may have committed, through the `reconciler-request` label.
"""

from __future__ import annotations

import logging
import random
import re
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

from reconciler import __version__
from reconciler.api.auth import Credentials, credentials_for
from reconciler.api.endpoints import base_url_for, endpoint_override, is_emulator_endpoint
from reconciler.errors import ReconcilerError
from reconciler.model import ACTIVE_STATES, FINISHED_STATES, REQUEST_LABEL
from reconciler.api.retry import RETRYABLE_STATUSES, RetryBudget, RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

USER_AGENT = f"tuning-reconciler/{__version__}"
API_VERSION = "v1"

# google.rpc.Code numbers (operation errors carry these, HTTP errors carry the HTTP status).
RPC_CODES: dict[int, str] = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
# For error bodies that are not Google JSON (a proxy's HTML page, say).
HTTP_STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._~-]*"
_PARENT = re.compile(rf"^projects/{_SEGMENT}/locations/{_SEGMENT}$")
_JOB = re.compile(rf"^projects/{_SEGMENT}/locations/{_SEGMENT}/tuningJobs/{_SEGMENT}$")
_OPERATION = re.compile(rf"^projects/{_SEGMENT}/locations/{_SEGMENT}(?:/{_SEGMENT})*/operations/{_SEGMENT}$")
# A label value: what the request id must be to travel as one.
_REQUEST_ID = re.compile(r"^[a-z0-9_-]{1,63}$")
# Failures that happen before a single byte of the request reaches the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# ... and of those, the ones that mean the server is not there (PoolTimeout is our own queue).
_UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout)


# --------------------------------------------------------------------------- errors


class ApiError(ReconcilerError):
    """A Google API error. `code` is the HTTP status (or the google.rpc code for an
    operation's error), `status` the canonical name (NOT_FOUND, ...)."""

    def __init__(
        self, code: int, status: str, message: str, details: list | None = None, *, context: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.details = details or []
        self.context = context

    def field_violations(self) -> list[tuple[str, str]]:
        """(field, description) pairs from `google.rpc.BadRequest` details."""
        found = []
        for detail in self.details:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.BadRequest"):
                for violation in detail.get("fieldViolations") or []:
                    if isinstance(violation, dict):
                        found.append((str(violation.get("field", "")), str(violation.get("description", ""))))
        return found

    def __str__(self) -> str:
        text = f"{self.status} ({self.code}): {self.message.strip()}"
        violations = self.field_violations()
        if violations:
            text += "; " + "; ".join(f"{name}: {why}" for name, why in violations)
        if self.context:
            text += f" [{self.context}]"
        return text


class NotFoundError(ApiError):
    pass


class FailedPreconditionError(ApiError):
    pass


class InvalidArgumentError(ApiError):
    pass


class ResourceExhaustedError(ApiError):
    pass


class UnavailableError(ApiError):
    pass


class UnauthenticatedError(ApiError):
    pass


class PermissionDeniedError(ApiError):
    pass


class MalformedResponseError(ReconcilerError):
    """A 2xx answer whose content is not what the API documents: planning on it could be wrong."""


class TransportError(ReconcilerError):
    """The server could not be reached or did not answer, and retries are exhausted."""


class OperationTimeoutError(ReconcilerError):
    """A long-running operation was still not done when `wait_operation` gave up."""


class ResourceNameError(ReconcilerError, ValueError):
    """A resource name or parent that does not have the expected shape."""


_ERROR_CLASSES: dict[str, type[ApiError]] = {
    "NOT_FOUND": NotFoundError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "INVALID_ARGUMENT": InvalidArgumentError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "UNAVAILABLE": UnavailableError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "PERMISSION_DENIED": PermissionDeniedError,
}


def make_api_error(
    code: int, status: str, message: str, details: list | None = None, *, context: str = ""
) -> ApiError:
    """The typed ApiError subclass for `status`."""
    return _ERROR_CLASSES.get(status, ApiError)(code, status, message, details, context=context)


def _snippet(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def error_from_response(response: httpx.Response, context: str = "") -> ApiError:
    """Parse Google's JSON error body; anything else still gives a readable ApiError."""
    http_code = response.status_code
    fallback_status = HTTP_STATUSES.get(http_code, "UNKNOWN")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        status = error.get("status")
        details = error.get("details")
        return make_api_error(
            code if isinstance(code, int) else http_code,
            status if isinstance(status, str) and status else fallback_status,
            str(error.get("message") or response.reason_phrase or "no message"),
            details if isinstance(details, list) else [],
            context=context,
        )
    body = _snippet(response.text) if response.content else ""
    message = f"HTTP {http_code} {response.reason_phrase} with a non-JSON body"
    return make_api_error(http_code, fallback_status, message + (f": {body}" if body else ""), context=context)


def operation_error(operation: dict, context: str = "") -> ApiError:
    """The ApiError for a done operation's `error` (a google.rpc.Status)."""
    error = operation.get("error") or {}
    code = error.get("code") if isinstance(error.get("code"), int) else 2
    return make_api_error(
        code,
        RPC_CODES.get(code, "UNKNOWN"),
        str(error.get("message") or "operation failed"),
        error.get("details") if isinstance(error.get("details"), list) else [],
        context=context,
    )


# --------------------------------------------------------------------------- answers

JOB_STATES = frozenset(ACTIVE_STATES | FINISHED_STATES | {"JOB_STATE_UNSPECIFIED"})
_JOB_TIMES = ("createTime", "updateTime", "startTime", "endTime")
# A list page of 1,000 jobs is a few MB; anything near this is a broken or hostile server.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def check_tuning_job(job: object, where: str, require_state: bool = True, require_name: bool = True) -> dict:
    """`job` if it has the documented shape of the fields we plan with; else MalformedResponseError.

    An unknown `state` is refused rather than guessed at: treating a running job as finished
    (or the reverse) would plan a duplicate billed job or a wrong cancel.
    """
    def bad(field: str, problem: str) -> MalformedResponseError:
        return MalformedResponseError(f"{where}{field}: {problem}")

    if not isinstance(job, dict):
        raise bad("", f"expected a TuningJob object, got {_kind(job)}")
    name = job.get("name")
    if name is None and require_name:
        raise bad(".name", "missing")
    if name is not None and (not isinstance(name, str) or not _JOB.match(name)):
        raise bad(".name", f"not a tuning job name: {_snippet(repr(name), 80)}")
    state = job.get("state")
    if state is None and require_state:
        raise bad(".state", "missing")
    if state is not None and not isinstance(state, str):
        raise bad(".state", f"expected a string, got {_kind(state)}")
    if state is not None and state not in JOB_STATES:
        raise bad(".state", f"unknown value {_snippet(repr(state), 80)} (this version knows "
                            f"{', '.join(sorted(s.removeprefix('JOB_STATE_') for s in JOB_STATES))}); "
                            "upgrade tuning-reconciler if the API has added a state")
    labels = job.get("labels", {})
    if not isinstance(labels, dict):
        raise bad(".labels", f"expected an object, got {_kind(labels)}")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise bad(f".labels[{_snippet(repr(key), 80)}]", f"expected a string, got {_kind(value)}")
    for field_name in _JOB_TIMES:
        if field_name in job and not isinstance(job[field_name], str):
            raise bad(f".{field_name}", f"expected a timestamp string, got {_kind(job[field_name])}")
    error = job.get("error")
    if error is not None and not isinstance(error, dict):
        raise bad(".error", f"expected an object, got {_kind(error)}")
    return job


def _selected(fields: str | None, name: str) -> bool:
    """Whether a partial-response selection (None: everything) keeps the job field `name`."""
    return fields is None or re.search(rf"[(,]{name}[,)]", fields) is not None


def _check_page(page: dict, key: str, where: str, fields: str | None = None) -> list:
    items = page.get(key, [])
    if not isinstance(items, list):
        raise MalformedResponseError(f"{where}: {key}: expected a list, got {_kind(items)}")
    token = page.get("nextPageToken")
    if token is not None and not isinstance(token, str):
        raise MalformedResponseError(f"{where}: nextPageToken: expected a string, got {_kind(token)}")
    for i, item in enumerate(items):
        if key == "tuningJobs":
            check_tuning_job(item, f"{where}: {key}[{i}]", require_state=_selected(fields, "state"),
                             require_name=_selected(fields, "name"))
        elif not isinstance(item, dict):
            raise MalformedResponseError(f"{where}: {key}[{i}]: expected an object, got {_kind(item)}")
    return items


def _page_size(page_size: int | None) -> dict[str, str]:
    """The pageSize query parameter of a list call ({} for the server's default)."""
    if page_size is None:
        return {}
    if page_size < 1:
        raise ValueError("page_size must be positive")
    return {"pageSize": str(page_size)}


# --------------------------------------------------------------------------- names


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ResourceNameError(f"invalid {what} {value!r}")
    return value


def new_request_id() -> str:
    """A fresh request id: fits a label value, unique per create attempt series."""
    return uuid.uuid4().hex


def request_filter(request_id: str) -> str:
    return f'labels.{REQUEST_LABEL}="{request_id}"'


def _with_labels(resource: dict | None, labels: dict[str, str]) -> dict:
    """A copy of `resource` with `labels` merged into its labels (the caller's dict is untouched)."""
    result = dict(resource or {})
    result["labels"] = {**(result.get("labels") or {}), **labels}
    return result


# --------------------------------------------------------------------------- client


@dataclass
class ClientOptions:
    endpoint: str | None = None  # --endpoint; None: $RECONCILER_ENDPOINT, else regional Google
    max_connections: int = 8  # per base URL; size it to the apply parallelism
    # The time budget, not the attempt count, should end retries of a call the server keeps
    # answering with 429/503: with 6 attempts a 30% error rate failed ~1 create in 125 after
    # only ~5 s of a 60 s budget. Unreachable servers still fail fast (max_connect_attempts).
    max_attempts: int = 16
    max_retry_seconds: float = 60.0
    timeout: float = 60.0  # per HTTP request
    access_token: str | None = field(default=None, repr=False)  # explicit static token (tests)
    initial_backoff: float = 0.5
    max_backoff: float = 10.0
    max_connect_attempts: int = 6  # consecutive connection failures before giving up (~8 s)


ThrottleCallback = Callable[[float | None], None]


class TuningClient:
    """Thread-safe: share one instance between the workers of a ThreadPoolExecutor."""

    def __init__(self, options: ClientOptions | None = None, *, credentials: Credentials | None = None) -> None:
        self._options = options or ClientOptions()
        if self._options.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self._options.max_connect_attempts < 1:
            raise ValueError("max_connect_attempts must be at least 1")
        self._override = endpoint_override(self._options.endpoint)
        self._credentials = credentials or credentials_for(self._override, self._options.access_token)
        self._policy = RetryPolicy(
            max_attempts=self._options.max_attempts,
            max_total_seconds=self._options.max_retry_seconds,
            initial_backoff=self._options.initial_backoff,
            max_backoff=self._options.max_backoff,
        )
        self._lock = threading.Lock()
        self._http: dict[str, httpx.Client] = {}
        self._counts: Counter[str] = Counter()
        self._throttle_callbacks: list[ThrottleCallback] = []
        self._rng = random.Random()
        self._closed = False

    # ---- lifecycle

    def close(self) -> None:
        with self._lock:
            clients, self._http = list(self._http.values()), {}
            self._closed = True
        for client in clients:
            client.close()
        close = getattr(self._credentials, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> TuningClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TuningClient(endpoint={self._override or 'regional'!r})"

    # ---- observability hooks

    @property
    def request_counts(self) -> dict[str, int]:
        """HTTP requests sent per method (every attempt counts), e.g. {"list": 3, "create": 2}."""
        with self._lock:
            return dict(self._counts)

    def on_throttle(self, callback: ThrottleCallback) -> None:
        """Call `callback(retry_after_seconds_or_None)` whenever the server answers 429."""
        with self._lock:
            self._throttle_callbacks.append(callback)

    # ---- tuning jobs

    def list_jobs(self, parent: str, filter: str | None = None, page_size: int | None = None,
                  fields: str | None = None) -> Iterator[dict]:
        """Every job under `parent` matching `filter`, fetched lazily page by page.

        `fields` is Google's partial-response selection (e.g. `nextPageToken,tuningJobs(name)`):
        it must keep `nextPageToken`, or only the first page is read."""
        _check(_PARENT, parent, "parent")
        params: dict[str, str] = {}
        if filter:
            params["filter"] = filter
        if fields:
            params["fields"] = fields
        return self._paginate("list", parent, f"{parent}/tuningJobs", {**params, **_page_size(page_size)},
                              "tuningJobs")

    def get_job(self, name: str) -> dict:
        _check(_JOB, name, "tuning job name")
        return check_tuning_job(self._call("get", "GET", name, name), f"malformed answer to GET {name}: job")

    def create_job(self, parent: str, body: dict, request_id: str) -> dict:
        """Create a job labelled `reconciler-request: request_id`, exactly once.

        After an answer that may hide a committed create (connection lost, 5xx), the job is
        looked up by its request label before any new attempt; a 429 means nothing was
        created and is simply retried after the backoff.
        """
        _check(_PARENT, parent, "parent")
        _check_request_id(request_id)
        payload = _with_labels(body, {REQUEST_LABEL: request_id})
        job = self._call(
            "create",
            "POST",
            parent,
            f"{parent}/tuningJobs",
            body=payload,
            recover=lambda budget: self._find_job(parent, request_id, budget),
        )
        # A create that committed but answered nonsense is found again by its request label.
        return check_tuning_job(job, f"malformed answer to POST {parent}/tuningJobs: job")

    def cancel_job(self, name: str) -> None:
        _check(_JOB, name, "tuning job name")
        self._call("cancel", "POST", name, f"{name}:cancel", body={})

    def rebase_tuned_model(self, parent: str, body: dict, request_id: str) -> dict:
        """Start a rebase (returns the Operation), exactly once: the new job's labels carry
        the request id so that a lost answer can be recovered from the job's operations."""
        _check(_PARENT, parent, "parent")
        _check_request_id(request_id)
        payload = dict(body)
        payload["tuningJob"] = _with_labels(body.get("tuningJob"), {REQUEST_LABEL: request_id})
        return self._call(
            "rebase",
            "POST",
            parent,
            f"{parent}/tuningJobs:rebaseTunedModel",
            body=payload,
            recover=lambda budget: self._find_rebase_operation(parent, request_id, budget),
        )

    def find_job_by_request(self, parent: str, request_id: str) -> dict | None:
        """The job created with this request id, if any. The server-side filter narrows the
        list; the label is checked here as well since server filtering may be inexact."""
        _check(_PARENT, parent, "parent")
        return self._find_job(parent, request_id, None)

    # ---- operations

    # Every call under `.../tuningJobs/{id}/operations` (operations.get, list, cancel, delete,
    # wait). All are idempotent and retried on transient failures like get/list; a delete whose
    # answer was lost is settled by looking the operation up before it is sent again.

    def get_operation(self, name: str) -> dict:
        """operations.get: the Operation (`done`, `metadata`, then `response` or `error`)."""
        _check(_OPERATION, name, "operation name")
        return self._call("get_operation", "GET", name, name)

    def list_operations(self, job_name: str, page_size: int | None = None) -> Iterator[dict]:
        """operations.list: every operation of a job, fetched lazily page by page."""
        _check(_JOB, job_name, "tuning job name")
        return self._paginate("list_operations", job_name, f"{job_name}/operations", _page_size(page_size),
                              "operations")

    def cancel_operation(self, name: str) -> None:
        """operations.cancel: ask the server to stop the operation (a no-op once it is done).
        The operation then finishes with error code 1 (CANCELLED); it is not deleted."""
        _check(_OPERATION, name, "operation name")
        self._call("cancel_operation", "POST", name, f"{name}:cancel")  # no request body (discovery)

    def delete_operation(self, name: str) -> None:
        """operations.delete: forget the operation (the job it belongs to is untouched).

        If an attempt may have been carried out without an answer (connection lost, 5xx), the
        operation is looked up first: already gone means that attempt deleted it."""
        _check(_OPERATION, name, "operation name")

        def deleted(budget: RetryBudget) -> dict | None:
            try:
                self._call("get_operation", "GET", name, name, budget=budget)
            except NotFoundError:
                return {}
            return None

        self._call("delete_operation", "DELETE", name, name, recover=deleted)

    def wait_operation_once(self, name: str, timeout: float | None = None) -> dict:
        """operations.wait (`POST {name}:wait`): one call that the server holds until the
        operation is done or `timeout` seconds pass; returns the Operation, done or not (its
        `error` is not raised: see `wait_operation` for that).

        The timeout sent is at most 3/4 of the per-request HTTP timeout (and that much when
        None), so the server answers before our read gives up; loop for longer waits."""
        _check(_OPERATION, name, "operation name")
        if timeout is not None and not timeout >= 0:
            raise ValueError("timeout must not be negative")
        limit = self._options.timeout * 0.75
        seconds = limit if timeout is None else min(timeout, limit)
        params = {"timeout": (f"{seconds:.3f}".rstrip("0").rstrip(".") or "0") + "s"}  # a Duration: "2.5s"
        return self._call("wait_operation", "POST", name, f"{name}:wait", params=params)

    def wait_operation(self, name: str, timeout: float = 600, poll_interval: float = 1.0) -> dict:
        """Poll until the operation is done; return it, or raise its error as an ApiError."""
        deadline = time.monotonic() + timeout
        while True:
            operation = self.get_operation(name)
            if operation.get("done"):
                if operation.get("error"):
                    raise operation_error(operation, context=f"operation {name}")
                return operation
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationTimeoutError(f"operation {name} is still running after {timeout:g}s")
            time.sleep(min(poll_interval, remaining))

    # ---- plumbing

    def _find_job(self, parent: str, request_id: str, budget: RetryBudget | None) -> dict | None:
        params = {"filter": request_filter(request_id)}
        for job in self._paginate("list", parent, f"{parent}/tuningJobs", params, "tuningJobs", budget):
            if (job.get("labels") or {}).get(REQUEST_LABEL) == request_id:
                return job
        return None

    def _find_rebase_operation(self, parent: str, request_id: str, budget: RetryBudget | None) -> dict | None:
        job = self._find_job(parent, request_id, budget)
        if job is None:
            return None
        _check(_JOB, job.get("name", ""), "tuning job name")
        operations = list(
            self._paginate("list_operations", job["name"], f"{job['name']}/operations", {}, "operations", budget)
        )
        rebases = [
            op for op in operations
            if str((op.get("metadata") or {}).get("@type", "")).endswith("RebaseTunedModelOperationMetadata")
        ]
        if rebases or operations:
            return (rebases or operations)[0]
        # The rebase did commit (its job exists): creating again would make a second job.
        raise ReconcilerError(
            f"the rebase committed as {job['name']} but its operation could not be found; "
            "run plan again to pick the job up"
        )

    def _client_for(self, resource: str) -> httpx.Client:
        base = base_url_for(resource, self._override)
        with self._lock:
            if self._closed:
                raise ReconcilerError("the API client is closed")
            client = self._http.get(base)
            if client is None:
                size = self._options.max_connections
                client = httpx.Client(
                    base_url=base,
                    headers={"user-agent": USER_AGENT, "accept": "application/json"},
                    timeout=httpx.Timeout(self._options.timeout, connect=min(self._options.timeout, 15.0)),
                    limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                    follow_redirects=False,
                    # Proxy settings from the environment must never capture emulator traffic.
                    trust_env=not is_emulator_endpoint(base),
                    # verify is left at its default (True): TLS checks are never turned off.
                )
                self._http[base] = client
            return client

    def _send(self, op: str, method: str, resource: str, path: str,
              params: dict[str, str] | None, body: dict | None) -> httpx.Response:
        """One HTTP attempt."""
        client = self._client_for(resource)
        headers = self._credentials.headers()
        with self._lock:
            self._counts[op] += 1
        started = time.monotonic()
        request = client.build_request(method, f"/{API_VERSION}/{path}", params=params, json=body, headers=headers)
        response = _read_bounded(client.send(request, stream=True), f"{method} {path}")
        log.debug("%s %s -> %d in %.0f ms", method, path, response.status_code, (time.monotonic() - started) * 1000)
        return response

    def _scrub(self, text: str) -> str:
        for secret in self._credentials.secrets():
            # Real tokens are long; scrubbing a 1-letter test token would shred every message.
            if secret and len(secret) >= 8:
                text = text.replace(secret, "<redacted>")
        return text

    def _throttled(self, retry_after: float | None) -> None:
        with self._lock:
            callbacks = list(self._throttle_callbacks)
        for callback in callbacks:
            callback(retry_after)

    def _call(self, op: str, method: str, resource: str, path: str, *,
              params: dict[str, str] | None = None, body: dict | None = None,
              recover: Callable[[RetryBudget], dict | None] | None = None,
              budget: RetryBudget | None = None) -> dict:
        """Send with retries and return the JSON answer.

        Without `recover` the call is idempotent and every transient failure is retried.
        With it (create, rebase) an attempt that may have committed is never repeated
        before `recover()` has looked for its result. Look-ups share the call's retry budget,
        so attempts and time stay bounded for the call as a whole.
        """
        context = f"{method} {path}"
        budget = budget or RetryBudget(self._policy, rng=self._rng)
        may_have_committed = False
        auth_retried = False
        unreachable = 0  # consecutive attempts that could not connect
        while True:
            if may_have_committed and recover is not None:
                found = self._recover(recover, budget, context)
                if found is not None:
                    log.info("%s: found the result of an unanswered earlier attempt", context)
                    return found
            retry_after: float | None = None
            try:
                response = self._send(op, method, resource, path, params, body)
            except (httpx.TransportError, httpx.DecodingError) as exc:  # (an undecodable body: bad gzip, say)
                error: ReconcilerError = TransportError(
                    self._scrub(f"could not complete {context}: {type(exc).__name__}: {str(exc) or 'no detail'}")
                )
                if _tls_refused(exc):
                    raise error from None  # a certificate that fails verification will not get better
                if not isinstance(exc, _NOT_SENT):
                    may_have_committed = True
                if isinstance(exc, _UNREACHABLE):
                    unreachable += 1
                else:
                    unreachable = 0
            else:
                unreachable = 0
                if response.is_success:
                    return self._json(response, context)
                error = error_from_response(response, context)
                error.message = self._scrub(error.message)
                if response.status_code == 401 and not auth_retried and self._credentials.invalidate():
                    auth_retried = True  # an expired or revoked token: refresh once and try again
                    continue
                if response.status_code not in RETRYABLE_STATUSES:
                    raise error
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if response.status_code == 429:
                    waited = time.monotonic()
                    self._throttled(retry_after)  # a 429 is a refusal: nothing was created
                    budget.pause(time.monotonic() - waited)  # a slot in the apply's queue is not a retry
                else:
                    may_have_committed = True
            delay = budget.next_delay(retry_after)
            if unreachable >= self._options.max_connect_attempts:
                delay = None  # nobody listens there: say so now rather than after the whole budget
            if delay is None:
                if may_have_committed and recover is not None:
                    found = self._recover(recover, budget, context)
                    if found is not None:
                        return found
                message = f"gave up after {budget.describe()}"
                if isinstance(error, ApiError):
                    error.context = f"{context}; {message}"
                    raise error
                raise TransportError(f"{error}; {message}")
            log.info("%s failed (%s); retry %d in %.2fs", context, _short(error), budget.attempts, delay)
            time.sleep(delay)

    @staticmethod
    def _recover(recover: Callable[[RetryBudget], dict | None], budget: RetryBudget, context: str) -> dict | None:
        """Look for what an unanswered attempt may have committed; say so if that fails too,
        since the caller must not simply try again."""
        try:
            return recover(budget)
        except ApiError as exc:
            exc.context = f"{exc.context}; while looking for the result of an unanswered {context}"
            raise
        except TransportError as exc:
            raise TransportError(f"{exc}; while looking for the result of an unanswered {context}") from None

    def _json(self, response: httpx.Response, context: str) -> dict:
        if not response.content:
            return {}
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise make_api_error(
                response.status_code, "UNKNOWN",
                f"expected a JSON object, got: {_snippet(self._scrub(response.text))}", context=context,
            )
        return payload

    def _paginate(self, op: str, resource: str, path: str, params: dict[str, str], key: str,
                  budget: RetryBudget | None = None) -> Iterator[dict]:
        seen: set[str] = set()
        token: str | None = None
        while True:
            page_params = dict(params)
            if token:
                page_params["pageToken"] = token
            page = self._call(op, "GET", resource, path, params=page_params, budget=budget)
            yield from _check_page(page, key, f"malformed answer to GET {path}", params.get("fields"))
            token = page.get("nextPageToken") or None
            if token is None:
                return
            if token in seen:  # a server bug would otherwise make us loop for ever
                raise ApiError(0, "INTERNAL", f"the server repeated page token {token!r}", context=f"GET {path}")
            seen.add(token)


def _tls_refused(exc: BaseException) -> bool:
    """The server's certificate failed verification (never retried, never bypassed)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _read_bounded(response: httpx.Response, context: str, limit: int | None = None) -> httpx.Response:
    """Read a streamed answer whole, refusing one over `limit` bytes instead of exhausting memory."""
    limit = MAX_RESPONSE_BYTES if limit is None else limit
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise MalformedResponseError(
                    f"malformed answer to {context}: larger than {limit // (1024 * 1024)} MiB; refused")
            chunks.append(chunk)
    finally:
        response.close()
    # The body is decoded already: drop the headers that describe the wire encoding.
    headers = [(k, v) for k, v in response.headers.multi_items()
               if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
    return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks),
                          request=response.request, extensions=response.extensions)


def _check_request_id(request_id: str) -> None:
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise ValueError(
            f"invalid request id {request_id!r}: it travels as a label value "
            "(1-63 lowercase letters, digits, '_' or '-')"
        )


def _short(error: Exception) -> str:
    if isinstance(error, ApiError):
        return f"{error.status} ({error.code})"
    return str(error)
