"""Live progress lines during apply, Terraform style: one line when a change starts, a
"still ...ing [Ns elapsed]" line every `interval` seconds, and one when it ends."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from reconciler.plan.model import Action
from reconciler.text import clean

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
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self._status = ""  # the line redrawn in place on a terminal

    def __enter__(self) -> "Progress":
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ticker.join(timeout=1)
        with self._lock:
            if self._status:
                print(file=self.out, flush=True)  # keep the last status on screen
                self._status = ""

    def line(self, text: str) -> None:
        with self._lock:
            if self._status:
                self.out.write("\r\x1b[K")
            print(text, file=self.out, flush=True)
            if self._status:
                self.out.write(self._status)
                self.out.flush()

    def status(self, text: str) -> None:
        """A line that replaces the previous status on a terminal; an ordinary line otherwise."""
        if not self.tty:
            self.line(text)
            return
        with self._lock:
            self._status = clean(text)
            self.out.write("\r\x1b[K" + self._status)
            self.out.flush()

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
