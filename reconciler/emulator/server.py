"""The HTTP layer: an ASGI app (Starlette request/response objects on uvicorn) that maps
requests to backend calls, plus an in-process runner for tests and the demo.

Faults apply to the API routes only (`/v1`, `/v1beta1`, `/ui`), never to `/__emulator/*`. Injected
latency is an `asyncio.sleep`, so a slow request never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

import uvicorn
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reconciler.apischema.versions import Surface, surface
from reconciler.emulator import exceptions as err
from reconciler.emulator import responses, store, urls
from reconciler.emulator.backend import Backend
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.faults import Faults, Stats
from reconciler.emulator.schema import TUNING_JOB
from reconciler.model import V1

__all__ = ["EmulatorConfig", "EmulatorApp", "RunningEmulator", "start_emulator", "build"]

log = logging.getLogger(__name__)

MAX_WAIT_S = 30.0  # operations:wait without a timeout
WAIT_POLL_S = 0.02


class DroppedConnection(Exception):
    """Raised after the response has started: uvicorn then closes the socket mid-answer."""


class _HideDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_HideDrops())


@dataclass
class Context:
    request: Request
    name: str
    query: responses.Query
    body: bytes
    version: str | None = V1  # the path's REST version (None: `/ui`)

    @property
    def api(self) -> Surface:
        """The path's version (`/ui` serves operations only, each in its own version)."""
        return surface(self.version or V1)


@dataclass
class Result:
    body: Any
    message: str | None = None  # schema name used for enum-encoding=int
    status: int = 200
    encoded: bytes | None = None  # the body already serialised (then `body` is unused)


Handler = Callable[["EmulatorApp", Context], Awaitable[Result]]


class EmulatorApp:
    """The ASGI application of one emulator instance."""

    def __init__(self, config: EmulatorConfig, backend: Backend | None = None) -> None:
        config.validate()
        self.config = config
        self.backend = backend or Backend(config)
        self.faults = Faults(config)
        self.stats = Stats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        match = urls.resolve(request.method, scope["path"])
        api_method = match.route.api_method if match else "unknown"
        self.stats.begin(api_method, None if match is None or match.route.admin else scope["path"].split("/", 2)[1])
        try:
            response, drop = await self._answer(request, match)
        except ClientDisconnect:
            # The caller went away mid-request (a killed client): nobody to answer, no bug.
            self.stats.end("disconnected")
            return
        except BaseException:
            self.stats.end("error")
            raise
        # Counted before sending, so a caller that reads /stats right after sees its request.
        self.stats.end("dropped" if drop else response.status_code)
        if drop:
            self.stats.fault("dropped")
            # The job is committed; the caller sees headers and then a closed socket.
            await send({"type": "http.response.start", "status": 200, "headers": response.raw_headers})
            raise DroppedConnection()
        await response(scope, receive, send)

    async def _answer(self, request: Request, match: urls.Match | None) -> tuple[Response, bool]:
        drop = False
        try:
            if match is None:
                raise err.NotFound(f"The requested URL {request.url.path} was not found on this server.")
            self._authenticate(request)
            if not match.route.admin:
                decision = self.faults.decide(match.route.api_method, self.backend.region_of(match.name))
                if decision.latency_s > 0:
                    await asyncio.sleep(decision.latency_s)
                if decision.error == 429:
                    self.stats.fault("quota" if decision.quota else "429")
                    raise err.ResourceExhausted(
                        "Quota exceeded for aiplatform.googleapis.com/tuning_job_requests (emulated).",
                        details=[
                            {
                                "@type": err.ERROR_INFO_TYPE,
                                "reason": "RATE_LIMIT_EXCEEDED",
                                "domain": "googleapis.com",
                                "metadata": {"service": "aiplatform.googleapis.com"},
                            }
                        ],
                        headers={"Retry-After": str(self.faults.settings.retry_after)},
                    )
                if decision.error == 503:
                    self.stats.fault("503")
                    raise err.Unavailable("The service is currently unavailable (emulated).")
                drop = decision.drop
            query = responses.parse_query(request.scope.get("query_string", b""), match.route.params)
            context = Context(request, match.name, query, await request.body(), match.route.version)
            result = await HANDLERS[match.route.handler](self, context)
            content = result.encoded if result.encoded is not None else responses.encode(
                result.body, query, result.message)
            return Response(content, status_code=result.status, media_type=responses.JSON_TYPE), drop
        except err.ApiError as exc:
            headers = {**exc.headers}
            if exc.http_code == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
            return Response(responses.error_body(exc), exc.http_code, headers, responses.JSON_TYPE), False
        except ClientDisconnect:
            raise
        except Exception:  # a bug: answer like Google would rather than drop the connection
            log.exception("emulator: internal error")
            error = err.Internal("Internal error encountered.")
            return Response(responses.error_body(error), 500, media_type=responses.JSON_TYPE), False

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise err.Unauthenticated(
                "Request is missing required authentication credential. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential. "
                "See https://developers.google.com/identity/sign-in/web/devconsole-project."
            )
        if self.config.token is not None and token.strip() != self.config.token:
            raise err.Unauthenticated(
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential. "
                "See https://developers.google.com/identity/sign-in/web/devconsole-project."
            )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- API handlers -------------------------------------------------------------------------



def _json(ctx: Context) -> dict[str, Any]:
    return responses.parse_body(ctx.body)


async def _create(app: EmulatorApp, ctx: Context) -> Result:
    return Result(app.backend.create(ctx.name, _json(ctx), ctx.api.version), ctx.api.tuning_job)


async def _get(app: EmulatorApp, ctx: Context) -> Result:
    return Result(app.backend.get(ctx.name, ctx.api.version), ctx.api.tuning_job)


async def _list(app: EmulatorApp, ctx: Context) -> Result:
    query = ctx.query
    # Plain JSON (no enum numbers, not pretty): each job's encoding is kept between pages and
    # runs, so a page of unchanged jobs costs a join, as a fast server's would.
    plain = not query.enum_ints and not query.pretty
    mask = query.fields
    if mask is not None and ("*" in mask or not mask):
        mask = None
    jobs_mask = None if mask is None else mask.get("tuningJobs")
    page = app.backend.list(
        ctx.name,
        filter_text=query.get("filter"),
        page_size=responses.int_param(query, "pageSize"),
        page_token=query.get("pageToken"),
        wanted=_wanted_job_fields(query),
        version=ctx.api.version,
        encode=(lambda job: responses.encode(job, responses.Query({}, False, False, jobs_mask or None))) if plain
        else None,
        how=repr(jobs_mask),
    )
    if plain:
        parts = []
        if page.jobs and (mask is None or "tuningJobs" in mask):
            parts.append(b'"tuningJobs":[' + b",".join(page.jobs) + b"]")
        if page.next_page_token and (mask is None or "nextPageToken" in mask):
            parts.append(b'"nextPageToken":' + responses.encode(page.next_page_token))
        return Result(None, encoded=b"{" + b",".join(parts) + b"}")
    body: dict[str, Any] = {}
    if page.jobs:
        body["tuningJobs"] = page.jobs
    if page.next_page_token:
        body["nextPageToken"] = page.next_page_token
    return Result(body, ctx.api.schema("ListTuningJobsResponse"))


def _wanted_job_fields(query: responses.Query) -> frozenset[str] | None:
    """Top-level job fields a `fields=tuningJobs(...)` selection keeps; None: all of them."""
    if query.fields is None:
        return None
    jobs = query.fields.get("tuningJobs")
    if jobs is None:
        return frozenset() if "*" not in query.fields else None
    if not jobs or "*" in jobs:
        return None
    return frozenset(jobs)


async def _cancel(app: EmulatorApp, ctx: Context) -> Result:
    _json(ctx)  # the body must be valid JSON (clients send `{}`), its content is ignored
    return Result(app.backend.cancel(ctx.name))


async def _rebase(app: EmulatorApp, ctx: Context) -> Result:
    return Result(app.backend.rebase(ctx.name, _json(ctx), ctx.api.version), "Operation")


async def _get_operation(app: EmulatorApp, ctx: Context) -> Result:
    return Result(app.backend.get_operation(ctx.name, ctx.version), "Operation")


async def _list_operations(app: EmulatorApp, ctx: Context) -> Result:
    if ctx.query.get("filter"):
        raise err.InvalidArgument("Filtering operations is not supported.")
    responses.int_param(ctx.query, "pageSize")
    ops = app.backend.list_operations(ctx.name, ctx.version)
    return Result({"operations": ops} if ops else {}, "ListOperations")


async def _cancel_operation(app: EmulatorApp, ctx: Context) -> Result:
    return Result(app.backend.cancel_operation(ctx.name))


async def _delete_operation(app: EmulatorApp, ctx: Context) -> Result:
    return Result(app.backend.delete_operation(ctx.name))


async def _wait_operation(app: EmulatorApp, ctx: Context) -> Result:
    timeout = responses.duration_param(ctx.query, "timeout")
    deadline = time.monotonic() + min(MAX_WAIT_S, MAX_WAIT_S if timeout is None else timeout)
    while not app.backend.operation_done(ctx.name) and time.monotonic() < deadline:
        await asyncio.sleep(WAIT_POLL_S)
    return Result(app.backend.get_operation(ctx.name, ctx.version), "Operation")


async def _get_context(app: EmulatorApp, ctx: Context) -> Result:
    return Result(app.backend.get_context(ctx.name), ctx.api.schema("Context"))


# --- admin handlers -----------------------------------------------------------------------


async def _admin_seed(app: EmulatorApp, ctx: Context) -> Result:
    body = _json(ctx)
    unknown = set(body) - {"parent", "count", "labels", "state", "spec", "specs"}
    if unknown:
        raise err.InvalidArgument(f"seed: unknown field(s) {', '.join(sorted(unknown))}.")
    if not isinstance(body.get("parent"), str):
        raise err.InvalidArgument("seed: parent (projects/P/locations/L) is required.")
    # a big seed takes a second: keep the event loop serving meanwhile
    names = await asyncio.to_thread(
        app.backend.seed, body["parent"], body.get("count", 1), body.get("labels"), body.get("state"), body.get("spec"),
        body.get("specs"),
    )
    return Result({"count": len(names), "names": names})


async def _admin_stats(app: EmulatorApp, ctx: Context) -> Result:
    stats = app.stats.as_dict()
    stats["jobs"] = app.backend.counts()
    stats["operations"] = len(app.backend.operations)
    stats["now"] = app.backend.now()
    return Result(stats)


async def _admin_advance(app: EmulatorApp, ctx: Context) -> Result:
    seconds = _json(ctx).get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise err.InvalidArgument("advance: seconds must be a non-negative number.")
    return Result({"now": app.backend.advance(float(seconds))})


async def _admin_get_faults(app: EmulatorApp, ctx: Context) -> Result:
    return Result(vars(app.faults.settings))


async def _admin_faults(app: EmulatorApp, ctx: Context) -> Result:
    try:
        settings = app.faults.update(_json(ctx))
    except ValueError as exc:
        raise err.InvalidArgument(f"faults: {exc}.") from None
    return Result(vars(settings))


async def _admin_set_state(app: EmulatorApp, ctx: Context) -> Result:
    state = _json(ctx).get("state")
    if not isinstance(state, str):
        raise err.InvalidArgument("setState: state (e.g. JOB_STATE_CANCELLED) is required.")
    return Result(app.backend.set_state(ctx.name, state), TUNING_JOB)


async def _admin_reset(app: EmulatorApp, ctx: Context) -> Result:
    app.backend.reset()
    app.faults.reset()
    app.stats.reset()
    return Result({})


HANDLERS: dict[str, Handler] = {
    "create": _create,
    "get": _get,
    "list": _list,
    "cancel": _cancel,
    "rebase": _rebase,
    "get_operation": _get_operation,
    "list_operations": _list_operations,
    "cancel_operation": _cancel_operation,
    "delete_operation": _delete_operation,
    "wait_operation": _wait_operation,
    "get_context": _get_context,
    "admin_seed": _admin_seed,
    "admin_stats": _admin_stats,
    "admin_advance": _admin_advance,
    "admin_get_faults": _admin_get_faults,
    "admin_faults": _admin_faults,
    "admin_set_state": _admin_set_state,
    "admin_reset": _admin_reset,
}


# --- running it ---------------------------------------------------------------------------


def build(config: EmulatorConfig) -> tuple[EmulatorApp, store.Persister | None]:
    """The app, with its backend restored from and saved to `config.data_file` if set."""
    app = EmulatorApp(config)
    persister = None
    if config.data_file:
        saved = store.load(config.data_file)
        if saved is not None:
            app.backend.restore(saved)
        persister = store.Persister(config.data_file, app.backend.snapshot)
        app.backend.on_change.append(persister.mark_dirty)
    return app, persister


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections; without it
    # every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def url_for(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server with a 20 ms housekeeping tick instead of 100 ms and a prompt
    shutdown, so that tests can start and stop an emulator per test cheaply."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM ask for a graceful stop and are *not* re-raised afterwards (uvicorn
        re-raises them), so `reconciler emulator` can flush its data file and exit 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 5) % 864000  # on_tick refreshes the Date header every 10 counts
            await asyncio.sleep(0.02)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = getattr(self, "server_state", None)
        if state is None or not hasattr(state, "connections"):  # pragma: no cover - other uvicorn
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for connection in list(state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after answering
        deadline = time.monotonic() + self.config.timeout_graceful_shutdown
        while (state.connections or state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        for task in list(state.tasks):
            task.cancel()
        for server in self.servers:
            await server.wait_closed()


def uvicorn_server(app: EmulatorApp) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        backlog=2048,
    )
    return _Server(config)


class RunningEmulator:
    """An emulator serving on a background thread; a context manager."""

    def __init__(self, app: EmulatorApp, persister: store.Persister | None, sock: socket.socket) -> None:
        self.app = app
        self.backend = app.backend
        self.config = app.config
        self.token = app.config.token
        host, port = sock.getsockname()[:2]
        self.port: int = port
        self.url = url_for(app.config.host, port)
        self._persister = persister
        self._sock = sock
        self._server = uvicorn_server(app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"emulator-{port}", daemon=True
        )
        self._stopped = False

    def _start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("emulator: the server did not start")
            time.sleep(0.002)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        if self._persister is not None:
            self._persister.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningEmulator(url={self.url!r})"


def start_emulator(config: EmulatorConfig | None = None) -> RunningEmulator:
    """Start an emulator on `config.host:config.port` (0: a free port) in this process."""
    config = config or EmulatorConfig()
    app, persister = build(config)
    sock = bind(config.host, config.port)
    running = RunningEmulator(app, persister, sock)
    try:
        running._start()
    except BaseException:
        running.stop()
        raise
    return running
