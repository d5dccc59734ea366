"""A total deadline per HTTP request, not only per read.

httpx's timeouts bound each socket operation: a server that sends one byte a second (a
"slow loris") resets the read timeout with every byte and holds a call for ever. Here each
read, write and connect of a request gets at most what is left of the deadline set around it
(`with_deadline`), through a wrapper around httpcore's network backend, so the bound covers
the status line, the headers and the body alike.

The deadline lives in a thread-local: a sync httpx request runs wholly in its caller's thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

_local = threading.local()


class DeadlineExceeded(httpcore.ReadTimeout):
    """Raised inside httpcore, so httpx maps it to httpx.ReadTimeout like any read timeout."""


@contextmanager
def with_deadline(seconds: float) -> Iterator[None]:
    """Everything sent and received in this block, on this thread, must be done in `seconds`."""
    previous = getattr(_local, "deadline", None)
    deadline = time.monotonic() + seconds
    _local.deadline = deadline if previous is None else min(previous, deadline)
    _local.seconds = seconds
    try:
        yield
    finally:
        _local.deadline = previous


def _remaining(timeout: float | None) -> tuple[float | None, bool]:
    """(the timeout to use now, whether it is the deadline's rather than the caller's)."""
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout, False
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded(_message())
    if timeout is None or left < timeout:
        return left, True
    return timeout, False


def _message() -> str:
    return (f"the server did not complete its answer within {getattr(_local, 'seconds', 0):g}s "
            "(total time for one request)")


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout, ours = _remaining(timeout)
        try:
            return self._stream.read(max_bytes, timeout)
        except httpcore.ReadTimeout:
            if ours:
                raise DeadlineExceeded(_message()) from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        timeout, ours = _remaining(timeout)
        try:
            self._stream.write(buffer, timeout)
        except httpcore.WriteTimeout:
            if ours:
                raise DeadlineExceeded(_message()) from None
            raise

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        timeout, _ = _remaining(timeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        timeout, _ = _remaining(timeout)
        return _Stream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        timeout, _ = _remaining(timeout)
        return _Stream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def install(client: httpx.Client) -> httpx.Client:
    """Make `client`'s connections (direct and through proxies) honour `with_deadline`.

    httpx has no public hook for httpcore's network backend; the pools keep it as
    `_network_backend`. If a new httpx moves it, this fails loudly rather than leaving
    requests unbounded (and tests/api/test_deadline.py fails with it)."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        if transport is None:
            continue
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            raise RuntimeError(f"cannot bound request time with this httpx ({httpx.__version__}): "
                               f"{type(transport).__name__} has no connection pool backend to wrap")
        if not isinstance(pool._network_backend, _Backend):
            pool._network_backend = _Backend(pool._network_backend)
    return client
