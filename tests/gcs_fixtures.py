"""Fixtures for tests of the Cloud Storage backend (registered in tests/conftest.py): one
fake-gcs-server per test session on 127.0.0.1, a fresh bucket per test, and
$STORAGE_EMULATOR_HOST pointing at it, so `gs://` states in the test go to it and nowhere else."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from gcs_server import FakeGcs, GcsProxy, ProxyFaults


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    server = FakeGcs()
    yield server
    server.stop()


@dataclass
class Bucket:
    server: FakeGcs
    name: str
    endpoint: str  # what $STORAGE_EMULATOR_HOST points at (the server, or a proxy in front of it)

    def url(self, path: str = "state/default.json") -> str:
        return f"gs://{self.name}/{path}"

    def client(self):
        return self.server.client()

    def bucket(self):
        return self.client().bucket(self.name)


@pytest.fixture
def gcs(fake_gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new versioned bucket on the session's fake-gcs-server, $STORAGE_EMULATOR_HOST set."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    fake_gcs.create_bucket(name, versioning=True)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    return Bucket(fake_gcs, name, fake_gcs.url)


@pytest.fixture
def gcs_proxy(gcs: Bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsProxy]:
    """A recording (and fault-injecting) proxy in front of the server; $STORAGE_EMULATOR_HOST
    points at it instead."""
    proxy = GcsProxy(gcs.server.url, ProxyFaults())
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    gcs.endpoint = proxy.url
    yield proxy
    proxy.stop()
