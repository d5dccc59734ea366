"""Pacing of job submissions: an optional fixed cap plus adaptive back-off on 429.

Vertex AI allows about 60 job submissions per minute per project and region. Without a cap the
pacer lets submissions through freely until the service answers 429; it then halves the rate the
apply was achieving, and creeps back up by a few percent per success, so a large apply slows
down as a whole instead of every worker hammering the quota on its own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MIN_RATE_PER_SECOND = 0.1


class Pacer:
    def __init__(self, max_per_minute: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.cap = max_per_minute / 60.0 if max_per_minute else None
        self.rate = self.cap  # submissions per second; None = unlimited
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._recent: deque[float] = deque()
        self.throttled = 0

    def _observed_rate(self, now: float) -> float:
        while self._recent and now - self._recent[0] > 10.0:
            self._recent.popleft()
        return len(self._recent) / 10.0

    def acquire(self) -> None:
        """Block until this submission may go out."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            if self.rate is not None:
                self._next_slot = slot + 1.0 / self.rate
            self._recent.append(slot)
        if slot > now:
            self._sleep(slot - now)

    def on_throttle(self) -> None:
        """The service answered 429: halve the rate."""
        with self._lock:
            now = self._clock()
            base = self.rate if self.rate is not None else max(self._observed_rate(now), 1.0)
            self.rate = max(base / 2.0, MIN_RATE_PER_SECOND)
            self._next_slot = max(self._next_slot, now + 1.0 / self.rate)
            self.throttled += 1

    def on_success(self) -> None:
        with self._lock:
            if self.rate is None:
                return
            self.rate *= 1.05
            if self.cap is not None:
                self.rate = min(self.rate, self.cap)
            elif self.rate > 50.0:
                self.rate = None  # recovered: back to unlimited
