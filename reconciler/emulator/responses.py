"""Parsing of requests and serialising of responses, as Google's JSON front end does it.

Nothing here knows about jobs: query strings (never split on ';' — the GAPIC client sends
`$alt=json;enum-encoding=int`), JSON bodies, `prettyPrint`, enums as numbers on request,
and the `{"error": {...}}` body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from reconciler.emulator import schema
from reconciler.emulator.exceptions import ApiError, InvalidArgument, bad_payload
from reconciler.emulator.urls import SYSTEM_PARAMS

JSON_TYPE = "application/json; charset=UTF-8"
_DURATION = re.compile(r"^(\d+(?:\.\d{1,9})?)s$")


@dataclass(frozen=True)
class Query:
    params: dict[str, str]
    enum_ints: bool  # the caller asked for `enum-encoding=int`
    pretty: bool

    def get(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)


def parse_query(raw: bytes, allowed: frozenset[str]) -> Query:
    """Split on '&' only; reject parameters the method does not have."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument(f"Invalid query string: {exc}") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed and key not in SYSTEM_PARAMS:
            raise bad_payload(
                key,
                f'Invalid JSON payload received. Unknown name "{key}": Cannot bind query parameter. '
                f"Field '{key}' could not be found in request message.",
            )
        params[key] = value
    alt = params.get("$alt", params.get("alt", "json"))
    media, _, options = alt.partition(";")
    if media != "json":
        raise InvalidArgument(f'Unsupported alt "{alt}": this service answers in JSON only.')
    enum_ints = "enum-encoding=int" in options.split(";")
    pretty = params.get("prettyPrint", params.get("$prettyPrint", "false")).lower() in ("true", "1")
    return Query(params, enum_ints, pretty)


def int_param(query: Query, name: str, default: int = 0) -> int:
    raw = query.get(name)
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_payload(name, f"Invalid value at '{schema.snake(name)}' (TYPE_INT32), \"{raw}\"") from None


def duration_param(query: Query, name: str) -> float | None:
    raw = query.get(name)
    if raw == "":
        return None
    match = _DURATION.match(raw)
    if not match:
        raise bad_payload(name, f"Invalid value at '{name}' (type.googleapis.com/google.protobuf.Duration), \"{raw}\"")
    return float(match.group(1))


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is `{}`)."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_payload("", f"Invalid JSON payload received. {exc}.") from None
    if not isinstance(body, dict):
        raise bad_payload("", "Invalid JSON payload received. Expected an object.")
    return body


def encode(body: Any, query: Query | None = None, message: str | None = None) -> bytes:
    """Serialise a response body; enums become numbers when the caller asked for that."""
    if query is not None and query.enum_ints and message is not None:
        body = _enum_ints(message, body)
    if query is not None and query.pretty:
        return json.dumps(body, indent=2, ensure_ascii=False).encode()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _enum_ints(message: str, body: Any) -> Any:
    if message == "Operation":
        if isinstance(body, dict) and isinstance(body.get("response"), dict):
            inner = body["response"]
            converted = schema.enums_as_numbers(f"{schema.PREFIX}TuningJob", inner)
            return {**body, "response": converted}
        return body
    if message == "ListOperations":
        ops = body.get("operations", [])
        return {**body, "operations": [_enum_ints("Operation", op) for op in ops]}
    return schema.enums_as_numbers(message, body)


def error_body(error: ApiError) -> bytes:
    return json.dumps(error.body(), indent=2).encode()
