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

from reconciler import jsonio
from reconciler.apischema.versions import VERSIONS
from reconciler.emulator import schema
from reconciler.emulator.exceptions import ApiError, InvalidArgument, bad_payload
from reconciler.emulator.urls import SYSTEM_PARAMS
from reconciler.model import V1

JSON_TYPE = "application/json; charset=UTF-8"
_DURATION = re.compile(r"^(\d+(?:\.\d{1,9})?)s$")


FieldMask = dict[str, "FieldMask"]  # selected name -> sub-selection ({} selects everything below)


@dataclass(frozen=True)
class Query:
    params: dict[str, str]
    enum_ints: bool  # the caller asked for `enum-encoding=int`
    pretty: bool
    fields: FieldMask | None = None  # partial response (`fields=`), None: everything

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
    selection = params.get("fields", params.get("$fields", ""))
    return Query(params, enum_ints, pretty, parse_fields(selection) if selection else None)


_FIELD_TOKEN = re.compile(r"\s*([A-Za-z_@][A-Za-z0-9_@.\-]*|\*|[,/()])")


def parse_fields(text: str) -> FieldMask:
    """Google's partial-response syntax: `a,b/c,d(e,f)`."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _FIELD_TOKEN.match(text, pos)
        if match is None:
            if text[pos:].strip() == "":
                break
            raise InvalidArgument(f'Invalid field selection "{text}" at position {pos + 1}.')
        tokens.append(match.group(1))
        pos = match.end()
    mask, rest = _field_list(tokens, text)
    if rest:
        raise InvalidArgument(f'Invalid field selection "{text}": unexpected "{rest[0]}".')
    return mask


def _field_list(tokens: list[str], text: str) -> tuple[FieldMask, list[str]]:
    mask: FieldMask = {}
    while True:
        if not tokens or tokens[0] in ",/()":
            raise InvalidArgument(f'Invalid field selection "{text}": a field name is missing.')
        path = [tokens.pop(0)]
        while tokens[:1] == ["/"]:
            tokens.pop(0)
            if not tokens or tokens[0] in ",/()":
                raise InvalidArgument(f'Invalid field selection "{text}": a field name is missing after "/".')
            path.append(tokens.pop(0))
        leaf: FieldMask = {}
        if tokens[:1] == ["("]:
            tokens.pop(0)
            leaf, tokens = _field_list(tokens, text)
            if tokens[:1] != [")"]:
                raise InvalidArgument(f'Invalid field selection "{text}": missing ")".')
            tokens.pop(0)
        node = mask
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = _merge(node.get(path[-1]), leaf)
        if tokens[:1] != [","]:
            return mask, tokens
        tokens.pop(0)


def _merge(old: FieldMask | None, new: FieldMask) -> FieldMask:
    if old is None:
        return new
    if not old or not new:
        return {}  # one of them selects everything
    return {**old, **{k: _merge(old.get(k), v) for k, v in new.items()}}


def select(body: Any, mask: FieldMask) -> Any:
    """Keep only the selected fields (lists are filtered element by element)."""
    if not mask or "*" in mask:
        return body
    if isinstance(body, list):
        return [select(item, mask) for item in body]
    if not isinstance(body, dict):
        return body
    return {key: select(body[key], sub) for key, sub in mask.items() if key in body}


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
        body = jsonio.loads(raw)
    except jsonio.JsonError as exc:
        raise bad_payload("", f"Invalid JSON payload received. {exc}.") from None
    if not isinstance(body, dict):
        raise bad_payload("", "Invalid JSON payload received. Expected an object.")
    return body


def encode(body: Any, query: Query | None = None, message: str | None = None) -> bytes:
    """Serialise a response body; enums become numbers when the caller asked for that."""
    if query is not None and query.enum_ints and message is not None:
        body = _enum_ints(message, body)
    if query is not None and query.fields is not None:
        body = select(body, query.fields)
    if query is not None and query.pretty:
        return json.dumps(body, indent=2, ensure_ascii=False).encode()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _enum_ints(message: str, body: Any) -> Any:
    if message == "Operation":
        if isinstance(body, dict) and isinstance(body.get("response"), dict):
            inner = body["response"]
            # `…aiplatform.v1beta1.TuningJob` -> GoogleCloudAiplatformV1beta1TuningJob
            type_url = str(inner.get("@type", ""))
            version = next((v for v in VERSIONS if f".{v}." in type_url), V1)
            converted = schema.enums_as_numbers(schema.tuning_job(version), inner)
            return {**body, "response": converted}
        return body
    if message == "ListOperations":
        ops = body.get("operations", [])
        return {**body, "operations": [_enum_ints("Operation", op) for op in ops]}
    return schema.enums_as_numbers(message, body)


def error_body(error: ApiError) -> bytes:
    return json.dumps(error.body(), indent=2).encode()
