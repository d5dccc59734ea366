"""A cache of parsed and validated manifest files, so an unchanged file costs a read and a hash.

An entry is keyed by the file's text, the project/location defaults it was checked with, and a
fingerprint of everything that decides the result: the tool version, the generated manifest
schema and the source of the modules that read and check manifests. Any change to one of
them is a miss. The cache is one JSON file (never pickle: it is read back as data only) in
`$XDG_CACHE_HOME/tuning-reconciler/` (default `~/.cache`), written atomically with mode 0600;
one that cannot be read, is corrupt, or comes from another fingerprint is ignored and rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.files import atomic_write
from reconciler.manifests.problems import FileCheck, Problem
from reconciler.model import Defaults, DesiredJob, Lifecycle, SourcePos

log = logging.getLogger(__name__)

FORMAT = 1
CACHE_ENV = "XDG_CACHE_HOME"
FILE_NAME = "manifests.json"
MAX_ENTRIES = 5_000  # files remembered; past that, those not checked in the run that writes go first
# The modules whose code decides what a manifest file yields.
_SOURCES = ("yaml_reader.py", "validation.py", "loader.py", "problems.py", "cache.py")
_GRAPH_SOURCES = ("references.py", "graph.py")  # reconciler/graph/: references are checked while loading


def default_path() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tuning-reconciler" / FILE_NAME


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

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self._fingerprint = fingerprint()
        self._entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._used: set[str] = set()  # entries read this run: kept first when the cache is trimmed
        self.hits = self.misses = 0
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                data = json.loads(fh.read())
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as exc:
            log.info("ignoring the manifest cache %s: %s", self.path, exc)
            return
        if (isinstance(data, dict) and data.get("format") == FORMAT and data.get("fingerprint") == self._fingerprint
                and isinstance(data.get("entries"), dict)):
            self._entries = data["entries"]

    def get(self, path: str, text: str, defaults: Defaults) -> FileCheck | None:
        """The file's findings as checked before, or None."""
        entry = self._entries.get(path)
        if not isinstance(entry, dict) or entry.get("key") != entry_key(path, text, defaults):
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
        self._used.add(path)
        return found

    def put(self, path: str, text: str, defaults: Defaults, found: FileCheck) -> None:
        self._entries.pop(path, None)
        self._entries[path] = {"key": entry_key(path, text, defaults), "documents": found.documents,
                               "jobs": [_job_to_json(j) for j in found.jobs],
                               "problems": [[p.file, p.line, p.column, p.path, p.message] for p in found.problems],
                               "positions": [[[address, list(where)], list(pos)]
                                             for (address, where), pos in found.positions.items()],
                               "failed_keys": sorted(found.failed_keys)}
        self._dirty = True

    def save(self) -> None:
        """Write the cache if anything changed; a cache that cannot be written is skipped."""
        if not self._dirty:
            return
        # Unchanged files cost no write (a cache of 50,000 jobs is ~30 MB of JSON); when one is
        # written, the entries not used this run are the first to go past MAX_ENTRIES.
        unused = [p for p in self._entries if p not in self._used]
        for path in unused[:max(0, len(self._entries) - MAX_ENTRIES)]:
            del self._entries[path]
        data = json.dumps({"format": FORMAT, "fingerprint": self._fingerprint, "entries": self._entries},
                          ensure_ascii=False, separators=(",", ":"), allow_nan=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path, data.encode("utf-8", "surrogatepass"))
        except OSError as exc:
            log.info("could not write the manifest cache %s: %s", self.path, exc)
            return
        self._dirty = False
