from __future__ import annotations

import time

import pytest

from reconciler.emulator.clock import Clock, parse_rfc3339, rfc3339


def test_virtual_clock_moves_only_when_advanced() -> None:
    clock = Clock(virtual=True, start=1000.0)
    time.sleep(0.01)
    assert clock.now() == 1000.0
    assert clock.advance(2.5) == 1002.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_real_clock_follows_wall_time_and_can_be_advanced() -> None:
    clock = Clock(virtual=False)
    first = clock.now()
    time.sleep(0.01)
    assert clock.now() > first
    assert clock.advance(100) >= first + 100


def test_restore_never_goes_backwards() -> None:
    clock = Clock(virtual=True, start=1000.0)
    clock.restore(500.0)
    assert clock.now() == 1000.0
    clock.restore(2000.0)
    assert clock.now() == 2000.0


def test_rfc3339_round_trip_with_microseconds_and_z() -> None:
    stamp = rfc3339(1728429613.040864)
    assert stamp == "2024-10-08T23:20:13.040864Z"
    assert parse_rfc3339(stamp) == pytest.approx(1728429613.040864, abs=1e-6)
    assert parse_rfc3339("2024-10-09T01:20:13+02:00") == parse_rfc3339("2024-10-08T23:20:13Z")
    assert parse_rfc3339("2024-10-08T23:20:13.123456789Z") == pytest.approx(1728429613.123457, abs=1e-6)


@pytest.mark.parametrize("text", ["2024-10-08", "2024-10-08 23:20:13Z", "yesterday", "2024-10-08T23:20:13"])
def test_parse_rejects_non_rfc3339(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)
