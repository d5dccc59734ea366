"""Local files: the one atomic write that state, saved plans and the emulator's data file
share (a crash leaves the old content or the new, never a mix), and the one way to read a
file the user named, which refuses anything but a regular file (a FIFO would block the read
for ever, a device never end) and anything over a size limit."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from reconciler.redact import redact_bytes

PRIVATE_MODE = 0o600  # state, plans and locks may name projects and jobs: owner only
# Far above any state file, saved plan or credentials file (50,000 jobs of state is ~25 MB).
MAX_READ_BYTES = 512 * 1024 * 1024

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class NotRegularFileError(OSError):
    """A path that exists but is not a regular file (after following symbolic links)."""


def kind_of_file(mode: int) -> str:
    """'a FIFO (named pipe)', 'a directory', ... for an `st_mode` that is not a regular file."""
    return next((word for test, word in _KINDS if test(mode)), "not a regular file")


def check_regular(path: str | os.PathLike[str]) -> None:
    """Raise NotRegularFileError if `path` exists and is not a regular file (FileNotFoundError
    passes through, as do other OSErrors such as a dangling symbolic link)."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(errno.EINVAL, f"not a regular file: it is {kind_of_file(mode)}", os.fspath(path))


def read_regular(path: str | os.PathLike[str], limit: int = MAX_READ_BYTES, head: bool = False) -> bytes:
    """The bytes of the regular file `path`. Opened without blocking (a FIFO with no writer
    would hang `open()` itself), checked on the open descriptor (no race with a rename), and
    refused past `limit` bytes (with `head`: its first `limit` bytes). Errors are OSErrors
    whose `strerror` says what is wrong."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(errno.EINVAL, f"not a regular file: it is {kind_of_file(mode)}",
                                      os.fspath(path))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if head:
        return data[:limit]
    if len(data) > limit:
        size = f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit:,} bytes"
        raise OSError(errno.EFBIG, f"larger than {size}; refused", os.fspath(path))
    return data


def resolve_link(path: str | os.PathLike[str]) -> str:
    """`path`, or if it is a symbolic link, where the link leads: files are written through
    links (replacing the link by a regular file would leave its target stale)."""
    text = os.fspath(path)
    return os.path.realpath(text) if os.path.islink(text) else text


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data`, with this process's credentials redacted (whatever a server sent)."""
    view = memoryview(redact_bytes(data))
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = PRIVATE_MODE, durable: bool = True) -> None:
    """Write `data` to `path` (temp file beside it, fsync, rename, fsync of the directory).
    A symbolic link at `path` is written through: its target gets the new content.
    `durable=False` skips both fsyncs: readers still see the old or the new content whole, but
    a crash of the machine may leave either (for caches, where a lost write is only a miss)."""
    target = Path(resolve_link(path))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(target.parent)
