"""A local test server's answer in one call (the handlers in tests that stand in for a broken,
hostile or flaky server all answer this way)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes | dict | list,
          content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
    """Send `body` (JSON-encoded unless bytes) with its length; a client that hung up is not an error."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("content-type", content_type)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    try:
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
