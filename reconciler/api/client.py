"""A typed, thread-safe client for the Vertex AI `tuningJobs` REST surface.

Safe to point at the real service: idempotent calls retry transient failures with bounded
backoff; creates (and rebases) are never repeated blindly but first look for the job an
earlier, unanswered attempt may have committed, through the `reconciler-request` label.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

from reconciler import __version__, jsonio
from reconciler.api import deadline
from reconciler.api.answers import (
    MAX_LISTED_ITEMS,
    Owners,
    check_page,
    check_tuning_job,
    max_pages,
    page_size_param,
    read_bounded,
)
from reconciler.api.auth import Credentials, credentials_for
from reconciler.api.endpoints import base_url_for, endpoint_override, is_emulator_endpoint
from reconciler.api.errors import (
    ApiError,
    MalformedResponseError,
    NotFoundError,
    OperationTimeoutError,
    TransportError,
    error_from_response,
    make_api_error,
    operation_error,
    snippet,
)
from reconciler.api.names import JOB, OPERATION, PARENT, check, check_request_id, request_filter, with_labels
from reconciler.api.retry import RETRYABLE_STATUSES, RetryBudget, RetryPolicy, parse_retry_after
from reconciler.errors import ReconcilerError
from reconciler.model import REQUEST_LABEL, V1, V1BETA1
from reconciler.redact import contains_secret, redact

log = logging.getLogger(__name__)

USER_AGENT = f"tuning-reconciler/{__version__}"
API_VERSION = V1  # the default; every call may name another (`api_version=`)
API_VERSIONS = frozenset({V1, V1BETA1})

# Failures that happen before a single byte of the request reaches the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# ... and of those, the ones that mean the server is not there (PoolTimeout is our own queue).
_UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass
class ClientOptions:
    endpoint: str | None = None  # --endpoint; None: $RECONCILER_ENDPOINT, else regional Google
    max_connections: int = 8  # per base URL; size it to the apply parallelism
    # The time budget, not the attempt count, should end retries of a call the server keeps
    # answering with 429/503: with 6 attempts a 30% error rate failed ~1 create in 125 after
    # only ~5 s of a 60 s budget. Unreachable servers still fail fast (max_connect_attempts).
    max_attempts: int = 16
    max_retry_seconds: float = 60.0
    timeout: float = 60.0  # per HTTP request, in total (a server trickling bytes cannot stretch it)
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
        self._owners = Owners()  # the project number each project id's jobs carry

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
                  fields: str | None = None, api_version: str = API_VERSION) -> Iterator[dict]:
        """Every job under `parent` matching `filter`, fetched lazily page by page.

        `fields` is Google's partial-response selection (e.g. `nextPageToken,tuningJobs(name)`):
        it must keep `nextPageToken`, or only the first page is read."""
        check(PARENT, parent, "parent")
        params: dict[str, str] = {}
        if filter:
            params["filter"] = filter
        if fields:
            params["fields"] = fields
        return self._paginate("list", parent, f"{parent}/tuningJobs", {**params, **page_size_param(page_size)},
                              "tuningJobs", version=_version(api_version), owner=parent)

    def get_job(self, name: str, api_version: str = API_VERSION) -> dict:
        check(JOB, name, "tuning job name")
        where = f"malformed answer to GET {name}: job"
        job = check_tuning_job(self._call("get", "GET", name, name, version=_version(api_version)), where)
        self._check_same_job(job["name"], name, where)
        return job

    def create_job(self, parent: str, body: dict, request_id: str, api_version: str = API_VERSION) -> dict:
        """Create a job labelled `reconciler-request: request_id`, exactly once.

        After an answer that may hide a committed create (connection lost, 5xx), the job is
        looked up by its request label before any new attempt; a 429 means nothing was
        created and is simply retried after the backoff.
        """
        check(PARENT, parent, "parent")
        check_request_id(request_id)
        version = _version(api_version)
        payload = with_labels(body, {REQUEST_LABEL: request_id})
        job = self._call(
            "create",
            "POST",
            parent,
            f"{parent}/tuningJobs",
            body=payload,
            recover=lambda budget: self._find_job(parent, request_id, budget, version),
            version=version,
        )
        # A create that committed but answered nonsense is found again by its request label.
        where = f"malformed answer to POST {parent}/tuningJobs: job"
        check_tuning_job(job, where)
        self._owners.check(job["name"], parent, where)
        return job

    def cancel_job(self, name: str, api_version: str = API_VERSION) -> None:
        check(JOB, name, "tuning job name")
        self._call("cancel", "POST", name, f"{name}:cancel", body={}, version=_version(api_version))

    def rebase_tuned_model(self, parent: str, body: dict, request_id: str, api_version: str = API_VERSION) -> dict:
        """Start a rebase (returns the Operation), exactly once: the new job's labels carry
        the request id so that a lost answer can be recovered from the job's operations."""
        check(PARENT, parent, "parent")
        check_request_id(request_id)
        version = _version(api_version)
        payload = dict(body)
        payload["tuningJob"] = with_labels(body.get("tuningJob"), {REQUEST_LABEL: request_id})
        return self._call(
            "rebase",
            "POST",
            parent,
            f"{parent}/tuningJobs:rebaseTunedModel",
            body=payload,
            recover=lambda budget: self._find_rebase_operation(parent, request_id, budget, version),
            version=version,
        )

    def expect_project_number(self, project: str, number: str) -> None:
        """Answers about project id `project` must name its jobs by `number` (what state recorded)."""
        self._owners.pin(project, number)

    def find_job_by_request(self, parent: str, request_id: str, api_version: str = API_VERSION) -> dict | None:
        """The job created with this request id, if any. The server-side filter narrows the
        list; the label is checked here as well since server filtering may be inexact."""
        check(PARENT, parent, "parent")
        return self._find_job(parent, request_id, None, _version(api_version))

    # ---- operations

    # Every call under `.../tuningJobs/{id}/operations` (operations.get, list, cancel, delete,
    # wait). All are idempotent and retried on transient failures like get/list; a delete whose
    # answer was lost is settled by looking the operation up before it is sent again.

    def get_operation(self, name: str, api_version: str = API_VERSION) -> dict:
        """operations.get: the Operation (`done`, `metadata`, then `response` or `error`)."""
        check(OPERATION, name, "operation name")
        return self._call("get_operation", "GET", name, name, version=_version(api_version))

    def list_operations(self, job_name: str, page_size: int | None = None) -> Iterator[dict]:
        """operations.list: every operation of a job, fetched lazily page by page."""
        check(JOB, job_name, "tuning job name")
        return self._paginate("list_operations", job_name, f"{job_name}/operations", page_size_param(page_size),
                              "operations")

    def cancel_operation(self, name: str) -> None:
        """operations.cancel: ask the server to stop the operation (a no-op once it is done).
        The operation then finishes with error code 1 (CANCELLED); it is not deleted."""
        check(OPERATION, name, "operation name")
        self._call("cancel_operation", "POST", name, f"{name}:cancel")  # no request body (discovery)

    def delete_operation(self, name: str) -> None:
        """operations.delete: forget the operation (the job it belongs to is untouched).

        If an attempt may have been carried out without an answer (connection lost, 5xx), the
        operation is looked up first: already gone means that attempt deleted it."""
        check(OPERATION, name, "operation name")

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
        check(OPERATION, name, "operation name")
        if timeout is not None and not timeout >= 0:
            raise ValueError("timeout must not be negative")
        limit = self._options.timeout * 0.75
        seconds = limit if timeout is None else min(timeout, limit)
        params = {"timeout": (f"{seconds:.3f}".rstrip("0").rstrip(".") or "0") + "s"}  # a Duration: "2.5s"
        return self._call("wait_operation", "POST", name, f"{name}:wait", params=params)

    def wait_operation(self, name: str, timeout: float = 600, poll_interval: float = 1.0,
                       api_version: str = API_VERSION) -> dict:
        """Poll until the operation is done; return it, or raise its error as an ApiError."""
        deadline = time.monotonic() + timeout
        while True:
            operation = self.get_operation(name, api_version=api_version)
            if operation.get("done"):
                if operation.get("error"):
                    raise operation_error(operation, context=f"operation {name}")
                return operation
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationTimeoutError(f"operation {name} is still running after {timeout:g}s")
            time.sleep(min(poll_interval, remaining))

    # ---- plumbing

    def _check_same_job(self, got: str, asked: str, where: str) -> None:
        """A get must answer with the job asked for (its project may come back as the number)."""
        parent, _, job_id = asked.rpartition("/tuningJobs/")
        self._owners.check(got, parent, where)
        if got.rsplit("/", 1)[-1] != job_id:
            raise MalformedResponseError(f"{where}.name: {snippet(got, 200)} is not the job asked for ({asked})")

    def _find_job(self, parent: str, request_id: str, budget: RetryBudget | None,
                  version: str = API_VERSION) -> dict | None:
        params = {"filter": request_filter(request_id)}
        for job in self._paginate("list", parent, f"{parent}/tuningJobs", params, "tuningJobs", budget, version,
                                  owner=parent):
            if (job.get("labels") or {}).get(REQUEST_LABEL) == request_id:
                return job
        return None

    def _find_rebase_operation(self, parent: str, request_id: str, budget: RetryBudget | None,
                               version: str = API_VERSION) -> dict | None:
        job = self._find_job(parent, request_id, budget, version)
        if job is None:
            return None
        check(JOB, job.get("name", ""), "tuning job name")
        # Only v1 has tuningJobs.operations.list; an operation is the same resource in either
        # version (its `response` then names v1 types, and only the job's name is read).
        operations = list(
            self._paginate("list_operations", job["name"], f"{job['name']}/operations", {}, "operations", budget, V1)
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
                self._http[base] = deadline.install(client)
            return client

    def _send(self, op: str, method: str, resource: str, path: str,
              params: dict[str, str] | None, body: dict | None, version: str = API_VERSION) -> httpx.Response:
        """One HTTP attempt, under `/{version}/`."""
        client = self._client_for(resource)
        headers = self._credentials.headers()
        with self._lock:
            self._counts[op] += 1
        started = time.monotonic()
        request = client.build_request(method, f"/{version}/{path}", params=params, json=body, headers=headers)
        with deadline.with_deadline(self._options.timeout):
            response = read_bounded(client.send(request, stream=True), f"{method} {path}")
        log.debug("%s %s -> %d in %.0f ms", method, path, response.status_code, (time.monotonic() - started) * 1000)
        return response

    def _scrub(self, text: str) -> str:
        """Our credentials out of a message (the output edges redact again: this keeps them out
        of the exception objects themselves)."""
        return redact(text)

    def _throttled(self, retry_after: float | None) -> None:
        with self._lock:
            callbacks = list(self._throttle_callbacks)
        for callback in callbacks:
            callback(retry_after)

    def _call(self, op: str, method: str, resource: str, path: str, *,
              params: dict[str, str] | None = None, body: dict | None = None,
              recover: Callable[[RetryBudget], dict | None] | None = None,
              budget: RetryBudget | None = None, version: str = API_VERSION) -> dict:
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
                response = self._send(op, method, resource, path, params, body, version)
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
                    return self._json(response, context, allow_empty=op not in ("list", "list_operations"))
                error = error_from_response(response, context)
                error.message = self._scrub(error.message)
                error.status = self._scrub(error.status)
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

    def _json(self, response: httpx.Response, context: str, allow_empty: bool = True) -> dict:
        """A 2xx answer's JSON object. An empty body is `{}` (cancel answers so), except where
        the API always answers with content (a list): there it is a malformed answer."""
        if not response.content:
            if allow_empty:
                return {}
            raise MalformedResponseError(f"malformed answer to {context}: empty (HTTP {response.status_code} "
                                         "with no body); a list answer is a JSON object")
        if contains_secret(response.content):
            # A server echoing our credentials back is broken or hostile: nothing it says is
            # planned on, and the token must not travel on into state or a plan.
            raise MalformedResponseError(f"malformed answer to {context}: it quotes this tool's own access "
                                         "token; refused")
        try:
            payload = jsonio.loads(response.content)
        except jsonio.JsonError as exc:
            raise make_api_error(
                response.status_code, "UNKNOWN",
                f"expected a JSON object ({exc}), got: {snippet(self._scrub(response.text))}", context=context,
            ) from None
        if b"\\u" in response.content and contains_secret(json.dumps(payload, ensure_ascii=False)):
            # ... also when spelt with \u escapes (rare in real answers: only then is this paid for)
            raise MalformedResponseError(f"malformed answer to {context}: it quotes this tool's own access "
                                         "token; refused")
        if not isinstance(payload, dict):
            raise make_api_error(
                response.status_code, "UNKNOWN",
                f"expected a JSON object, got: {snippet(self._scrub(response.text))}", context=context,
            )
        return payload

    def _paginate(self, op: str, resource: str, path: str, params: dict[str, str], key: str,
                  budget: RetryBudget | None = None, version: str = API_VERSION,
                  owner: str | None = None) -> Iterator[dict]:
        """Every item of a list, page by page. Bounded: a repeated page token, more pages than
        MAX_LISTED_ITEMS needs at this page size, or more items than that, is an error (a
        server that never stops paging). `owner`: the parent whose jobs these must be."""
        seen: set[str] = set()
        token: str | None = None
        size = params.get("pageSize")
        limit = max_pages(int(size) if size else None)
        where = f"malformed answer to GET {path}"
        items = 0
        for pages in range(1, limit + 1):
            page_params = dict(params)
            if token:
                page_params["pageToken"] = token
            page = self._call(op, "GET", resource, path, params=page_params, budget=budget, version=version)
            found = check_page(page, key, where, params.get("fields"))
            if owner is not None:
                for i, job in enumerate(found):
                    self._owners.check(job.get("name"), owner, f"{where}: {key}[{i}]")
            items += len(found)
            if items > MAX_LISTED_ITEMS:
                raise MalformedResponseError(f"{where}: more than {MAX_LISTED_ITEMS:,} {key} in one list; "
                                             "refusing to read further")
            yield from found
            token = page.get("nextPageToken") or None
            if token is None:
                return
            if token in seen:  # a server bug would otherwise make us loop for ever
                raise MalformedResponseError(f"{where}: the server repeated page token {snippet(repr(token), 80)}")
            seen.add(token)
        raise MalformedResponseError(
            f"{where}: still more pages after {limit:,} pages ({items:,} {key}) at page size "
            f"{size or 'default'}; a server that never stops paging? refusing to read further")


def _version(api_version: str) -> str:
    if api_version not in API_VERSIONS:
        raise ValueError(f"unknown API version {api_version!r} (known: {', '.join(sorted(API_VERSIONS))})")
    return api_version


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


def _short(error: Exception) -> str:
    if isinstance(error, ApiError):
        return f"{error.status} ({error.code})"
    return str(error)
