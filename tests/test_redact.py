"""The run's own credentials are redacted at every output edge."""

from __future__ import annotations

import io
import logging
import os

import pytest

from reconciler import redact
from reconciler.files import write_all


@pytest.fixture(autouse=True)
def fresh():
    redact.forget_all()
    yield
    redact.forget_all()


def test_remembered_secrets_are_redacted_longest_first():
    redact.remember("abcdefgh")
    redact.remember("abcdefgh-longer")
    assert redact.redact("x abcdefgh-longer y abcdefgh") == "x <redacted> y <redacted>"
    assert redact.redact_bytes(b"[abcdefgh]") == b"[<redacted>]"
    assert redact.contains_secret("..abcdefgh..") and not redact.contains_secret("abcdefg")


def test_short_values_are_not_secrets():
    redact.remember("short")
    assert redact.redact("short") == "short" and redact.secrets() == ()


def test_the_stream_the_formatter_and_file_writes_redact(tmp_path):
    redact.remember("ya29.secret-value")
    out = io.StringIO()
    stream = redact.RedactingStream(out)
    print("token ya29.secret-value here", file=stream)
    assert out.getvalue() == "token <redacted> here\n"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "got %s", ("ya29.secret-value",), None)
    assert redact.RedactingFormatter("%(message)s").format(record) == "got <redacted>"
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    write_all(fd, b"a ya29.secret-value b")
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"a <redacted> b"
