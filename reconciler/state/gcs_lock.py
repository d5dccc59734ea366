"""The lock of a state in Cloud Storage: an object `PATH.json.lock` beside it.

- Taken by creating the object with `ifGenerationMatch=0`: of any number of racing creates
  exactly one succeeds, the others get 412. Its generation is the lock ID.
- It says who holds it (pid, host, user, operation, tool version, when) twice: as JSON content
  for `gcloud storage cat`, and as object metadata, so that one metadata read tells everything.
- Released by deleting it with `ifGenerationMatch=<its generation>`: a holder whose lock was
  force-removed and taken by someone else can never remove the newer lock.
- A create whose answer was lost is retried by the client and comes back 412 although it won:
  the owner token in its metadata tells (re-read after every 412).
- Like the local lock it is not removed when its holder dies: `force-unlock ID` removes it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from typing import Any

from reconciler.errors import StateError
from reconciler.state.gcs_client import call_options, storage_errors
from reconciler.state.lock import LockInfo, describe_lock, locked_message

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
OWNER_KEY = "reconciler-owner"
_FIELDS = ("pid", "host", "user", "operation", "created", "version")
_FIRST_DELAY, _MAX_DELAY = 0.1, 1.0


def _record(info: LockInfo) -> tuple[bytes, dict[str, str]]:
    body = {k: v for k, v in dataclasses.asdict(info).items() if k != "id"}
    metadata = {OWNER_KEY: info.id, **{k: str(body[k]) for k in _FIELDS}}
    return json.dumps({"owner": info.id, **body}, indent=2).encode() + b"\n", metadata


def holder_of(blob: Any) -> LockInfo:
    """The LockInfo of a lock object (its generation is the ID)."""
    meta = blob.metadata or {}
    try:
        pid = int(meta.get("pid", "0"))
    except ValueError:
        pid = 0
    return LockInfo(id=str(blob.generation), pid=pid, host=meta.get("host", "?"),
                    operation=meta.get("operation", "?"), created=meta.get("created", ""),
                    user=meta.get("user", ""), version=meta.get("version", ""))


def read_holder(bucket: Any, name: str, url: str) -> LockInfo | None:
    with storage_errors(f"cannot read the lock of {url}"):
        blob = bucket.get_blob(name, **call_options())
    return holder_of(blob) if blob is not None else None


def try_acquire(bucket: Any, name: str, url: str, info: LockInfo) -> LockInfo | None:
    """Create the lock object for `info` (its id is the owner token); None when held."""
    from google.api_core.exceptions import NotFound, PreconditionFailed

    body, metadata = _record(info)
    blob = bucket.blob(name)
    blob.metadata = metadata
    try:
        with storage_errors(f"cannot lock {url}"):
            blob.upload_from_string(body, content_type="application/json", if_generation_match=0,
                                    **call_options())
    except PreconditionFailed:
        with storage_errors(f"cannot lock {url}"):
            current = bucket.get_blob(name, **call_options())
        if current is not None and (current.metadata or {}).get(OWNER_KEY) == info.id:
            return dataclasses.replace(info, id=str(current.generation))  # ours: the answer was lost
        return None
    except NotFound:
        raise StateError(f"cannot lock {url}: bucket {bucket.name} does not exist (create it first: see "
                         "README, shared state)") from None
    return dataclasses.replace(info, id=str(blob.generation))


def acquire(bucket: Any, name: str, url: str, operation: str, timeout: float) -> LockInfo:
    """Take the lock, retrying with backoff for up to `timeout` seconds; a StateError naming
    the holder (and how to remove a stale lock) when it cannot be had."""
    info = LockInfo.new(operation)
    deadline = time.monotonic() + max(0.0, timeout)
    delay = _FIRST_DELAY
    released_meanwhile = 0
    while True:
        got = try_acquire(bucket, name, url, info)
        if got is not None:
            return got
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            holder = read_holder(bucket, name, url)
            if holder is None and released_meanwhile < 3:
                released_meanwhile += 1
                continue  # released between our attempt and the read: try again at once
            if holder is None:
                raise StateError(f"cannot lock {url}: the lock keeps changing hands; try again")
            raise StateError(locked_message(url, holder, timeout))
        time.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))  # jitter: racing waiters spread out
        delay = min(_MAX_DELAY, delay * 1.6)


def release(bucket: Any, name: str, url: str, info: LockInfo) -> None:
    """Delete our lock if it is still ours (the generation precondition decides on the server)."""
    from google.api_core.exceptions import NotFound, PreconditionFailed

    try:
        with storage_errors(f"cannot release the lock of {url}"):
            bucket.blob(name).delete(if_generation_match=int(info.id), **call_options())
    except NotFound:
        log.warning("the lock of %s was already removed (force-unlock?)", url)
    except PreconditionFailed:
        log.warning("the lock of %s is no longer ours (force-unlocked and taken again): left alone", url)


def force_remove(bucket: Any, name: str, url: str, lock_id: str) -> LockInfo:
    """Remove the lock whose ID is `lock_id`, and only that one; returns what it said."""
    from google.api_core.exceptions import NotFound, PreconditionFailed

    holder = held(bucket, name, url, lock_id)
    try:
        with storage_errors(f"cannot remove the lock of {url}"):
            bucket.blob(name).delete(if_generation_match=int(lock_id), **call_options())
    except NotFound:
        pass  # gone meanwhile: what was asked for
    except PreconditionFailed:
        raise StateError(f"the lock of {url} changed while removing it; run force-unlock again with the "
                         "ID it now shows") from None
    return holder


def held(bucket: Any, name: str, url: str, lock_id: str) -> LockInfo:
    """The lock on `url`, which must be the one with ID `lock_id`."""
    holder = read_holder(bucket, name, url)
    if holder is None:
        raise StateError(f"state {url} is not locked")
    if holder.id != lock_id.strip():
        raise StateError(f"lock ID {lock_id} does not match the lock on state {url} ({describe_lock(holder)})")
    return holder
