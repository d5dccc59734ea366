"""The pacer, pure: its queue driven with a fake clock, and simulated applies against a quota
(a token bucket answering 429 above Q per minute) and against random 429s no rate avoids."""

from __future__ import annotations

import heapq
import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from reconciler.apply.pacer import Pacer


def test_unlimited_until_throttled():
    pacer = Pacer(None, clock=lambda: 0.0)
    tickets = [pacer.enqueue() for _ in range(100)]
    assert pacer.release(0.0) == tickets and pacer.rate is None


def test_cap_spaces_submissions_evenly():
    pacer = Pacer(60, clock=lambda: 0.0)  # one per second
    tickets = [pacer.enqueue() for _ in range(5)]
    out = [(t, pacer.release(t)) for t in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 9.0)]
    assert out == [(0.0, tickets[:1]), (0.5, []), (1.0, tickets[1:2]), (1.5, []), (2.0, tickets[2:3]),
                   (3.0, tickets[3:4]), (4.0, tickets[4:]), (9.0, [])]


def test_a_retry_goes_before_new_submissions():
    pacer = Pacer(60, clock=lambda: 0.0)
    first, second = pacer.enqueue(), pacer.enqueue()
    assert pacer.release(0.0) == [first]
    retry = pacer.enqueue(retry=True)
    assert pacer.release(1.0) == [retry] and pacer.release(2.0) == [second]


def test_acquire_blocks_worker_threads_and_stop_wakes_them():
    pacer = Pacer(600)  # 10 per second, real clock
    started = time.monotonic()
    assert [pacer.acquire() for _ in range(4)] == [0, 0, 0, 0]
    assert time.monotonic() - started > 0.25  # 3 waits of 0.1 s
    slow = Pacer(6)  # one per 10 s: the second acquire waits
    assert slow.acquire() == 0
    results: list[int | None] = []
    worker = threading.Thread(target=lambda: results.append(slow.acquire()))
    worker.start()
    slow.stop()  # whether the worker waits already or not yet: it must not submit
    worker.join(30)  # (without the wake-up it would wait its 10 s turn and get 1)
    assert results == [None] and not worker.is_alive()
    assert slow.acquire() is None  # nothing more goes out


# -- simulated applies ------------------------------------------------------------------------

@dataclass
class Run:
    pacer: Pacer
    done: int = 0
    failed: int = 0
    end: float = 0.0
    sent: list[tuple[float, bool]] = field(default_factory=list)  # (time, answered 429)
    released: list[float] = field(default_factory=list)  # when the pacer let a submission out

    def after(self, start: float) -> tuple[float, float, float]:
        """Accepted per second, sent per second and the 429 share from `start` to the end."""
        sent = [refused for t, refused in self.sent if t >= start]
        span = self.end - start
        return (len(sent) - sum(sent)) / span, len(sent) / span, sum(sent) / len(sent)


class _Unpaced(Pacer):
    """What parallelism alone allows: a pacer that never slows down."""

    def _decide(self, elapsed: float, ok: int, answers: int) -> None:
        pass


def simulate(jobs: int, *, workers: int = 16, latency: float = 0.02, quota: float | None = None,
             burst: float = 10, quota_until: float = float("inf"), loss: float = 0.0,
             cap: float | None = None, seed: int = 1, paced: bool = True) -> Run:
    """`workers` submit `jobs` creates the way the executor and client do: each waits for the
    pacer, a 429 is reported and retried through the pacer (ahead of new work) after the
    client's backoff (full jitter, 0.5 s doubling up to 10 s), a create gives up after 16
    attempts or 60 s. The service answers 429 when its token bucket (`quota` per minute, up
    to `burst` tokens, until `quota_until`) is empty, and at random with probability `loss`."""
    rng = random.Random(seed)
    now = [0.0]
    pacer = (Pacer if paced else _Unpaced)(cap, clock=lambda: now[0])
    run = Run(pacer)
    tokens, refilled = float(burst), 0.0
    events: list[tuple[float, int, str, dict]] = []
    order = iter(range(10**9))
    waiting: dict[int, dict] = {}
    left = jobs

    def at(t: float, kind: str, data: dict) -> None:
        heapq.heappush(events, (t, next(order), kind, data))

    scheduled = [float("inf")]  # the one pending "release" event

    def release_at(t: float) -> None:
        if t < scheduled[0]:
            scheduled[0] = t
            at(t, "release", {})

    def wait_for_pacer(t: float, data: dict, retry: bool) -> None:
        waiting[pacer.enqueue(retry)] = data
        release_at(max(pacer.next_release(), t))

    def next_job(t: float) -> None:
        nonlocal left
        if left:
            left -= 1
            wait_for_pacer(t, {"start": None, "attempt": 0, "delay": 0.0}, retry=False)

    for _ in range(workers):
        next_job(0.0)
    while events:
        t, _, kind, data = heapq.heappop(events)
        now[0] = run.end = t
        if kind == "release":
            if t != scheduled[0]:
                continue  # superseded by an earlier one
            scheduled[0] = float("inf")
            for ticket in pacer.release(t):
                job = waiting.pop(ticket)
                run.released.append(t)
                start = t if job["start"] is None else job["start"]
                at(t + job["delay"], "send", {**job, "start": start, "epoch": pacer.epoch})
            if waiting:
                release_at(max(pacer.next_release(), t))
        elif kind == "send":
            if data["attempt"] and t - data["start"] > 60:
                run.failed += 1
                next_job(t)
                continue
            refused = False
            if quota is not None and t < quota_until:
                tokens, refilled = min(burst, tokens + (t - refilled) * quota / 60), t
                refused = tokens < 1
                tokens -= 0 if refused else 1
            refused = refused or rng.random() < loss
            run.sent.append((t, refused))
            at(t + latency, "answer", {**data, "refused": refused})
        else:
            if not data["refused"]:
                pacer.on_success(data["epoch"])
                run.done += 1
                next_job(t)
                continue
            pacer.on_throttle(data["epoch"])
            attempt = data["attempt"] + 1
            if attempt >= 16:
                run.failed += 1
                next_job(t)
                continue
            delay = rng.uniform(0, min(10.0, 0.5 * 2 ** (attempt - 1)))
            wait_for_pacer(t, {**data, "attempt": attempt, "delay": delay}, retry=True)
    return run


@pytest.mark.parametrize("burst", [5, 60])
@pytest.mark.parametrize("workers, latency", [(16, 0.02), (8, 0.5)])
def test_converges_near_a_quota(burst, workers, latency):
    quota = 60  # per minute: Vertex AI's job submissions per project and region
    run = simulate(300, workers=workers, latency=latency, quota=quota, burst=burst, seed=3)
    assert run.done == 300 and run.failed == 0
    accepted, sent, share = run.after(120.0)  # converged: the last 3 minutes or so
    assert 0.8 * quota / 60 <= accepted <= 1.25 * quota / 60
    assert sent <= 1.35 * quota / 60 and share <= 0.2, (sent, share)
    unpaced = simulate(300, workers=workers, latency=latency, quota=quota, burst=burst, seed=3, paced=False)
    assert unpaced.after(120.0)[2] > 0.5  # without the pacer most requests would be refused


@pytest.mark.parametrize("loss", [0.1, 0.2, 0.3])
@pytest.mark.parametrize("workers, latency", [(16, 0.02), (8, 0.2)])
def test_random_429s_do_not_collapse_throughput(loss, workers, latency):
    run = simulate(1000, workers=workers, latency=latency, loss=loss, seed=5)
    unpaced = simulate(1000, workers=workers, latency=latency, loss=loss, seed=5, paced=False)
    assert run.done == 1000 and run.failed == 0
    # Compared with no pacing at all (what parallelism allows), at the 90th percentile.
    t90, unpaced_t90 = (sorted(t for t, refused in r.sent if not refused)[899] for r in (run, unpaced))
    assert unpaced_t90 / t90 > 0.5, (unpaced_t90, t90)
    assert run.pacer.rate is None or run.pacer.rate > 10  # it learnt that slowing down does not help


def test_the_cap_is_never_exceeded():
    run = simulate(200, workers=16, quota=120, burst=30, loss=0.1, cap=30, seed=2)  # cap below the quota
    assert run.done == 200
    released = run.released
    for i, t in enumerate(released):
        in_a_minute = sum(1 for u in released[i:] if u < t + 60)
        assert in_a_minute <= 30 + 1, (t, in_a_minute)
    assert run.pacer.rate <= 0.5


def test_recovers_over_time_once_the_quota_is_gone():
    run = simulate(3000, workers=16, quota=60, burst=10, quota_until=120.0, seed=4)
    assert run.done == 3000 and run.failed == 0
    assert sum(1 for t, refused in run.sent if t < 120 and not refused) <= 10 + 120 + 1  # quota held
    after = (3000 - sum(1 for t, refused in run.sent if t < 120 and not refused)) / (run.end - 120)
    assert after > 5 and (run.pacer.rate is None or run.pacer.rate > 20)  # per second; the quota was 1
