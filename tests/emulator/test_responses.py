from __future__ import annotations

import json

import pytest

from reconciler.emulator import exceptions as err
from reconciler.emulator.responses import encode, parse_body, parse_fields, parse_query, select

LIST_PARAMS = frozenset({"filter", "pageSize", "pageToken"})


def test_query_is_not_split_on_semicolons() -> None:
    query = parse_query(b"%24alt=json%3Benum-encoding%3Dint&filter=labels.a%3D%22b%22", LIST_PARAMS)
    assert query.params == {"$alt": "json;enum-encoding=int", "filter": 'labels.a="b"'}
    assert query.enum_ints is True
    raw = parse_query(b"$alt=json;enum-encoding=int", LIST_PARAMS)
    assert raw.params == {"$alt": "json;enum-encoding=int"} and raw.enum_ints


def test_unknown_parameter_and_unsupported_alt_are_rejected() -> None:
    with pytest.raises(err.InvalidArgument, match='Unknown name "page_size": Cannot bind query parameter'):
        parse_query(b"page_size=3", LIST_PARAMS)
    with pytest.raises(err.InvalidArgument, match="answers in JSON only"):
        parse_query(b"alt=proto", LIST_PARAMS)


def test_body_parsing() -> None:
    assert parse_body(b"") == {}
    assert parse_body(b' {"a": 1} ') == {"a": 1}
    with pytest.raises(err.InvalidArgument, match="Invalid JSON payload received"):
        parse_body(b"{")
    with pytest.raises(err.InvalidArgument, match="Expected an object"):
        parse_body(b"3")


def test_fields_selects_a_partial_response() -> None:
    body = {"nextPageToken": "t", "tuningJobs": [{"name": "a", "state": "s", "labels": {"k": "v"},
                                                   "tunedModel": {"model": "m", "endpoint": "e"}}]}
    query = parse_query(b"fields=nextPageToken,tuningJobs(name,labels,tunedModel/model)", LIST_PARAMS)
    assert json.loads(encode(body, query)) == {
        "nextPageToken": "t",
        "tuningJobs": [{"name": "a", "labels": {"k": "v"}, "tunedModel": {"model": "m"}}],
    }
    assert select(body, parse_fields("tuningJobs/name,tuningJobs/state")) == {
        "tuningJobs": [{"name": "a", "state": "s"}]
    }
    assert select(body, parse_fields("*")) == body


@pytest.mark.parametrize("text", ["a(", "a,,b", "(a)", "a/", "a b", "a)"])
def test_bad_field_selection_is_invalid_argument(text: str) -> None:
    with pytest.raises(err.InvalidArgument, match="Invalid field selection"):
        parse_fields(text)


def test_encode_compact_by_default_pretty_on_request() -> None:
    assert encode({"a": [1]}) == b'{"a":[1]}'
    pretty = parse_query(b"prettyPrint=true", frozenset())
    assert encode({"a": [1]}, pretty) == b'{\n  "a": [\n    1\n  ]\n}'
