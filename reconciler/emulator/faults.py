"""Seeded fault decisions and request counters for the API routes (never the admin ones)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from reconciler.emulator.config import EmulatorConfig

DROPPABLE = frozenset({"create", "rebaseTunedModel"})  # commit, then lose the answer
QUOTA_BURST_SECONDS = 10.0  # the submission quota's bucket holds this many seconds of it


@dataclass
class FaultSettings:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    retry_after: int = 1
    # Job submissions (create, rebase) accepted per minute per project and location, as Vertex
    # AI's quota: a token bucket each, holding QUOTA_BURST_SECONDS of it; above it the answer is
    # 429. 0: no quota.
    quota_per_minute: float = 0.0

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> FaultSettings:
        return cls(config.latency_ms, config.error_rate, config.drop_rate, config.retry_after)

    def updated(self, changes: dict[str, Any]) -> FaultSettings:
        """A copy with `changes` applied; ValueError for an unknown name or a bad value."""
        current = asdict(self)
        for key, value in changes.items():
            if key == "seed":
                continue  # handled by Faults.update
            if key not in current:
                raise ValueError(f"unknown fault setting {key!r}; expected one of {', '.join(sorted(current))}, seed")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"fault setting {key!r} must be a number")
            current[key] = value
        new = FaultSettings(**current)
        if new.latency_ms < 0 or new.retry_after < 0 or new.quota_per_minute < 0:
            raise ValueError("latency_ms, retry_after and quota_per_minute must not be negative")
        if not (0 <= new.error_rate <= 1 and 0 <= new.drop_rate <= 1):
            raise ValueError("error_rate and drop_rate must lie between 0 and 1")
        new.retry_after = int(new.retry_after)
        return new


@dataclass(frozen=True)
class Decision:
    latency_s: float = 0.0
    error: int | None = None  # 429 or 503
    drop: bool = False
    quota: bool = False  # the 429 is the submission quota's


class Faults:
    """One seeded RNG drawn in request order: the same seed and requests give the same faults."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.settings = FaultSettings.from_config(self._config)
            self._rng = random.Random(f"faults-{self._config.seed}")
            self._fill_quota()

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        with self._lock:
            self.settings = self.settings.updated(changes)
            if "seed" in changes:
                self._rng = random.Random(f"faults-{changes['seed']}")
            if "quota_per_minute" in changes:
                self._fill_quota()
            return self.settings

    def _fill_quota(self) -> None:
        # One bucket per project and location, as Vertex AI counts its quota; each starts full.
        self._buckets: dict[tuple[str, str] | None, tuple[float, float]] = {}

    def _over_quota(self, region: tuple[str, str] | None) -> bool:
        per_second = self.settings.quota_per_minute / 60.0
        full = max(per_second * QUOTA_BURST_SECONDS, 1.0)
        now = time.monotonic()
        tokens, refilled = self._buckets.get(region, (full, now))
        tokens = min(full, tokens + (now - refilled) * per_second)
        over = tokens < 1.0
        self._buckets[region] = (tokens if over else tokens - 1.0, now)
        return over

    def decide(self, method: str, region: tuple[str, str] | None = None) -> Decision:
        """The faults of one request; `region` (project number, location) picks the quota bucket."""
        with self._lock:
            s = self.settings
            error = None
            if s.error_rate > 0 and self._rng.random() < s.error_rate:
                error = 429 if self._rng.random() < 0.5 else 503
            quota = (error is None and method in DROPPABLE and s.quota_per_minute > 0
                     and self._over_quota(region))
            if quota:
                error = 429
            drop = error is None and method in DROPPABLE and s.drop_rate > 0 and self._rng.random() < s.drop_rate
            return Decision(s.latency_ms / 1000.0, error, drop=drop, quota=quota)


class Stats:
    """Requests per API method (faulted ones included) and fault counts, for benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: dict[str, int] = {}
            self.versions: dict[str, int] = {}  # first path segment (v1, v1beta1, ui) -> count
            self.responses: dict[str, int] = {}  # HTTP status -> count
            self.faults: dict[str, int] = {"429": 0, "503": 0, "dropped": 0, "quota": 0}
            self.in_flight = 0
            self.max_in_flight = 0

    def begin(self, method: str, version: str | None = None) -> None:
        with self._lock:
            self.requests[method] = self.requests.get(method, 0) + 1
            if version:
                self.versions[version] = self.versions.get(version, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, status: int | str) -> None:
        with self._lock:
            self.in_flight -= 1
            key = str(status)
            self.responses[key] = self.responses.get(key, 0) + 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "total": sum(self.requests.values()),
                "versions": dict(self.versions),
                "responses": dict(self.responses),
                "faults": dict(self.faults),
                "maxInFlight": self.max_in_flight,
            }
