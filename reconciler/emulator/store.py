"""`--data FILE`: jobs and operations survive a restart.

Writes are atomic (temp file in the same directory, fsync, os.replace) and coalesced by a
background thread, so a burst of creates costs one write, not one per request; `close()`
flushes whatever is pending.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

from reconciler import jsonio
from reconciler.files import atomic_write, read_regular


def load(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The saved snapshot, or None when there is no file yet. ValueError if it is corrupt."""
    file = Path(path)
    if not file.exists():
        return None
    try:
        data = jsonio.loads(read_regular(file))
    except (OSError, jsonio.JsonError) as exc:
        raise ValueError(f"{file}: cannot read emulator data: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ValueError(f"{file}: not an emulator data file (version 1)")
    return data


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, data)


class Persister:
    """Saves `snapshot()` to `path` in the background after each `mark_dirty()`."""

    def __init__(self, path: str | os.PathLike[str], snapshot: Callable[[], dict[str, Any]]) -> None:
        self.path = Path(path)
        self._snapshot = snapshot
        self._wake = threading.Condition()
        self._dirty = False
        self._closed = False
        self._io = threading.Lock()  # one write at a time, in order
        self._thread = threading.Thread(target=self._run, name="emulator-persist", daemon=True)
        self._thread.start()

    def mark_dirty(self) -> None:
        with self._wake:
            self._dirty = True
            self._wake.notify()

    def flush(self) -> None:
        with self._wake:
            self._dirty = False
        self._write()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=10)
        self.flush()

    def _write(self) -> None:
        with self._io:
            data = json.dumps(self._snapshot(), separators=(",", ":")).encode()
            write_atomic(self.path, data)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._dirty and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                self._dirty = False
            self._write()
