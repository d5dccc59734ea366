"""This process's own credentials, kept out of everything it writes.

Credentials `remember()` each token as soon as they hold it (a static token at once, a Google
token when minted). The output edges then redact whatever a server echoed back, wherever
it ended up (an error message, a page token, a job's name): the terminal streams and logging
(`RedactingStream`, `RedactingFormatter`, installed by the CLI) and every file write
(`files.write_all`, used by the atomic write and the journal).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, TextIO

REDACTED = "<redacted>"
# Real tokens are long; redacting a short test token would shred every message.
MIN_SECRET_LENGTH = 8

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_encoded: tuple[bytes, ...] = ()


def remember(secret: str | None) -> None:
    """Redact `secret` from all output from now on (ignored when shorter than MIN_SECRET_LENGTH)."""
    global _secrets, _encoded
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if secret not in _secrets:
            # Longest first: a token that contains another is redacted whole.
            _secrets = tuple(sorted({*_secrets, secret}, key=len, reverse=True))
            _encoded = tuple(s.encode("utf-8", "surrogatepass") for s in _secrets)


def forget_all() -> None:
    """Start afresh (each CLI run: its credentials are its own)."""
    global _secrets, _encoded
    with _lock:
        _secrets, _encoded = (), ()


def secrets() -> tuple[str, ...]:
    return _secrets


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_bytes(data: bytes) -> bytes:
    for secret in _encoded:
        if secret in data:
            data = data.replace(secret, REDACTED.encode())
    return data


def contains_secret(text: str | bytes) -> bool:
    if isinstance(text, (bytes, bytearray)):
        return any(secret in text for secret in _encoded)
    return any(secret in text for secret in _secrets)


class RedactingStream:
    """A text stream that redacts what is written to it before passing it on. Everything
    else (isatty, fileno, encoding, flush) is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> TextIO:
        return self._stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text) if _secrets else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class RedactingFormatter(logging.Formatter):
    """Log records are redacted after formatting (arguments and tracebacks included)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
