from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.emulator import store


def test_write_atomic_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "data.json"
    store.write_atomic(target, b'{"version": 1}')
    store.write_atomic(target, b'{"version": 1, "jobs": []}')
    assert json.loads(target.read_text()) == {"version": 1, "jobs": []}
    assert os.listdir(target.parent) == ["data.json"]


def test_load_missing_is_none_and_bad_files_are_value_errors(tmp_path: Path) -> None:
    assert store.load(tmp_path / "absent.json") is None
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="cannot read emulator data"):
        store.load(broken)
    other = tmp_path / "other.json"
    other.write_text('{"version": 7}')
    with pytest.raises(ValueError, match="not an emulator data file"):
        store.load(other)


def test_persister_coalesces_writes_and_flushes_on_close(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    state = {"version": 1, "n": 0}
    persister = store.Persister(target, lambda: dict(state))
    for n in range(1, 50):
        state["n"] = n
        persister.mark_dirty()
    persister.close()
    assert json.loads(target.read_text()) == {"version": 1, "n": 49}
