"""The lock beside a local state file `S`: `S.lock` holds who has it (a JSON LockInfo).

Created with link(2) (or O_EXCL where the filesystem has no hard links) so exactly one process
wins and the file appears with its whole content. It is *not* removed when the holder dies:
a crashed apply leaves a lock that `reconciler force-unlock ID` clears, as Terraform does."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import getpass
import json
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from reconciler import jsonio
from reconciler.defaults import DEFAULT_STATE_PATH
from reconciler.errors import StateError
from reconciler.files import PRIVATE_MODE, fsync_dir, read_regular, resolve_link, write_all
from reconciler.text import format_duration, one_line


@dataclass(frozen=True)
class LockInfo:
    id: str
    pid: int
    host: str
    operation: str
    created: str  # RFC 3339, UTC
    user: str = ""  # who ran it (empty in locks written before this field)
    version: str = ""  # the tool version that holds it

    @classmethod
    def new(cls, operation: str) -> LockInfo:
        from reconciler import __version__

        created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(str(uuid.uuid4()), os.getpid(), socket.gethostname(), operation, created,
                   _user(), __version__)

    def age_seconds(self, now: dt.datetime | None = None) -> float | None:
        try:
            created = dt.datetime.fromisoformat(self.created.replace("Z", "+00:00"))
        except ValueError:
            return None
        now = now or dt.datetime.now(dt.timezone.utc)
        return max(0.0, (now - created).total_seconds())


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name, no passwd entry (containers)
        return ""


def lock_path_for(path: str | os.PathLike[str]) -> Path:
    """Beside the state file, or beside the target of a state path that is a symbolic link."""
    return Path(f"{resolve_link(path)}.lock")


def read_lock(path: str | os.PathLike[str]) -> LockInfo | None:
    """The current lock on state file `path`, or None when it is not locked."""
    lock_path = lock_path_for(path)
    try:
        text = read_regular(lock_path, limit=1024 * 1024)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read lock file {lock_path}: {exc.strerror or exc}") from None
    try:
        data = jsonio.loads(text)
    except jsonio.JsonError as exc:
        raise StateError(f"lock file {lock_path} exists but is not a valid lock record; if no reconciler "
                         f"is running, delete it by hand ({exc})") from None
    try:
        return LockInfo(
            id=str(data["id"]),
            pid=int(data["pid"]),
            host=str(data["host"]),
            operation=str(data["operation"]),
            created=str(data["created"]),
            user=str(data.get("user", "")),
            version=str(data.get("version", "")),
        )
    except (ValueError, KeyError, TypeError):
        raise StateError(
            f"lock file {lock_path} exists but is not a valid lock record; if no reconciler "
            "is running, delete it by hand"
        ) from None


def lock_holder_alive(info: LockInfo) -> bool | None:
    """True/False for a holder on this host; None when it runs elsewhere (we cannot tell)."""
    if info.host != socket.gethostname():
        return None
    if info.pid == os.getpid():
        return True
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def describe_lock(info: LockInfo) -> str:
    age = info.age_seconds()
    # A lock in a shared bucket was written by someone else: nothing in it may drive the terminal.
    since = f"since {one_line(info.created)}" + (f" ({format_duration(age)} ago)" if age is not None else "")
    who = f", user {one_line(info.user)}" if info.user else ""
    tool = f", tuning-reconciler {one_line(info.version)}" if info.version else ""
    return (f'lock ID {one_line(info.id)}, pid {info.pid} on host {one_line(info.host)}{who}, '
            f'operation "{one_line(info.operation)}"{tool}, {since}')


def held_lock(path: str | os.PathLike[str], lock_id: str) -> LockInfo:
    """The lock on state file `path`, which must be the one with ID `lock_id`."""
    info = read_lock(path)
    if info is None:
        raise StateError(f"state file {os.fspath(path)} is not locked")
    if info.id != lock_id:
        raise StateError(
            f"lock ID {lock_id} does not match the lock on state file {os.fspath(path)} "
            f"({describe_lock(info)})"
        )
    return info


def force_unlock(path: str | os.PathLike[str], lock_id: str) -> None:
    """Remove the lock on state file `path` if (and only if) its ID is `lock_id`."""
    held_lock(path, lock_id)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock_path_for(path))
    fsync_dir(lock_path_for(path).parent)


def try_create_lock(path: str | os.PathLike[str], info: LockInfo) -> bool:
    """Take the lock on state file `path` for `info`; False when someone holds it."""
    lock_path = lock_path_for(path)
    data = json.dumps(dataclasses.asdict(info), indent=2).encode() + b"\n"
    # Write the record fully, then link it into place: link(2) fails if the name exists,
    # so the lock file appears atomically with its content (no half-written lock to read).
    fd, tmp = tempfile.mkstemp(dir=lock_path.parent, prefix=f".{lock_path.name}.",
                               suffix=".lock-tmp")  # not matched by the store's orphan clean-up
    try:
        try:
            os.fchmod(fd, PRIVATE_MODE)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, lock_path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            return _try_create_lock_excl(lock_path, data)  # filesystem without hard links
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(lock_path.parent)
    return True


def _try_create_lock_excl(lock_path: Path, data: bytes) -> bool:
    try:
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        return False
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def release_lock(path: str | os.PathLike[str], info: LockInfo) -> None:
    """Remove our own lock; a lock force-unlocked and taken by someone else stays."""
    try:
        current = read_lock(path)
    except StateError:
        current = None
    if current is not None and current.id == info.id:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path_for(path))


def locked_message(path: str | os.PathLike[str], holder: LockInfo, timeout: float) -> str:
    """Why the lock could not be had, and how to clear it if its holder is gone."""
    shown = os.fspath(path)
    state_opt = "" if os.path.normpath(shown) == os.path.normpath(DEFAULT_STATE_PATH) else f" --state {shown}"
    unlock = f"reconciler force-unlock {holder.id}{state_opt}"
    waited = f"timed out after {timeout:g}s waiting for the state lock: " if timeout > 0 else ""
    alive = lock_holder_alive(holder)
    if alive is False:
        return (
            f"{waited}state file {shown} is locked by a process that is no longer running "
            f"({describe_lock(holder)}). If no reconciler is running, remove the stale lock "
            f"with: {unlock}"
        )
    hint = "Wait for it with --lock-timeout SECONDS, or if" if timeout <= 0 else "If"
    return (
        f"{waited}state file {shown} is locked by another reconciler "
        f"({describe_lock(holder)}). {hint} that process is gone, run: {unlock}"
    )
