"""Shared fixtures: a real emulator on 127.0.0.1 (ephemeral port) per test, and its admin API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.emulator.admin import EmulatorAdmin
from reconciler.emulator.server import EmulatorConfig, RunningEmulator, start_emulator

TEST_TOKEN = "test-token"

pytest_plugins = ["gcs_fixtures"]  # fake-gcs-server for gs:// state (tests/gcs_fixtures.py)


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., RunningEmulator]]:
    """`emulator_factory(**overrides)` starts an emulator with EmulatorConfig(**overrides)
    (defaults: virtual clock off, token "test-token"); all are stopped at teardown."""
    started: list[RunningEmulator] = []

    def start(**overrides: Any) -> RunningEmulator:
        settings: dict[str, Any] = {"token": TEST_TOKEN}
        settings.update(overrides)
        running = start_emulator(EmulatorConfig(**settings))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., RunningEmulator]) -> RunningEmulator:
    """A fresh emulator with a virtual clock (time moves only via admin.advance)."""
    return emulator_factory(virtual_clock=True)


@pytest.fixture
def admin(emulator: RunningEmulator) -> Iterator[EmulatorAdmin]:
    """The admin API of `emulator`: seed, advance, set_state, faults, stats, reset."""
    with EmulatorAdmin(emulator.url, emulator.token) as client:
        yield client


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own $XDG_CACHE_HOME: the manifest cache never outlives it or leaks
    into the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
