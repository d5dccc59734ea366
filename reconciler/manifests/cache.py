"""A cache of parsed and validated manifest files, so an unchanged file costs a read and a hash.

An entry is keyed by the file's text, the project/location defaults it was checked with, and a
fingerprint of everything that decides the result: the tool version, the generated manifest
schema and the source of the modules that read and check manifests. Any change to one of
them is a miss. The cache is one small JSON file per manifest file (never pickle: it is read
back as data only) in `$XDG_CACHE_HOME/tuning-reconciler/manifests/` (default `~/.cache`), named
by a hash of the manifest's path, so a run reads only the entries of the files it checks
(one file for everything grew with every manifest tree ever checked, and cost its whole size
on each run). Each is written atomically with mode 0600; one that cannot be read, is corrupt,
or comes from another fingerprint is ignored and rebuilt. Entries not written for
PRUNE_AFTER_DAYS are removed by the next run that writes one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.files import atomic_write
from reconciler.manifests.problems import FileCheck, Problem
from reconciler.model import Defaults, DesiredJob, Lifecycle, SourcePos

log = logging.getLogger(__name__)

FORMAT = 2
CACHE_ENV = "XDG_CACHE_HOME"
DIR_NAME = "manifests"
PRUNE_AFTER_DAYS = 30
# The modules whose code decides what a manifest file yields.
_SOURCES = ("yaml_reader.py", "validation.py", "loader.py", "problems.py", "cache.py")
_GRAPH_SOURCES = ("references.py", "graph.py")  # reconciler/graph/: references are checked while loading


def default_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tuning-reconciler" / DIR_NAME


def entry_file(directory: Path, path: str) -> Path:
    """Where the entry of manifest `path` is kept."""
    return directory / (hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:40] + ".json")


def fingerprint() -> str:
    """What every entry was computed with; a cache of another fingerprint is not used."""
    from reconciler.apischema.discovery import schemas_dir
    from reconciler.apischema.generated import MANIFEST_SCHEMA_FILE

    digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0".encode())
    here = Path(__file__).resolve().parent
    for path in [schemas_dir() / MANIFEST_SCHEMA_FILE, here.parent / "model.py",
                 here.parent / "apischema" / "normalize.py",
                 *(here / name for name in _SOURCES), *(here.parent / "graph" / name for name in _GRAPH_SOURCES)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def entry_key(path: str, text: str, defaults: Defaults) -> str:
    digest = hashlib.sha256()
    for part in (path, defaults.project or "", defaults.location or ""):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _job_to_json(job: DesiredJob) -> dict[str, Any]:
    return asdict(job)


def _job_from_json(data: dict[str, Any]) -> DesiredJob:
    # JSON has no tuples: the lifecycle's tuple fields come back as lists.
    lifecycle = {k: tuple(v) if isinstance(v, list) else v for k, v in data["lifecycle"].items()}
    return _built(DesiredJob, {**data, "lifecycle": _built(Lifecycle, lifecycle),
                               "source": _built(SourcePos, data["source"])})


def _built(cls: type, values: dict[str, Any]) -> Any:
    """An instance of the frozen dataclass `cls` with exactly these field values, without
    running __init__ (a tenth of a second per 10,000 jobs); unknown or missing fields are a
    damaged entry."""
    if values.keys() != _field_names(cls):
        raise KeyError(f"{cls.__name__} fields differ")
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


class ManifestCache:
    """Entries by manifest path. `get` and `put` in the checking process; `save` once."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_dir()
        self._fingerprint = fingerprint()
        self._pending: dict[str, dict[str, Any]] = {}  # entries put this run, written by save()
        self.hits = self.misses = 0

    def path_of(self, path: str) -> Path:
        return entry_file(self.directory, path)

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            with open(self.path_of(path), "rb") as fh:
                data = json.loads(fh.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            log.info("ignoring the manifest cache entry %s: %s", self.path_of(path), exc)
            return None
        if (isinstance(data, dict) and data.get("format") == FORMAT and data.get("fingerprint") == self._fingerprint
                and data.get("path") == path and isinstance(data.get("entry"), dict)):
            return data["entry"]
        return None

    def get(self, path: str, text: str, defaults: Defaults) -> FileCheck | None:
        """The file's findings as checked before, or None."""
        entry = self._read(path)
        if entry is None or entry.get("key") != entry_key(path, text, defaults):
            self.misses += 1
            return None
        try:
            found = FileCheck(int(entry["documents"]), [_job_from_json(j) for j in entry["jobs"]],
                              [Problem(*p) for p in entry["problems"]],
                              {(address, tuple(where)): (line, column)
                               for (address, where), (line, column) in entry["positions"]},
                              set(entry["failed_keys"]))
        except (KeyError, TypeError, ValueError):  # a damaged entry: check the file again
            self.misses += 1
            return None
        self.hits += 1
        return found

    def put(self, path: str, text: str, defaults: Defaults, found: FileCheck) -> None:
        self._pending[path] = {"key": entry_key(path, text, defaults), "documents": found.documents,
                               "jobs": [_job_to_json(j) for j in found.jobs],
                               "problems": [[p.file, p.line, p.column, p.path, p.message] for p in found.problems],
                               "positions": [[[address, list(where)], list(pos)]
                                             for (address, where), pos in found.positions.items()],
                               "failed_keys": sorted(found.failed_keys)}

    def save(self) -> None:
        """Write the entries put this run (none: nothing is written); a cache that cannot be
        written is skipped, the run goes on."""
        if not self._pending:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            for path, entry in self._pending.items():
                data = json.dumps({"format": FORMAT, "fingerprint": self._fingerprint, "path": path, "entry": entry},
                                  ensure_ascii=False, separators=(",", ":"), allow_nan=True)
                # No fsync: a write lost in a crash is a miss next time, and 100 fsyncs cost a first run ~1 s.
                atomic_write(self.path_of(path), data.encode("utf-8", "surrogatepass"), durable=False)
        except OSError as exc:
            log.info("could not write the manifest cache in %s: %s", self.directory, exc)
            return
        self._pending.clear()
        self._prune()

    def _prune(self) -> None:
        """Remove entries nobody wrote for PRUNE_AFTER_DAYS (files renamed or deleted long ago)."""
        cutoff = time.time() - PRUNE_AFTER_DAYS * 86_400
        try:
            with os.scandir(self.directory) as listing:
                for item in listing:
                    if item.name.endswith((".json", ".tmp")) and item.is_file(follow_symlinks=False) \
                            and item.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(item.path)
        except OSError as exc:
            log.info("could not prune the manifest cache in %s: %s", self.directory, exc)
