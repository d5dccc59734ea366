"""The emulator's clock (real or virtual) and RFC 3339 timestamps as the service writes them."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timezone

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


class Clock:
    """Seconds since the epoch. A virtual clock stands still until `advance()`; a real clock
    follows wall time, and `advance()` still moves it forward (handy for demos)."""

    def __init__(self, virtual: bool = False, start: float | None = None) -> None:
        self.virtual = virtual
        self._lock = threading.Lock()
        self._base = time.time() if start is None else start
        self._offset = 0.0
        self._real_origin = time.monotonic()

    def now(self) -> float:
        with self._lock:
            if self.virtual:
                return self._base + self._offset
            return self._base + (time.monotonic() - self._real_origin) + self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        with self._lock:
            self._offset += seconds
        return self.now()

    @property
    def offset(self) -> float:
        return self._offset

    def restore(self, now: float) -> None:
        """Continue from a persisted time (a restart must not move timestamps backwards)."""
        current = self.now()
        if now > current:
            with self._lock:
                self._offset += now - current


def rfc3339(epoch: float) -> str:
    """`2024-10-08T23:20:13.040864Z`: microseconds and a `Z`, as Vertex AI returns them."""
    # isoformat is the same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ") but quicker; a list
    # page renders thousands of these.
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch; raises ValueError for anything that is not RFC 3339."""
    match = _RFC3339.match(text.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone.utc)
    epoch = moment.timestamp() + (float(f"0.{frac}") if frac else 0.0)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        epoch -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return epoch
