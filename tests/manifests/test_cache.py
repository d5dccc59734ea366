"""The manifest cache: an unchanged file is not parsed again, and any change is seen."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifests import loader
from reconciler.manifests.cache import ManifestCache, default_path
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


def test_the_cache_file_is_private_and_lives_under_xdg_cache_home(tmp_path: Path) -> None:
    _write(tmp_path / "m")
    loader.check([str(tmp_path / "m")], cache=ManifestCache())
    path = default_path()
    assert str(path).startswith(os.environ["XDG_CACHE_HOME"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


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
    _write(tmp_path / "m")
    expected = _summary(loader.check([str(tmp_path / "m")]))
    path = default_path()
    path.parent.mkdir(parents=True)
    for junk in (b"", b"{", b"[" * 100_000, b'{"format": 1, "fingerprint": "other", "entries": {}}',
                 json.dumps({"format": 1, "fingerprint": ManifestCache()._fingerprint,
                             "entries": {str(tmp_path / "m" / "m0.yaml"): {"key": "x"}}}).encode()):
        path.write_bytes(junk)
        cache = ManifestCache()
        assert _summary(loader.check([str(tmp_path / "m")], cache=cache)) == expected
        assert cache.hits == 0
        assert ManifestCache().get(str(tmp_path / "m" / "m0.yaml"), (tmp_path / "m" / "m0.yaml").read_text(),
                                   Defaults()) is not None  # rebuilt


def test_a_damaged_entry_is_checked_again(tmp_path: Path) -> None:
    (path, *_) = _write(tmp_path / "m", files=1)
    loader.check([str(path)], cache=ManifestCache())
    data = json.loads(default_path().read_text())
    data["entries"][str(path)]["jobs"] = [{"nonsense": 1}]
    default_path().write_text(json.dumps(data))
    cache = ManifestCache()
    assert _summary(loader.check([str(path)], cache=cache)) == _summary(loader.check([str(path)]))
    assert cache.misses == 1


def test_no_cache_flag_neither_reads_nor_writes(tmp_path: Path) -> None:
    from reconciler.cli import main

    _write(tmp_path / "m")
    assert main(["validate", str(tmp_path / "m"), "--no-cache"]) == 0
    assert not default_path().exists()
    assert main(["validate", str(tmp_path / "m")]) == 0
    assert default_path().exists()


def test_a_run_with_every_file_unchanged_writes_no_cache(tmp_path: Path) -> None:
    _write(tmp_path / "m")
    loader.check([str(tmp_path / "m")], cache=ManifestCache())
    before = default_path().stat()
    loader.check([str(tmp_path / "m")], cache=ManifestCache())
    after = default_path().stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
