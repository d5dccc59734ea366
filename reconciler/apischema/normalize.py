"""Canonical form and hash of a TuningJob spec.

Two specs that the service treats alike must normalise alike: int64 fields as decimal strings
(the API's JSON form) whether written `3` or `"3"`, doubles as floats, enums by name whether
written by name or number, empty objects as absent, output-only fields and the tool's own
identity labels dropped. The field types come from the pinned discovery snapshots, so nothing
here is listed field by field.

The comparable form is the same whichever REST version a spec is written for or a job was read
through: v1beta1 is a superset of v1 with the same types (tested), so v1beta1's schemas (falling
back to v1's for a field v1beta1 might lack) normalise both. Moving a manifest from v1 to v1beta1
with the same fields keeps its hash. `visible_in` cuts a spec down to what one version can show.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any, Callable

from reconciler.apischema.discovery import enum_table, is_output_only, snapshot_schemas
from reconciler.apischema.versions import surface, twin
from reconciler.model import RESERVED_LABELS, V1, V1BETA1

# Normalising runs for every desired and every live job of a plan (tens of thousands), so
# each schema is compiled once into a table of per-field normaliser functions instead of
# re-reading the discovery document's properties (and their long descriptions) per value.

Normalizer = Callable[[Any], Any]
_DROP: Any = object()  # an output-only field: left out of the comparable form


def _int64(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    try:
        if isinstance(value, (int, float)) and float(value).is_integer():
            return str(int(value))
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return str(int(value))
    except (ValueError, OverflowError):
        pass  # not ours to reject here: validation reports it
    return value


def _number(value: Any) -> Any:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except (ValueError, OverflowError):
            pass
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return int(value)
        except (ValueError, OverflowError):
            pass
    return value


def _enum(names: dict[int, str]) -> Normalizer:
    """Numbers by their proto number (not the discovery order: see `proto_enums`)."""
    def normalize(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return names.get(value, value)
        return value
    return normalize


def _scalar_normalizer(prop: dict, where: tuple[str, str] = ("", "")) -> Normalizer | None:
    """None: the value is kept as it is. `where`: (schema, field), for enum numbers."""
    kind, fmt = prop.get("type"), prop.get("format")
    if kind == "string" and fmt in ("int64", "uint64"):
        return _int64
    if kind == "number":
        return _number
    if kind == "integer":
        return _integer
    if kind == "string" and "enum" in prop:
        numbers = enum_table(V1BETA1, *where, list(prop["enum"]))
        return _enum({n: name for name, n in numbers.items()})
    return None


def _normalizer(prop: dict, schemas: dict[str, dict], where: tuple[str, str] = ("", "")) -> Normalizer | None:
    ref = prop.get("$ref")
    if ref is not None:
        if "properties" not in schemas.get(ref, {}):
            return None
        # Looked up at call time: schemas refer to each other (and to themselves).
        return lambda value: _normalize_object(value, _compiled(ref)) if isinstance(value, dict) else value
    if prop.get("type") == "array":
        inner = _normalizer(prop.get("items", {}), schemas, where)
        if inner is None:
            return lambda value: list(value) if isinstance(value, list) else value
        return lambda value: [inner(v) for v in value] if isinstance(value, list) else value
    if prop.get("type") == "object":
        each = _normalizer(prop.get("additionalProperties", {}), schemas)

        def normalize_map(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            out = value.items() if each is None else ((k, each(v)) for k, v in value.items())
            return {k: v for k, v in out if not _empty(v)}
        return normalize_map
    return _scalar_normalizer(prop, where)


def _properties(schema_name: str) -> dict[str, dict]:
    """A v1beta1 message's fields, plus any its v1 twin has and it lacks (none today)."""
    older = snapshot_schemas(V1).get(twin(schema_name, V1), {}).get("properties", {})
    newer = snapshot_schemas(V1BETA1).get(schema_name, {}).get("properties", {})
    return {**older, **newer}


@lru_cache(maxsize=None)
def _compiled(schema_name: str) -> dict[str, Normalizer | None]:
    """Field name -> its normaliser (None: keep as is, _DROP: output-only). `schema_name` is a
    v1beta1 name (or a shared one); refs below v1 fields are read as their v1beta1 twins."""
    schemas = snapshot_schemas(V1BETA1)
    table: dict[str, Normalizer | None] = {}
    for name, prop in _properties(schema_name).items():
        if "$ref" in prop:
            prop = {**prop, "$ref": twin(prop["$ref"], V1BETA1)}
        elif "$ref" in prop.get("items", {}):
            prop = {**prop, "items": {**prop["items"], "$ref": twin(prop["items"]["$ref"], V1BETA1)}}
        table[name] = _DROP if is_output_only(prop) else _normalizer(prop, schemas, (schema_name, name))
    return table


def _empty(value: Any) -> bool:
    return value is None or value == {}


_UNKNOWN: Any = object()


def _normalize_object(obj: dict, table: dict[str, Normalizer | None]) -> dict:
    out: dict[str, Any] = {}
    for name, value in obj.items():
        normalize = table.get(name, _UNKNOWN)
        if normalize is _UNKNOWN:
            out[name] = value  # unknown to the snapshot: kept verbatim so it still shows in diffs
            continue
        if normalize is _DROP:
            continue
        norm = value if normalize is None else normalize(value)
        if not _empty(norm):
            out[name] = norm
    return out


def normalize_spec(spec: dict) -> dict:
    """The comparable form of a TuningJob body (desired spec or live job, of any version)."""
    out = _normalize_object(spec, _compiled(surface(V1BETA1).tuning_job))
    labels = {k: v for k, v in out.get("labels", {}).items() if k not in RESERVED_LABELS}
    if labels:
        out["labels"] = labels
    else:
        out.pop("labels", None)
    return out


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: dict) -> str:
    """Short, label-safe hash ([0-9a-f]{16}) of the normalised spec."""
    return normalized_hash(normalize_spec(spec))


def normalized_hash(normalized: dict) -> str:
    """`spec_hash` of a spec already passed through `normalize_spec` (saves normalising twice)."""
    return hashlib.sha256(canonical_json(normalized).encode()).hexdigest()[:16]


@lru_cache(maxsize=None)
def _fields(version: str, schema_name: str) -> dict[str, str | None]:
    """The fields of one message of `version`: name -> the message it holds (None: a scalar,
    list of scalars or map, kept whole)."""
    out: dict[str, str | None] = {}
    for name, prop in snapshot_schemas(version).get(schema_name, {}).get("properties", {}).items():
        ref = prop.get("$ref") or prop.get("items", {}).get("$ref")
        out[name] = ref if ref and "properties" in snapshot_schemas(version).get(ref, {}) else None
    return out


def _visible(value: Any, version: str, schema_name: str) -> Any:
    if isinstance(value, list):
        return [_visible(v, version, schema_name) for v in value]
    if not isinstance(value, dict):
        return value
    fields = _fields(version, schema_name)
    out = {}
    for name, item in value.items():
        if name not in fields:
            continue
        child = fields[name]
        out[name] = item if child is None else _visible(item, version, child)
    return {k: v for k, v in out.items() if not _empty(v)}


def visible_in(normalized: dict, version: str) -> dict:
    """`normalized` (a `normalize_spec` result) without the fields `version` does not have:
    what a job read through `version` can show of it."""
    if version == V1BETA1:
        return normalized  # the superset: nothing to hide
    return _visible(normalized, version, surface(version).tuning_job)
