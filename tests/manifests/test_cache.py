"""The manifest cache: an unchanged file is not parsed again, and any change is seen."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifests import loader
from reconciler.manifests.cache import ManifestCache, default_dir
from reconciler.model import Defaults

DOC = """\
apiVersion: tuning.reconciler/v1
kind: TuningJob
metadata:
  name: job-{n}
  project: my-project
  location: us-central1
spec:
  baseModel: gemini-2.5-flash
  supervisedTuningSpec:
    trainingDatasetUri: gs://bucket/{n}.jsonl
    hyperParameters: {{epochCount: "3"}}
"""


def _write(directory: Path, files: int = 3) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(files):
        path = directory / f"m{f}.yaml"
        path.write_text("---\n".join(DOC.format(n=f * 10 + i) for i in range(2)))
        paths.append(path)
    return paths


def _summary(result: loader.CheckResult) -> tuple:
    return (result.documents, [(j.key, j.project, j.location, j.spec, j.lifecycle, j.source) for j in result.jobs],
            [str(p) for p in result.problems])


def test_an_unchanged_file_comes_from_the_cache(tmp_path: Path, monkeypatch) -> None:
    _write(tmp_path / "m")
    first = ManifestCache()
    cold = loader.check([str(tmp_path / "m")], cache=first)
    assert (first.hits, first.misses) == (0, 3)
    parsed: list[str] = []
    real = loader.check_file
    monkeypatch.setattr(loader, "check_file", lambda path, defaults: parsed.append(path) or real(path, defaults))
    warm_cache = ManifestCache()
    warm = loader.check([str(tmp_path / "m")], cache=warm_cache)
    assert (warm_cache.hits, warm_cache.misses, parsed) == (3, 0, [])
    assert _summary(warm) == _summary(cold)


def test_the_cache_files_are_private_and_live_under_xdg_cache_home(tmp_path: Path) -> None:
    paths = _write(tmp_path / "m")
    loader.check([str(tmp_path / "m")], cache=ManifestCache())
    directory = default_dir()
    assert str(directory).startswith(os.environ["XDG_CACHE_HOME"])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    entries = sorted(directory.iterdir())
    assert entries == sorted(ManifestCache().path_of(str(p)) for p in paths)
    assert {stat.S_IMODE(e.stat().st_mode) for e in entries} == {0o600}


def test_a_run_reads_only_the_entries_of_its_own_files(tmp_path: Path) -> None:
    _write(tmp_path / "a", files=2)
    _write(tmp_path / "b", files=2)
    loader.check([str(tmp_path / "a")], cache=ManifestCache())
    loader.check([str(tmp_path / "b")], cache=ManifestCache())
    read: list[str] = []

    class Spied(ManifestCache):
        def _read(self, path: str):
            read.append(path)
            return super()._read(path)

    cache = Spied()
    loader.check([str(tmp_path / "a")], cache=cache)
    assert sorted(read) == [str(tmp_path / "a" / f"m{i}.yaml") for i in range(2)]
    assert len(list(default_dir().iterdir())) == 4 and (cache.hits, cache.misses) == (2, 0)


def test_entries_nobody_wrote_for_a_month_are_pruned(tmp_path: Path) -> None:
    old, kept = _write(tmp_path / "m", files=2)
    loader.check([str(tmp_path / "m")], cache=ManifestCache())
    stale = ManifestCache().path_of(str(old))
    month_ago = stale.stat().st_mtime - 31 * 86_400
    os.utime(stale, (month_ago, month_ago))
    kept.write_text(kept.read_text() + "\n")  # a change: this run writes, and prunes
    loader.check([str(tmp_path / "m" / kept.name)], cache=ManifestCache())
    assert not stale.exists() and ManifestCache().path_of(str(kept)).exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_editing_any_byte_is_always_seen(tmp_path: Path, position: int, byte: int) -> None:
    (path, *_) = _write(tmp_path / "m", files=1)
    loader.check([str(path)], cache=ManifestCache())  # cached as it was
    data = bytearray(path.read_bytes())
    data[position % len(data)] = byte
    path.write_bytes(bytes(data))
    assert _summary(loader.check([str(path)], cache=ManifestCache())) == _summary(loader.check([str(path)]))


def test_other_defaults_are_a_miss(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "m.yaml").write_text(DOC.format(n=1).replace("  project: my-project\n", ""))
    loader.check([str(directory)], Defaults("project-a", None), cache=ManifestCache())
    again = ManifestCache()
    (job,) = loader.check([str(directory)], Defaults("project-b", None), cache=again).jobs
    assert job.project == "project-b" and again.misses == 1


def test_a_corrupt_or_foreign_cache_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    (first, *_) = _write(tmp_path / "m", files=1)
    expected = _summary(loader.check([str(tmp_path / "m")]))
    loader.check([str(tmp_path / "m")], cache=ManifestCache())
    path = ManifestCache().path_of(str(first))
    good = json.loads(path.read_bytes())
    for junk in (b"", b"{", b"[" * 100_000, b"\xff\xfe", json.dumps({**good, "fingerprint": "other"}).encode(),
                 json.dumps({**good, "format": 1}).encode(), json.dumps({**good, "path": "/elsewhere"}).encode(),
                 json.dumps({**good, "entry": {**good["entry"], "key": "x"}}).encode()):
        path.write_bytes(junk)
        cache = ManifestCache()
        assert _summary(loader.check([str(tmp_path / "m")], cache=cache)) == expected
        assert cache.hits == 0
        assert ManifestCache().get(str(first), first.read_text(), Defaults()) is not None  # rebuilt


def test_a_damaged_entry_is_checked_again(tmp_path: Path) -> None:
    (path, *_) = _write(tmp_path / "m", files=1)
    loader.check([str(path)], cache=ManifestCache())
    entry = ManifestCache().path_of(str(path))
    data = json.loads(entry.read_text())
    data["entry"]["jobs"] = [{"nonsense": 1}]
    entry.write_text(json.dumps(data))
    cache = ManifestCache()
    assert _summary(loader.check([str(path)], cache=cache)) == _summary(loader.check([str(path)]))
    assert cache.misses == 1


def test_no_cache_flag_neither_reads_nor_writes(tmp_path: Path) -> None:
    from reconciler.cli import main

    _write(tmp_path / "m")
    assert main(["validate", str(tmp_path / "m"), "--no-cache"]) == 0
    assert not default_dir().exists()
    assert main(["validate", str(tmp_path / "m")]) == 0
    assert len(list(default_dir().iterdir())) == 3


def test_a_run_with_every_file_unchanged_writes_no_cache(tmp_path: Path) -> None:
    _write(tmp_path / "m")
    loader.check([str(tmp_path / "m")], cache=ManifestCache())
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in default_dir().iterdir()}
    loader.check([str(tmp_path / "m")], cache=ManifestCache())
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in default_dir().iterdir()}
    assert before == after and len(after) == 3
