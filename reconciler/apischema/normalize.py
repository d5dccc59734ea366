"""Canonical form and hash of a TuningJob spec.

Two specs that the service treats alike must normalise alike: int64 fields as decimal strings
(the API's JSON form) whether written `3` or `"3"`, doubles as floats, enums by name whether
written by name or number, empty objects as absent, output-only fields and the tool's own
identity labels dropped. The field types come from the pinned discovery snapshot, so nothing here
is listed field by field.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any, Callable

from reconciler.apischema.discovery import TUNING_JOB_SCHEMA, is_output_only, snapshot_schemas
from reconciler.model import RESERVED_LABELS

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


def _enum(values: list[str]) -> Normalizer:
    def normalize(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return values[value] if 0 <= value < len(values) else value
        return value
    return normalize


def _scalar_normalizer(prop: dict) -> Normalizer | None:
    """None: the value is kept as it is."""
    kind, fmt = prop.get("type"), prop.get("format")
    if kind == "string" and fmt in ("int64", "uint64"):
        return _int64
    if kind == "number":
        return _number
    if kind == "integer":
        return _integer
    if kind == "string" and "enum" in prop:
        return _enum(list(prop["enum"]))
    return None


def _normalizer(prop: dict, schemas: dict[str, dict]) -> Normalizer | None:
    ref = prop.get("$ref")
    if ref is not None:
        if "properties" not in schemas.get(ref, {}):
            return None
        # Looked up at call time: schemas refer to each other (and to themselves).
        return lambda value: _normalize_object(value, _compiled(ref)) if isinstance(value, dict) else value
    if prop.get("type") == "array":
        inner = _normalizer(prop.get("items", {}), schemas)
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
    return _scalar_normalizer(prop)


@lru_cache(maxsize=None)
def _compiled(schema_name: str) -> dict[str, Normalizer | None]:
    """Field name -> its normaliser (None: keep as is, _DROP: output-only)."""
    schemas = snapshot_schemas()
    table: dict[str, Normalizer | None] = {}
    for name, prop in schemas.get(schema_name, {}).get("properties", {}).items():
        table[name] = _DROP if is_output_only(prop) else _normalizer(prop, schemas)
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
    """The comparable form of a TuningJob body (desired spec or live job)."""
    out = _normalize_object(spec, _compiled(TUNING_JOB_SCHEMA))
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
