"""The journal objects beside a state in Cloud Storage, and the fence that stops a displaced
writer (the design is in `gcs.py`).

`PATH.json.journal/G-L-N` holds batch N of the changes the holder of lock L recorded on top of
generation G of the state object. Each is created once, with `ifGenerationMatch=0`. A fence is
an empty journal object put at the next name of a holder whose lock is being removed: that
holder's next batch then gets 412 and it stops writing.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import re
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

from reconciler.errors import StateError
from reconciler.state.gcs_client import call_options, storage_errors
from reconciler.state.model import StateEntry, entry_from_dict, entry_to_dict
from reconciler.state.url import GcsObject

log = logging.getLogger(__name__)

JOURNAL_INFIX = ".journal/"
JOURNAL_FORMAT = 1
WRITER_KEY = "reconciler-writer"  # a token per write: tells our own write from another's after a 412
FENCE_KEY = "reconciler-fence"
# A fence must outlive the process it stops (an apply --wait can run for hours); after this
# it is deleted like any journal object nobody needs.
FENCE_KEEP_SECONDS = 7 * 24 * 3600
GZIP_LEVEL = 6
_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_FENCE_ATTEMPTS = 20

Changes = list[tuple[str, StateEntry | None]]


class Fenced(Exception):
    """The journal name was taken by someone else: our lock was removed (force-unlock)."""


@dataclass(frozen=True, order=True)
class JournalName:
    base: int  # the state generation its changes apply to (0: no state object yet)
    lock: int  # the lock generation of the run that wrote it
    seq: int  # 1, 2, ... per (base, lock)

    @classmethod
    def parse(cls, tail: str) -> JournalName | None:
        m = _NAME.match(tail)
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None

    def object_name(self, obj: GcsObject) -> str:
        return f"{obj.name}{JOURNAL_INFIX}{self.base}-{self.lock}-{self.seq:08d}"

    def url(self, obj: GcsObject) -> str:
        return f"gs://{obj.bucket}/{self.object_name(obj)}"


def encode(data: Any) -> bytes:
    """Compact JSON (the C encoder; indenting takes Python's slow path), gzipped."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=GZIP_LEVEL)


def decode(data: bytes, what: str) -> str:
    """Stored bytes -> text, gunzipped when gzip (downloads are raw: no transcoding guesswork)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise StateError(f"{what}: damaged gzip data ({exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StateError(f"{what}: not UTF-8 text") from None


@dataclass(frozen=True, order=True)
class Listed:
    name: JournalName
    fence: bool = False
    age_seconds: float = 0.0

    @property
    def disposable(self) -> bool:
        """Deletable once its generation is folded: a fence only when it is old."""
        return not self.fence or self.age_seconds > FENCE_KEEP_SECONDS


def list_journals(bucket: Any, obj: GcsObject) -> list[Listed]:
    from google.api_core.exceptions import NotFound

    prefix = f"{obj.name}{JOURNAL_INFIX}"
    try:
        with storage_errors(f"cannot list the journal of {obj.url}"):
            blobs = list(bucket.client.list_blobs(obj.bucket, prefix=prefix, **call_options()))
    except NotFound:
        raise StateError(f"state {obj.url}: bucket {obj.bucket} does not exist") from None
    now = dt.datetime.now(dt.timezone.utc)
    found = []
    for blob in blobs:
        parsed = JournalName.parse(blob.name[len(prefix):])
        if parsed is None:
            log.warning("ignoring gs://%s/%s: not a journal object of ours", obj.bucket, blob.name)
            continue
        created = blob.time_created
        age = (now - created).total_seconds() if created is not None else 0.0
        found.append(Listed(parsed, (blob.metadata or {}).get(FENCE_KEY) == "1", age))
    return sorted(found)


def write_journal(bucket: Any, obj: GcsObject, journal: JournalName, lineage: str | None, changes: Changes,
                  fence: bool = False) -> None:
    """Create journal object `journal`; Fenced if someone else holds that name."""
    from google.api_core.exceptions import NotFound, PreconditionFailed

    payload = {"journal": JOURNAL_FORMAT, "lineage": lineage, "base_generation": journal.base,
               "lock": journal.lock, "seq": journal.seq, "fence": fence,
               "changes": [{"address": a, "entry": entry_to_dict(e) if e is not None else None} for a, e in changes]}
    token = uuid.uuid4().hex
    blob = bucket.blob(journal.object_name(obj))
    blob.content_encoding = "gzip"
    blob.metadata = {WRITER_KEY: token, **({FENCE_KEY: "1"} if fence else {})}
    what = f"cannot write the journal of {obj.url}"
    try:
        with storage_errors(what):
            blob.upload_from_string(encode(payload), content_type="application/json", if_generation_match=0,
                                    **call_options())
    except PreconditionFailed:
        with storage_errors(what):
            current = bucket.get_blob(journal.object_name(obj), **call_options())
        if current is None or (current.metadata or {}).get(WRITER_KEY) != token:
            raise Fenced() from None
        # ours: the first answer was lost and the client's retry found the object there
    except NotFound:
        raise StateError(f"{what}: bucket {obj.bucket} does not exist") from None


def read_journal(bucket: Any, obj: GcsObject, journal: JournalName) -> tuple[str | None, Changes]:
    """(lineage, changes) of one journal object (a fence: no lineage, no changes). A journal
    deleted since it was listed raises NotFound (a commit folded it meanwhile)."""
    where = f"state journal {journal.url(obj)}"
    with storage_errors(f"cannot read {where}"):
        raw = bucket.blob(journal.object_name(obj)).download_as_bytes(raw_download=True, **call_options())
    try:
        data = json.loads(decode(raw, where))
    except ValueError as exc:
        raise StateError(f"{where}: not valid JSON ({exc})") from None
    if not (isinstance(data, dict) and data.get("journal") == JOURNAL_FORMAT
            and isinstance(data.get("lineage"), (str, type(None))) and isinstance(data.get("changes"), list)):
        raise StateError(f"{where}: not a journal (format {JOURNAL_FORMAT})")
    items: Changes = []
    for i, rec in enumerate(data["changes"]):
        if not isinstance(rec, dict) or not isinstance(rec.get("address"), str) or "entry" not in rec:
            raise StateError(f"{where}: changes[{i}]: expected {{\"address\": ..., \"entry\": ...}}")
        entry = None if rec["entry"] is None else entry_from_dict(rec["entry"], f"{where}: changes[{i}]")
        if entry is not None and entry.address != rec["address"]:
            raise StateError(f"{where}: changes[{i}]: address {rec['address']} does not match its entry")
        items.append((rec["address"], entry))
    return data["lineage"], items


def state_generation(bucket: Any, obj: GcsObject) -> int:
    with storage_errors(f"cannot read state {obj.url}"):
        blob = bucket.get_blob(obj.name, **call_options())
    return int(blob.generation) if blob is not None else 0


def fence_off(bucket: Any, obj: GcsObject, lock_generation: int) -> None:
    """Make sure the holder of lock `lock_generation` can write nothing more: put a fence at its
    next journal name on the current state generation (again if it wrote meanwhile, and again
    if it rewrote the state object meanwhile)."""
    for _ in range(_FENCE_ATTEMPTS):
        generation = state_generation(bucket, obj)
        mine = [j.name.seq for j in list_journals(bucket, obj)
                if j.name.base == generation and j.name.lock == lock_generation]
        try:
            write_journal(bucket, obj, JournalName(generation, lock_generation, max(mine, default=0) + 1),
                          None, [], fence=True)
        except Fenced:
            continue  # it wrote that batch first: fence the next one
        if state_generation(bucket, obj) == generation:
            return  # its next batch, and so any state write of it (which follows a batch), is refused
    raise StateError(f"cannot fence off the holder of lock {lock_generation} on {obj.url}: it keeps writing. "
                     "Stop that process first")
