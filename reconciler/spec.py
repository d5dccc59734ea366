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
from pathlib import Path
from typing import Any

from reconciler.model import RESERVED_LABELS

TUNING_JOB_SCHEMA = "GoogleCloudAiplatformV1TuningJob"
SNAPSHOT = Path(__file__).resolve().parent.parent / "schemas" / "discovery" / "aiplatform.v1.tuning.json"


@lru_cache(maxsize=1)
def discovery_schemas() -> dict[str, dict]:
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))["schemas"]


def is_output_only(prop: dict) -> bool:
    return bool(prop.get("readOnly")) or prop.get("description", "").lstrip().startswith("Output only.")


def _normalize_scalar(value: Any, prop: dict) -> Any:
    kind, fmt = prop.get("type"), prop.get("format")
    try:
        if kind == "string" and fmt in ("int64", "uint64"):
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and float(value).is_integer():
                return str(int(value))
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return str(int(value))
        elif kind == "number" and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return float(value)
        elif kind == "integer" and isinstance(value, (int, str)) and not isinstance(value, bool):
            return int(value)
        elif kind == "string" and "enum" in prop and isinstance(value, int) and not isinstance(value, bool):
            enum = prop["enum"]
            return enum[value] if 0 <= value < len(enum) else value
    except (ValueError, OverflowError):
        pass  # not ours to reject here: validation reports it
    return value


def _normalize(value: Any, prop: dict, schemas: dict[str, dict]) -> Any:
    ref = prop.get("$ref")
    if ref is not None:
        schema = schemas.get(ref, {})
        if isinstance(value, dict) and "properties" in schema:
            return _normalize_object(value, schema, schemas)
        return value
    if prop.get("type") == "array" and isinstance(value, list):
        items = prop.get("items", {})
        return [_normalize(v, items, schemas) for v in value]
    if prop.get("type") == "object" and isinstance(value, dict):
        inner = prop.get("additionalProperties", {})
        out = {k: _normalize(v, inner, schemas) for k, v in value.items()}
        return {k: v for k, v in out.items() if not _empty(v)}
    return _normalize_scalar(value, prop)


def _empty(value: Any) -> bool:
    return value is None or value == {}


def _normalize_object(obj: dict, schema: dict, schemas: dict[str, dict]) -> dict:
    props = schema.get("properties", {})
    out: dict[str, Any] = {}
    for name, value in obj.items():
        prop = props.get(name)
        if prop is None:
            out[name] = value  # unknown to the snapshot: kept verbatim so it still shows in diffs
            continue
        if is_output_only(prop):
            continue
        norm = _normalize(value, prop, schemas)
        if not _empty(norm):
            out[name] = norm
    return out


def normalize_spec(spec: dict) -> dict:
    """The comparable form of a TuningJob body (desired spec or live job)."""
    schemas = discovery_schemas()
    out = _normalize_object(spec, schemas[TUNING_JOB_SCHEMA], schemas)
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
    return hashlib.sha256(canonical_json(normalize_spec(spec)).encode()).hexdigest()[:16]
