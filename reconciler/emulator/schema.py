"""Request decoding driven by the pinned discovery documents, like Google's JSON front end.

The emulator does not keep its own copy of the message shapes: it reads them from
`schemas/discovery/aiplatform.{v1,v1beta1}.tuning.json` (the snapshots the manifest schemas
come from), so unknown fields, wrong types, enum names/numbers (proto numbers, pinned beside
each snapshot) and int64-as-string-or-number are judged exactly as the discovery documents
describe them. Message names carry their version (`GoogleCloudAiplatformV1TuningJob`,
`...V1beta1TuningJob`), so both versions' messages live in one table. `project` cuts a value
down to what one version's message has (a v1 answer leaves v1beta1's fields out).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from reconciler.apischema.discovery import enum_table, is_output_only, snapshot_schemas
from reconciler.apischema.versions import VERSIONS, surface
from reconciler.emulator.exceptions import bad_payload
from reconciler.model import V1

PREFIX = surface(V1).prefix  # v1's names, for callers that only ever meant v1
TUNING_JOB = surface(V1).tuning_job


def tuning_job(version: str) -> str:
    return surface(version).tuning_job

_INT64_FORMATS = frozenset({"int64", "uint64"})
_INT32_FORMATS = frozenset({"int32", "uint32"})
_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", name).lower()


@dataclass(frozen=True)
class Field:
    json_name: str
    kind: str  # message | string | int64 | int32 | double | bool | enum | map | any | array
    ref: str | None = None  # message name for kind == message (or element/value message)
    enum: tuple[str, ...] = ()
    item: Field | None = None  # element (array) or value (map) type
    read_only: bool = False
    numbers: tuple[int, ...] = ()  # enum: each value's proto number (not always its position)

    def enum_name(self, number: int) -> str | None:
        return self.enum[self.numbers.index(number)] if number in self.numbers else None

    def enum_number(self, name: str) -> int:
        return self.numbers[self.enum.index(name)]


@dataclass(frozen=True)
class Message:
    name: str
    fields: dict[str, Field]  # camelCase name -> field
    aliases: dict[str, str]  # accepted spelling (camel or snake) -> camelCase name


def _field(name: str, prop: dict[str, Any], where: tuple[str, str] = (V1, "")) -> Field:
    """`where`: (version, message) the field belongs to, for its enum numbers."""
    read_only = is_output_only(prop)
    if "$ref" in prop:
        return Field(name, "message", ref=prop["$ref"], read_only=read_only)
    kind = prop.get("type", "any")
    fmt = prop.get("format", "")
    if kind == "array":
        return Field(name, "array", item=_field(name, prop.get("items", {}), where), read_only=read_only)
    if kind == "object":
        extra = prop.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("type") != "any":
            return Field(name, "map", item=_field(name, extra, where), read_only=read_only)
        return Field(name, "any", read_only=read_only)
    if kind == "string":
        if "enum" in prop:
            values = tuple(prop["enum"])
            numbers = enum_table(where[0], where[1], name, values)
            return Field(name, "enum", enum=values, read_only=read_only,
                         numbers=tuple(numbers[v] for v in values))
        if fmt in _INT64_FORMATS:
            return Field(name, "int64", read_only=read_only)
        return Field(name, "string", read_only=read_only)
    if kind == "integer":
        return Field(name, "int32", read_only=read_only)
    if kind == "number":
        return Field(name, "double", read_only=read_only)
    if kind == "boolean":
        return Field(name, "bool", read_only=read_only)
    return Field(name, "any", read_only=read_only)


@lru_cache(maxsize=1)
def messages() -> dict[str, Message]:
    """Every message of every version's snapshot (shared names such as GoogleRpcStatus: the
    newest version's)."""
    out: dict[str, Message] = {}
    for version in VERSIONS:
        for name, schema in snapshot_schemas(version).items():
            fields = {k: _field(k, v, (version, name)) for k, v in schema.get("properties", {}).items()}
            aliases = {k: k for k in fields} | {snake(k): k for k in fields}
            out[name] = Message(name, fields, aliases)
    return out


def _type_label(f: Field) -> str:
    return {
        "int64": "TYPE_INT64",
        "int32": "TYPE_INT32",
        "double": "TYPE_DOUBLE",
        "bool": "TYPE_BOOL",
        "string": "TYPE_STRING",
        "enum": "TYPE_ENUM",
    }.get(f.kind, "TYPE_MESSAGE")


def _invalid_value(path: str, f: Field, value: Any) -> Exception:
    shown = json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__
    where = f" at '{path}'" if path else ""
    return bad_payload(path, f"Invalid value{where} ({_type_label(f)}), {shown}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def decode_message(message: str, value: Any, path: str, *, keep_read_only: bool = False) -> dict[str, Any]:
    """Check `value` against `message` and return it with canonical camelCase keys, enums as
    names and int64 as strings. Output-only fields are dropped (the service ignores them)."""
    msg = messages()[message]
    if not isinstance(value, dict):
        where = f" at '{path}'" if path else ""
        raise bad_payload(path, f"Invalid JSON payload received. Expected an object{where}.")
    out: dict[str, Any] = {}
    for key, item in value.items():
        canonical = msg.aliases.get(key)
        if canonical is None:
            where = f" at '{path}'" if path else ""
            raise bad_payload(path, f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.')
        f = msg.fields[canonical]
        if item is None:
            continue  # JSON null means "not set" in proto3 JSON
        if f.read_only and not keep_read_only:
            continue
        out[canonical] = _decode_value(f, item, _join(path, snake(canonical)), keep_read_only)
    return out


def _decode_value(f: Field, value: Any, path: str, keep_read_only: bool) -> Any:
    kind = f.kind
    if kind == "message":
        assert f.ref is not None
        return decode_message(f.ref, value, path, keep_read_only=keep_read_only)
    if kind == "array":
        if not isinstance(value, list):
            raise _invalid_value(path, f, value)
        assert f.item is not None
        return [_decode_value(f.item, v, f"{path}[{i}]", keep_read_only) for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise _invalid_value(path, f, value)
        assert f.item is not None
        return {str(k): _decode_value(f.item, v, f"{path}[{k}]", keep_read_only) for k, v in value.items()}
    if kind == "any":
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise _invalid_value(path, f, value)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _invalid_value(path, f, value)
        return value
    if kind == "enum":
        if isinstance(value, str) and value in f.enum:
            return value
        if isinstance(value, int) and not isinstance(value, bool) and f.enum_name(value) is not None:
            return f.enum_name(value)
        raise _invalid_value(path, f, value)
    if kind in ("int64", "int32"):
        number = _as_int(value)
        if number is None:
            raise _invalid_value(path, f, value)
        return str(number) if kind == "int64" else number
    if kind == "double":
        number_f = _as_float(value)
        if number_f is None:
            raise _invalid_value(path, f, value)
        return number_f
    raise AssertionError(kind)  # pragma: no cover


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) or value in ("NaN", "Infinity", "-Infinity") else None
    return None


def enums_as_numbers(message: str, value: Any) -> Any:
    """Re-encode enum names as their numbers (for `$alt=json;enum-encoding=int` callers)."""
    msg = messages().get(message)
    if msg is None or not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        f = msg.fields.get(key)
        out[key] = item if f is None else _enum_numbers(f, item)
    return out


def _enum_numbers(f: Field, value: Any) -> Any:
    if f.kind == "enum" and isinstance(value, str) and value in f.enum:
        return f.enum_number(value)
    if f.kind == "message" and f.ref is not None:
        return enums_as_numbers(f.ref, value)
    if f.kind == "array" and f.item is not None and isinstance(value, list):
        return [_enum_numbers(f.item, v) for v in value]
    if f.kind == "map" and f.item is not None and isinstance(value, dict):
        return {k: _enum_numbers(f.item, v) for k, v in value.items()}
    return value


def project(message: str, value: Any) -> Any:
    """`value` with only the fields `message` has (recursively): what that version shows.
    Map values and untyped (`any`) fields are kept whole."""
    msg = messages().get(message)
    if msg is None or not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        f = msg.fields.get(key)
        if f is not None:
            out[key] = _project_value(f, item)
    return out


def _project_value(f: Field, value: Any) -> Any:
    if f.kind == "message" and f.ref is not None:
        return project(f.ref, value)
    if f.kind == "array" and f.item is not None and isinstance(value, list):
        return [_project_value(f.item, v) for v in value]
    return value
