"""Live progress lines during apply, Terraform style: one line when a change starts, a
"still ...ing [Ns elapsed]" line every `interval` seconds, and one when it ends."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from reconciler.actions import Action
from reconciler.render import clean

VERBS = {
    Action.CREATE: ("creating", "created"),
    Action.REPLACE: ("replacing", "replaced"),
    Action.CANCEL: ("cancelling", "cancelled"),
    Action.REBASE: ("rebasing", "rebased"),
    Action.ADOPT: ("adopting", "adopted"),
    Action.FORGET: ("forgetting", "forgot"),
    Action.NOOP: ("refreshing", "refreshed"),
}


class Progress:
    def __init__(self, out: TextIO | None = None, interval: float = 10.0) -> None:
        self.out = out or sys.stdout
        self.interval = interval
        self._lock = threading.Lock()
        self._active: dict[str, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)

    def __enter__(self) -> "Progress":
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ticker.join(timeout=1)

    def line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def start(self, key: str, action: Action) -> None:
        verb = VERBS[action][0]
        with self._lock:
            self._active[key] = (verb, time.monotonic())
        self.line(f"{clean(key)}: {verb}...")

    def finish(self, key: str, message: str) -> None:
        with self._lock:
            verb, started = self._active.pop(key, ("", time.monotonic()))
        self.line(f"{clean(key)}: {clean(message)} [{time.monotonic() - started:.0f}s]")

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                active = sorted(self._active.items())
            now = time.monotonic()
            for key, (verb, started) in active:
                self.line(f"{clean(key)}: still {verb}... [{now - started:.0f}s elapsed]")
