"""Reading files the user named: regular files only, never blocking, bounded; writes follow links."""

from __future__ import annotations

import os
import socket

import pytest

from reconciler.files import NotRegularFileError, atomic_write, read_regular, resolve_link


def test_reads_a_regular_file_and_through_a_link(tmp_path):
    (tmp_path / "f").write_bytes(b"data")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    assert read_regular(tmp_path / "f") == read_regular(tmp_path / "l") == b"data"
    assert read_regular(tmp_path / "f", 2, head=True) == b"da"


@pytest.mark.parametrize("kind", ["fifo", "directory", "socket", "device"])
def test_refuses_what_is_not_a_regular_file_without_blocking(tmp_path, kind):
    path = tmp_path / "x"
    if kind == "fifo":
        os.mkfifo(path)  # with no writer, a plain open() would block for ever
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    else:
        path = "/dev/zero"  # would never end
    if kind == "socket":
        with pytest.raises(OSError):  # (a socket cannot even be opened)
            read_regular(path)
        return
    with pytest.raises(NotRegularFileError, match="not a regular file"):
        read_regular(path)


def test_refuses_a_file_over_the_limit(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 11)
    with pytest.raises(OSError, match="larger than 10 bytes"):
        read_regular(tmp_path / "f", 10)


def test_missing_and_dangling_are_file_not_found(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for path in (tmp_path / "missing", tmp_path / "dangling"):
        with pytest.raises(FileNotFoundError):
            read_regular(path)


def test_atomic_write_writes_through_a_link(tmp_path):
    (tmp_path / "target").write_bytes(b"old")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    atomic_write(tmp_path / "link", b"new")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "target").read_bytes() == b"new"
    assert resolve_link(tmp_path / "target") == str(tmp_path / "target")
