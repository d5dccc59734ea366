"""Retry timing: exponential backoff with full jitter, Retry-After, bounded attempts and time.

Only the *when* lives here (pure functions and a small budget object with an injectable
clock and random source); *whether* a failure may be retried is the client's business,
because it depends on the call (a create is never blindly repeated).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

# HTTP statuses Google documents as transient for idempotent calls.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # attempts in all, the first one included
    max_total_seconds: float = 60.0  # no retry starts later than this after the first attempt
    initial_backoff: float = 0.5
    max_backoff: float = 20.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_total_seconds < 0 or self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("retry durations must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")


def backoff_ceiling(policy: RetryPolicy, retry_number: int) -> float:
    """The upper bound of the wait before retry number `retry_number` (1 = first retry)."""
    exponent = max(retry_number - 1, 0)
    # min() first on the exponent keeps huge attempt numbers from overflowing a float.
    return min(policy.max_backoff, policy.initial_backoff * policy.multiplier ** min(exponent, 64))


def full_jitter(policy: RetryPolicy, retry_number: int, rng: random.Random) -> float:
    """AWS-style "full jitter": uniform in [0, ceiling], so that many clients spread out."""
    return rng.uniform(0.0, backoff_ceiling(policy, retry_number))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        now = now or datetime.now(timezone.utc)
        seconds = (when - now).total_seconds()
    if seconds != seconds or seconds == float("inf"):  # NaN / inf
        return None
    return max(seconds, 0.0)


@dataclass
class RetryBudget:
    """The retry state of one logical call: how many attempts so far and since when."""

    policy: RetryPolicy
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)
    attempts: int = 0  # finished attempts

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def pause(self, seconds: float) -> None:
        """Time spent waiting for something other than the service (the apply's pacer): not
        counted against the total."""
        self.started += max(0.0, seconds)

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """Record a failed attempt; return how long to wait before the next, or None to give up.

        A server's Retry-After is a floor: waiting less would only earn another 429. When the
        wait would end past the total time budget we give up now rather than sleep in vain.
        """
        self.attempts += 1
        if self.attempts >= self.policy.max_attempts:
            return None
        delay = full_jitter(self.policy, self.attempts, self.rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if self.elapsed() + delay > self.policy.max_total_seconds:
            return None
        return delay

    def describe(self) -> str:
        return f"{self.attempts} attempt{'s' if self.attempts != 1 else ''} in {self.elapsed():.1f}s"
