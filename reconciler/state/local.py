"""The local backend: the state file store (`store.py`) with the rest of the backend surface
(`backend.StateBackend`): exact overwrite, the backup as the previous version, the lock file
as the current lock, deletion."""

from __future__ import annotations

import contextlib
import copy
import os

from reconciler.errors import StateError
from reconciler.state import lock as lock_file
from reconciler.state.lock import LockInfo
from reconciler.state.model import State, state_from_json
from reconciler.state.store import StateStore


class LocalStateStore(StateStore):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.location = os.fspath(path)

    def overwrite(self, state: State) -> None:
        self._require_lock("overwrite")
        with self._mutex:
            with self._write_errors():
                self._write_state_file(state)
                self._drop_journal()
            self._base = copy.deepcopy(state)
            self._state = state

    def previous(self) -> State | None:
        try:
            text = self.backup_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read backup {self.backup_path}: {exc}") from None
        return state_from_json(text, str(self.backup_path))

    def current_lock(self) -> LockInfo | None:
        return lock_file.read_lock(self.path)

    def force_unlock(self, lock_id: str) -> None:
        lock_file.force_unlock(self.path, lock_id)

    def delete(self) -> None:
        self._require_lock("delete")
        with self._mutex:
            self._close_journal()
            for path in (self.journal_path, self.path, self.backup_path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            self._state = None
            self._base = None
