"""The one state interface, and which backend a location gets (Terraform's statemgr idea).

Planner and executor see only `State` and this surface; `open_backend` picks the local file
store (`local.py`) or Cloud Storage (`gcs.py`) from the location's form (`url.py`).

    with store.lock("apply", timeout=...):   # exclusive: a lock file, or a lock object
        state = store.load()                 # folds a journal a killed run left behind
        store.record(entry, address)         # one change, from any thread
        store.commit()                       # everything recorded is in the state itself

Durability of `record`: the local store has the change fsynced when it returns. Cloud Storage
group-commits: a change that announces a new request id (the create that carries it comes
next) returns only once it is durable in the bucket; any other change is durable within one
round trip of the committer, and all of them at `commit()`. Either way a change lost to a
kill is one the next plan finds again from the jobs' labels (see RELIABILITY.md).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from reconciler.state.lock import LockInfo
from reconciler.state.model import State, StateEntry


class StateBackend(Protocol):
    location: str  # as the user gave it: a path or gs://BUCKET/PATH.json

    @property
    def lock_info(self) -> LockInfo | None: ...

    def lock(self, operation: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]: ...

    def exists(self) -> bool: ...

    def load(self) -> State: ...

    def snapshot(self) -> State: ...

    def record(self, entry: StateEntry | None, address: str) -> None: ...

    def commit(self) -> State: ...

    def save(self, state: State) -> None:
        """Write a whole state of the same lineage as the next serial (state rm, mv)."""

    def overwrite(self, state: State) -> None:
        """Write exactly `state`, lineage and serial as given (push, migrate); the caller checked."""

    def previous(self) -> State | None:
        """The version before the current one (backup file, or the object's previous generation
        when the bucket keeps versions); None when there is none."""

    def current_lock(self) -> LockInfo | None: ...

    def force_unlock(self, lock_id: str) -> None:
        """Remove the lock if, and only if, its ID is `lock_id`."""

    def delete(self) -> None:
        """Remove the state and what lies beside it (workspace delete). Needs the lock."""


def open_backend(location: str) -> StateBackend:
    from reconciler.state.url import is_gcs

    if is_gcs(location):
        from reconciler.state.gcs import GcsStateStore
        from reconciler.state.url import parse_gcs

        return GcsStateStore(parse_gcs(location))
    from reconciler.state.local import LocalStateStore

    return LocalStateStore(location)

