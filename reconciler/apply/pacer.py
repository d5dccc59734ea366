"""Pacing of job submissions: an optional hard cap, plus adaptive back-off on 429.

Vertex AI allows about 60 job submissions per minute per project and region and answers 429
above it; a service may also answer 429 now and then whatever the rate. Submissions wait in
one queue that lets them out `rate` per second (None: at once); the retry of one refused with
429 goes first. Answers are judged per window (at least WINDOW seconds and WINDOW_SAMPLES
answers), counting only requests sent since the last cut, and one decision is made per window:

- two windows in a row whose 429 share exceeds the background share by MARGIN cut the rate to
  BACKOFF x the rate the service *accepted* (under a quota: just below the quota);
- the window after a cut shows whether it helped. If after PROBES cuts in a row the 429 share
  is still the same (within two standard errors), the 429s do not depend on our rate: the cuts
  are undone and that share becomes the background. A share seen after a cut that did help
  bounds the background from above; above MAX_BACKGROUND a share is never background;
- any other window grows the rate by GROWTH (recovery over time, not per success); once it is
  twice what is being submitted, the pacer steps aside (no limit again).

A 429's Retry-After is honoured by the request that got it (the client waits that long before
its retry) and never cuts the rate by itself. The cap (--max-creates-per-minute) bounds the
rate at all times."""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable

MIN_RATE_PER_SECOND = 0.1  # the rate is never cut below this (submissions per second)
WINDOW = 2.0  # seconds: the shortest observation window ...
WINDOW_SAMPLES = 20  # ... which also waits for this many answers (429s and successes) ...
WINDOW_MAX = 30.0  # ... but for no longer than this once it has WINDOW_FEW
WINDOW_FEW = 5
MARGIN = 0.15  # a 429 share this far above the background counts as throttling ...
TRIGGER_WINDOWS = 2  # ... in this many windows in a row
BACKOFF = 0.9  # a cut goes to this share of the accepted rate ...
MAX_CUT = 0.25  # ... but not below this share of the rate before it
GROWTH = 1.1  # after a clean window the rate grows by this factor
PROBES = 2  # 429s are background once this many cuts in a row left their share unchanged
MAX_BACKGROUND = 0.5  # a 429 share above this is always a quota, never background

_RETRY, _NEW = 0, 1  # queue priorities


class Pacer:
    """Thread-safe. Workers call `acquire()` before each submission (and each retry after
    429) and report its answer with `on_success()` / `on_throttle()`. The queue itself
    (`enqueue`, `next_release`, `release`) takes the time from its caller, so a simulation
    with a fake clock can drive it."""

    def __init__(self, max_per_minute: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = max_per_minute / 60.0 if max_per_minute else None
        self.rate = self.cap  # submissions per second; None = no limit
        self.epoch = 0  # cuts so far; an answer counts only if sent in the present epoch
        self.throttled = 0  # 429s reported in all
        self._clock = clock
        self._cond = threading.Condition()
        self._stopped = False
        self._queue: list[tuple[int, int]] = []  # (priority, ticket)
        self._tickets = itertools.count()
        self._released: set[int] = set()
        self._next_slot = float("-inf")
        self._window_start: float | None = clock()  # None: no answer yet since the last cut
        self._ok = self._refused = 0  # in the present window
        self._streak = (0, 0, 0)  # 429s, answers and windows of the present run of throttled windows
        # After a cut: the rate before the cuts, the 429s and answers it is judged against, cuts.
        self._probe: tuple[float | None, int, int, int] | None = None
        self._background = 0.0  # the 429 share that does not depend on our rate

    # -- the queue ----------------------------------------------------------------------------
    def enqueue(self, retry: bool = False) -> int:
        """Join the queue; returns a ticket that `release()` lets out."""
        with self._cond:
            ticket = next(self._tickets)
            heapq.heappush(self._queue, (_RETRY if retry else _NEW, ticket))
            return ticket

    def next_release(self) -> float | None:
        """When the head of the queue may leave (None: the queue is empty)."""
        with self._cond:
            return self._next_slot if self._queue else None

    def release(self, now: float) -> list[int]:
        """The tickets whose turn has come by `now`, in order; what they send belongs to the
        present `epoch`."""
        with self._cond:
            self._tick(now)
            out = []
            while self._queue and now >= self._next_slot:
                out.append(heapq.heappop(self._queue)[1])
                if self.rate is not None:
                    self._next_slot = max(self._next_slot, now) + 1.0 / self.rate
            return out

    # -- for worker threads -------------------------------------------------------------------
    def acquire(self, retry: bool = False) -> int | None:
        """Block until this submission (`retry`: the retry of one refused with 429) may go;
        returns the epoch to report its answer with, or None once the pacer is stopped."""
        with self._cond:
            ticket = self.enqueue(retry)
            while not self._stopped:
                released = self.release(self._clock())
                if released:
                    self._released.update(released)
                    self._cond.notify_all()
                if ticket in self._released:
                    self._released.discard(ticket)
                    return self.epoch
                wake = self.next_release()
                self._cond.wait(None if wake is None else max(0.001, wake - self._clock()))
            self._queue = [entry for entry in self._queue if entry[1] != ticket]
            heapq.heapify(self._queue)
            return None

    def stop(self) -> None:
        """Let nothing out any more: every `acquire()`, waiting or to come, returns None."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # -- answers ------------------------------------------------------------------------------
    def on_throttle(self, epoch: int | None = None) -> None:
        """A submission sent in `epoch` (None: count it anyway) was answered 429."""
        with self._cond:
            self.throttled += 1
            if self._counts(self._clock(), epoch):
                self._refused += 1

    def on_success(self, epoch: int | None = None) -> None:
        """A submission sent in `epoch` (None: count it anyway) was accepted."""
        with self._cond:
            if self._counts(self._clock(), epoch):
                self._ok += 1

    # -- the decisions ------------------------------------------------------------------------
    def _counts(self, now: float, epoch: int | None) -> bool:
        self._tick(now)
        if epoch is not None and epoch != self.epoch:
            return False  # sent before the last cut: it says nothing about the new rate
        if self._window_start is None:
            self._window_start = now
        return True

    def _tick(self, now: float) -> None:
        if self._window_start is None:
            return
        elapsed = now - self._window_start
        answers = self._ok + self._refused
        if elapsed >= WINDOW and (answers >= WINDOW_SAMPLES or (elapsed >= WINDOW_MAX and answers >= WINDOW_FEW)):
            epoch = self.epoch
            self._decide(elapsed, self._ok, answers)
            self._window_start = now if self.epoch == epoch else None
            self._ok = self._refused = 0

    def _decide(self, elapsed: float, ok: int, answers: int) -> None:
        refused = answers - ok
        share = refused / answers
        submitted = answers / elapsed
        probe, self._probe = self._probe, None
        if probe is not None:  # the window after a cut: did it change the 429 share?
            rate_before, refused_all, answers_all, cuts = probe
            before = refused_all / answers_all
            error = 2 * math.sqrt(before * (1 - before) / answers_all + share * (1 - share) / answers)
            refused_all, answers_all = refused_all + refused, answers_all + answers
            if abs(share - before) <= error and refused_all <= MAX_BACKGROUND * answers_all:
                if cuts >= PROBES:  # no: those 429s are not about our rate
                    self._background, self.rate = refused_all / answers_all, rate_before
                    return
                self._cut(ok / elapsed, submitted, (rate_before, refused_all, answers_all, cuts + 1))
                return
            if share < before:  # yes: the share seen at the lower rate bounds the background
                self._background = min(self._background, share)
            self._streak = (0, 0, TRIGGER_WINDOWS - 1)  # and if still throttled, cut again
        if share <= self._background + MARGIN:
            self._streak = (0, 0, 0)
            if self.rate is not None:
                self.rate *= GROWTH
                if self.cap is not None:
                    self.rate = min(self.rate, self.cap)
                elif self.rate >= 2 * submitted:
                    self.rate = None  # far above what is submitted: the pacer is not what limits
            return
        refused_all, answers_all, windows = self._streak
        self._streak = (refused_all + refused, answers_all + answers, windows + 1)
        if windows + 1 >= TRIGGER_WINDOWS:
            self._streak = (0, 0, 0)
            self._cut(ok / elapsed, submitted, (self.rate, refused_all + refused, answers_all + answers, 1))

    def _cut(self, accepted: float, submitted: float, probe: tuple[float | None, int, int, int]) -> None:
        # The rate the service let through, and the attempts it takes to get that past the background.
        accepted /= 1 - self._background
        current = self.rate if self.rate is not None else submitted
        self.rate = max(BACKOFF * accepted, MAX_CUT * current, MIN_RATE_PER_SECOND)
        if self.cap is not None:
            self.rate = min(self.rate, self.cap)
        self._probe = probe
        self.epoch += 1
