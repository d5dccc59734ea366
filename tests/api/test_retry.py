"""Retry timing: full-jitter backoff, Retry-After, bounded attempts and total time."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from reconciler.api.retry import RetryBudget, RetryPolicy, backoff_ceiling, full_jitter, parse_retry_after


class FakeClock:
    """A clock the test moves by hand (time is an input of the budget, not a side effect)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ceiling_grows_exponentially_then_caps() -> None:
    policy = RetryPolicy(initial_backoff=0.5, multiplier=2.0, max_backoff=5.0)
    assert [backoff_ceiling(policy, n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert backoff_ceiling(policy, 10_000) == 5.0  # no overflow for absurd attempt numbers


def test_full_jitter_stays_within_zero_and_ceiling_and_spreads() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=8.0)
    rng = random.Random(7)
    samples = [full_jitter(policy, 3, rng) for _ in range(2000)]
    assert all(0.0 <= s <= 4.0 for s in samples)
    # Full jitter, not "ceiling plus a little": values cover the low and the high end.
    assert min(samples) < 0.2 and max(samples) > 3.8


@pytest.mark.parametrize("value,expected", [("3", 3.0), (" 0.25 ", 0.25), ("0", 0.0), ("-4", 0.0)])
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
def test_retry_after_absent_or_garbage(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_budget_bounds_attempts() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryPolicy(max_attempts=3, initial_backoff=0.01), rng=random.Random(1), clock=clock)
    assert budget.next_delay() is not None  # after attempt 1
    assert budget.next_delay() is not None  # after attempt 2
    assert budget.next_delay() is None  # attempt 3 was the last
    assert budget.attempts == 3
    assert budget.describe().startswith("3 attempts")


def test_budget_bounds_total_time() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=100, max_total_seconds=10.0, initial_backoff=1.0, max_backoff=1.0)
    budget = RetryBudget(policy, rng=random.Random(1), clock=clock)
    assert budget.next_delay() is not None
    clock.now += 9.5
    # 9.5 s spent: a wait of up to 1 s might still fit, but a server asking for 2 s cannot.
    assert budget.next_delay(retry_after=2.0) is None


def test_time_waiting_in_the_apply_queue_is_not_spent_from_the_budget() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=100, max_total_seconds=10.0, initial_backoff=1.0, max_backoff=1.0)
    budget = RetryBudget(policy, rng=random.Random(1), clock=clock)
    clock.now += 30.0  # waited 30 s for a pacer slot
    budget.pause(30.0)
    assert budget.elapsed() == 0.0 and budget.next_delay() is not None


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.01, max_total_seconds=60)
    budget = RetryBudget(policy, rng=random.Random(3), clock=FakeClock())
    assert budget.next_delay(retry_after=1.5) == 1.5
    # Without Retry-After the jittered backoff applies (tiny here).
    assert budget.next_delay() <= 0.01


def test_single_attempt_policy_never_retries() -> None:
    budget = RetryBudget(RetryPolicy(max_attempts=1), clock=FakeClock())
    assert budget.next_delay() is None


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"max_total_seconds": -1}, {"initial_backoff": -0.1}, {"multiplier": 0.5}]
)
def test_policy_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
