"""Group commit: many threads hand in changes, one thread writes them in batches.

While a batch is being written, the changes handed in meanwhile wait and go out together in
the next one, so N workers cost about one write per round trip instead of N. `submit` returns
a sequence number at once; `wait(seq)` blocks until that change (and all before it) is
durable. A write that fails breaks the committer: every waiter, and every later call, gets
the error (nothing after a failed batch is ever written, so what is durable stays a prefix of
what was handed in).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from reconciler.errors import ReconcilerError, StateError

T = TypeVar("T")


class GroupCommitter(Generic[T]):
    def __init__(self, write: Callable[[list[T]], None], name: str = "state-commit") -> None:
        self._write = write
        self._name = name
        self._cond = threading.Condition()
        self._pending: list[T] = []
        self._submitted = 0
        self._durable = 0
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.batches = 0  # batches written (figures for tests and benchmarks)

    def submit(self, item: T) -> int:
        with self._cond:
            self._raise_if_broken()
            if self._closed:
                raise RuntimeError("GroupCommitter.submit() after close()")
            self._pending.append(item)
            self._submitted += 1
            if self._thread is None:
                # A daemon: a process that is killed or interrupted never waits for it.
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return self._submitted

    def wait(self, seq: int, timeout: float | None = None) -> bool:
        """Block until change `seq` is durable (True), the timeout passes (False), or the
        committer broke (raises)."""
        with self._cond:
            done = self._cond.wait_for(lambda: self._durable >= seq or self._error is not None, timeout)
            if self._durable >= seq:
                return True
            self._raise_if_broken()
            return done

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything handed in so far is durable."""
        with self._cond:
            seq = self._submitted
        return self.wait(seq, timeout)

    @property
    def broken(self) -> BaseException | None:
        with self._cond:
            return self._error

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._durable == self._submitted

    def close(self, timeout: float | None = None) -> None:
        """Write what is pending (unless broken), then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _raise_if_broken(self) -> None:
        if self._error is not None:
            if isinstance(self._error, ReconcilerError):
                raise type(self._error)(str(self._error))
            raise StateError(f"state write failed: {self._error}") from self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
                upto = self._submitted
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                with self._cond:
                    self._error = exc
                    self._pending = []
                    self._cond.notify_all()
                return
            with self._cond:
                self._durable = upto
                self.batches += 1
                self._cond.notify_all()
