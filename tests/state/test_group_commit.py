"""Group commit: many threads, one writer, batches; a failure stops everything after it."""

from __future__ import annotations

import threading

import pytest

from reconciler.errors import StateError
from reconciler.state.group_commit import GroupCommitter


class SlowWriter:
    """Writes take until `release` is set the first time (so submissions pile up)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_on: int | None = None

    def __call__(self, batch: list[int]) -> None:
        self.entered.set()
        self.release.wait(10)
        if self.fail_on is not None and self.fail_on in batch:
            raise StateError(f"refused at {self.fail_on}")
        self.batches.append(list(batch))


def test_changes_handed_in_during_a_write_go_out_together_in_order():
    writer = SlowWriter()
    committer = GroupCommitter(writer)
    first = committer.submit(0)
    assert writer.entered.wait(5)  # batch [0] is being written; now 31 more arrive
    seqs = [committer.submit(i) for i in range(1, 32)]
    assert not committer.wait(seqs[-1], timeout=0.05)  # not durable yet
    writer.release.set()
    assert committer.wait(first) and committer.wait(seqs[-1])
    assert writer.batches == [[0], list(range(1, 32))]
    assert committer.batches == 2 and committer.idle
    committer.close()


def test_many_threads_waiting_share_few_batches():
    written: list[list[tuple[int, int]]] = []
    gate = threading.Semaphore(0)

    def write(batch):
        gate.acquire(timeout=5)  # one write at a time, each released by the test loop below
        written.append(batch)

    committer = GroupCommitter(write)
    done = []

    def worker(w: int) -> None:
        for i in range(10):
            committer.wait(committer.submit((w, i)))
        done.append(w)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    while len(done) < 16:
        gate.release()
        threading.Event().wait(0.001)
        if not any(t.is_alive() for t in threads):
            break
    for t in threads:
        t.join(5)
    flat = [item for batch in written for item in batch]
    assert sorted(flat) == sorted((w, i) for w in range(16) for i in range(10))
    for w in range(16):  # each thread's changes in its own order
        assert [i for ww, i in flat if ww == w] == list(range(10))
    assert len(written) < 160 / 2  # batched: far fewer writes than changes
    committer.close()


def test_a_failed_write_breaks_every_waiter_and_every_later_call():
    writer = SlowWriter()
    writer.fail_on = 3
    writer.release.set()
    committer = GroupCommitter(writer)
    committer.wait(committer.submit(1))
    seq = committer.submit(3)
    with pytest.raises(StateError, match="refused at 3"):
        committer.wait(seq)
    with pytest.raises(StateError, match="refused at 3"):
        committer.submit(4)
    with pytest.raises(StateError, match="refused at 3"):
        committer.flush()
    assert writer.batches == [[1]]  # nothing after the failed batch was written


def test_close_writes_what_is_pending_then_stops():
    writer = SlowWriter()
    writer.release.set()
    committer = GroupCommitter(writer)
    for i in range(5):
        committer.submit(i)
    committer.close(timeout=5)
    assert [i for b in writer.batches for i in b] == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError):
        committer.submit(9)
