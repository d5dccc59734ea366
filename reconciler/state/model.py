"""The state file's data and its JSON form. Pure: no file I/O here (see state_store.py).

Layout on disk (keys sorted, stable across writes so diffs stay readable):

    {"version": 1, "lineage": "<uuid4>", "serial": 7,
     "entries": {"<project>/<location>/<key>": {"key": ..., "project": ..., ...}}}
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

from reconciler import jsonio
from reconciler.errors import StateError
from reconciler.model import V1BETA1
from reconciler.text import shorten, some

STATE_VERSION = 1

_OPTIONAL_STR_FIELDS = ("job_name", "spec_hash", "job_state", "update_time", "request_id")
_REQUIRED_STR_FIELDS = ("key", "project", "location")


@dataclass
class StateEntry:
    key: str
    project: str  # project as written in manifests (id, not number)
    location: str
    job_name: str | None = None  # current job: projects/NUMBER/locations/L/tuningJobs/ID
    spec_hash: str | None = None
    job_state: str | None = None  # last known JOB_STATE_*
    update_time: str | None = None  # the job's updateTime when last seen
    request_id: str | None = None  # reconciler-request label of the create that made job_name
    history: list[str] = field(default_factory=list)  # earlier job names, oldest first
    # lifecycle.preventCancel at the last apply: still honoured once the key leaves the manifests
    prevent_cancel: bool = False
    # The job was made outside the tool and brought in by `import`: it may lack our labels.
    imported: bool = False
    # The REST version the job was created (and is read and cancelled) through; None: v1.
    api_version: str | None = None
    # Values the job was created with for spec fields that use other jobs' outputs
    # (`${jobs.KEY.OUTPUT}`): spec path -> the string sent. Empty for jobs without references.
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.project}/{self.location}/{self.key}"


def copy_entry(entry: StateEntry) -> StateEntry:
    """A copy whose lists and maps are its own (the other fields are immutable values). Not
    dataclasses.replace, which re-runs __init__: copying 10,000 entries that way was a third of
    loading a state file."""
    copy = object.__new__(StateEntry)
    copy.__dict__.update(entry.__dict__)
    copy.history = list(entry.history)
    copy.inputs = dict(entry.inputs)
    return copy


def _new_lineage() -> str:
    return str(uuid.uuid4())


@dataclass
class State:
    version: int = STATE_VERSION
    lineage: str = field(default_factory=_new_lineage)
    serial: int = 0
    entries: dict[str, StateEntry] = field(default_factory=dict)  # by address

    def find(self, key_or_address: str) -> list[StateEntry]:
        """Entries for an address (`project/location/key`) or a bare key.

        A bare key may match several entries (the same key in two locations), sorted by
        address so that callers can report ambiguity deterministically.
        """
        if "/" in key_or_address:
            entry = self.entries.get(key_or_address)
            return [entry] if entry is not None else []
        return sorted(
            (e for e in self.entries.values() if e.key == key_or_address),
            key=lambda e: e.address,
        )


def apply_change(state: State, address: str, entry: StateEntry | None) -> None:
    """Set (or with None, remove) one entry: the single mutation the journal records."""
    if entry is None:
        state.entries.pop(address, None)
        return
    if entry.address != address:
        raise ValueError(f"entry address {entry.address!r} does not match {address!r}")
    state.entries[address] = entry


_ENTRY_FIELDS: tuple[str, ...] = ()


def entry_to_dict(entry: StateEntry) -> dict[str, Any]:
    # Not dataclasses.asdict: its recursive copy showed in apply's per-create profile (two records a create).
    global _ENTRY_FIELDS
    if not _ENTRY_FIELDS:
        _ENTRY_FIELDS = tuple(f.name for f in fields(StateEntry))
    data = {name: getattr(entry, name) for name in _ENTRY_FIELDS}
    data["history"] = list(entry.history)
    if not entry.imported:
        del data["imported"]  # written only when set, so older state readers are not tripped
    if entry.api_version is None:
        del data["api_version"]  # likewise: v1 entries look as they always did
    if not entry.inputs:
        del data["inputs"]  # likewise: jobs without references
    else:
        data["inputs"] = dict(entry.inputs)
    return data


def entry_from_dict(data: Any, where: str) -> StateEntry:
    """Build an entry from parsed JSON; `where` names it in errors (e.g. `entries["a/b/c"]`)."""
    if not isinstance(data, dict):
        raise StateError(f"{where}: expected an object, got {_kind(data)}")
    known = {f.name for f in fields(StateEntry)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise StateError(f"{where}: unknown field(s) {some(unknown)}")
    for name in _REQUIRED_STR_FIELDS:
        if name not in data:
            raise StateError(f"{where}.{name}: missing")
        if not isinstance(data[name], str) or not data[name]:
            raise StateError(f"{where}.{name}: expected a non-empty string, got {_kind(data[name])}")
    for name in _OPTIONAL_STR_FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise StateError(f"{where}.{name}: expected a string or null, got {_kind(value)}")
    history = data.get("history", [])
    if not isinstance(history, list):
        raise StateError(f"{where}.history: expected a list, got {_kind(history)}")
    for i, name in enumerate(history):
        if not isinstance(name, str):
            raise StateError(f"{where}.history[{i}]: expected a string, got {_kind(name)}")
    api_version = data.get("api_version")
    if api_version is not None and api_version != V1BETA1:
        raise StateError(f"{where}.api_version: expected {V1BETA1!r} or null, got {_kind(api_version)}")
    inputs = data.get("inputs", {})
    if not isinstance(inputs, dict):
        raise StateError(f"{where}.inputs: expected an object, got {_kind(inputs)}")
    for path, value in inputs.items():
        if not isinstance(value, str):
            raise StateError(f"{where}.inputs[{json.dumps(path)}]: expected a string, got {_kind(value)}")
    flags = {name: data.get(name, False) for name in ("prevent_cancel", "imported")}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise StateError(f"{where}.{name}: expected true or false, got {_kind(value)}")
    return StateEntry(
        key=data["key"],
        project=data["project"],
        location=data["location"],
        history=list(history),
        api_version=api_version,
        inputs=dict(inputs),
        **flags,
        **{name: data.get(name) for name in _OPTIONAL_STR_FIELDS},
    )


def state_to_dict(state: State) -> dict[str, Any]:
    return {
        "version": state.version,
        "lineage": state.lineage,
        "serial": state.serial,
        "entries": {addr: entry_to_dict(state.entries[addr]) for addr in sorted(state.entries)},
    }


def state_to_json(state: State) -> str:
    return json.dumps(state_to_dict(state), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def state_from_json(text: str, source: str) -> State:
    """Parse a state file's text; every problem is a StateError naming `source`."""
    try:
        data = jsonio.loads(text)
    except jsonio.JsonError as exc:
        detail = "it is empty" if not text.strip() else str(exc)
        raise StateError(f"state file {source}: {detail}") from None
    return state_from_dict(data, source)


def state_from_dict(data: Any, source: str) -> State:
    if not isinstance(data, dict):
        raise StateError(f"state file {source}: expected a JSON object, got {_kind(data)}")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateError(f"state file {source}: version: expected an integer, got {_kind(version)}")
    if version > STATE_VERSION:
        raise StateError(
            f"state file {source} was written by a newer version of tuning-reconciler "
            f"(state version {version}; this version understands up to {STATE_VERSION}). "
            "Upgrade tuning-reconciler to use it"
        )
    if version < 1:
        raise StateError(f"state file {source}: unknown state version {version}")
    unknown = sorted(set(data) - {"version", "lineage", "serial", "entries"})
    if unknown:
        raise StateError(f"state file {source}: unknown field(s) {some(unknown)}")
    lineage = data.get("lineage")
    if not isinstance(lineage, str) or not lineage:
        raise StateError(f"state file {source}: lineage: expected a non-empty string, got {_kind(lineage)}")
    serial = data.get("serial")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise StateError(f"state file {source}: serial: expected an integer >= 0, got {shorten(repr(serial))}")
    raw_entries = data.get("entries", {})
    if not isinstance(raw_entries, dict):
        raise StateError(f"state file {source}: entries: expected an object, got {_kind(raw_entries)}")
    entries: dict[str, StateEntry] = {}
    for address, raw in raw_entries.items():
        where = f"state file {source}: entries[{shorten(json.dumps(address))}]"
        entry = entry_from_dict(raw, where)
        if entry.address != address:
            raise StateError(f"{where}: address does not match its entry ({entry.address})")
        entries[address] = entry
    return State(version=version, lineage=lineage, serial=serial, entries=entries)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
