"""A scriptable hostile API server on 127.0.0.1: each request is answered by a function of the
request, which may send any status and body, trickle bytes, or echo the caller's token."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from http_reply import reply


@dataclass
class Request:
    method: str
    path: str  # without the query
    query: dict[str, str]
    token: str  # the bearer token the client sent
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes | dict | list = b"{}"
    trickle: float | None = None  # seconds between single bytes (a slow loris) ...
    trickle_body_only: bool = False  # ... of the body only (headers at once), or of the whole answer


Script = Callable[[Request], Answer]


@dataclass
class HostileServer:
    script: Script = field(default=lambda _: Answer())
    requests: list[Request] = field(default_factory=list)
    trickled: threading.Event = field(default_factory=threading.Event)  # a trickled answer was sent whole

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                token = self.headers.get("authorization", "").removeprefix("Bearer ")
                request = Request(self.command, url.path, query, token, body)
                outer.requests.append(request)
                answer = outer.script(request)
                if answer.trickle is None:
                    reply(self, answer.status, answer.body)
                    return
                data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                head = (f"HTTP/1.1 {answer.status} OK\r\ncontent-type: application/json\r\n"
                        f"content-length: {len(data)}\r\n\r\n").encode()
                raw = data if answer.trickle_body_only else head + data
                try:
                    if answer.trickle_body_only:
                        self.wfile.write(head)
                    for i in range(len(raw)):
                        self.wfile.write(raw[i:i + 1])
                        self.wfile.flush()
                        time.sleep(answer.trickle)
                    outer.trickled.set()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: what the test wants
                self.close_connection = True

            do_GET = do_POST = do_DELETE = _handle  # noqa: N815 - http.server's naming

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def lists(self) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/tuningJobs")]


JOB_LABELS = {"managed-by": "tuning-reconciler", "reconciler-key": "alpha", "reconciler-spec": "0" * 16}


def job(name: str, state: str = "JOB_STATE_RUNNING", **extra: object) -> dict:
    out = {"name": name, "state": state, "labels": dict(JOB_LABELS), "createTime": "2026-01-01T00:00:00Z",
           "updateTime": "2026-01-01T00:00:00Z", "baseModel": "gemini-2.5-flash"}
    out.update(extra)
    return out
