from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from reconciler.emulator.clock import parse_rfc3339
from reconciler.emulator.filters import And, Not, Or, Restriction, compile_filter, parse


@dataclass
class FakeJob:
    labels: dict[str, str] = field(default_factory=dict)
    state: str = "JOB_STATE_PENDING"
    create_time: float = 0.0
    update_time: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    base_model: str = "gemini-2.5-flash"
    tuned_model_display_name: str = ""


T0 = parse_rfc3339("2025-01-01T00:00:00Z")
JOBS = {
    "a": FakeJob({"managed-by": "tuning-reconciler", "reconciler-key": "a", "team": "x"}, "JOB_STATE_RUNNING", T0),
    "b": FakeJob({"managed-by": "tuning-reconciler", "reconciler-key": "b"}, "JOB_STATE_SUCCEEDED", T0 + 60),
    "c": FakeJob({"team": "x"}, "JOB_STATE_FAILED", T0 + 120, base_model="gemini-2.0-flash"),
    "d": FakeJob({}, "JOB_STATE_PENDING", T0 + 180, tuned_model_display_name="bot"),
}


def matching(text: str) -> set[str]:
    predicate = compile_filter(text).predicate
    return {key for key, job in JOBS.items() if predicate(job)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {"a", "b", "c", "d"}),
        ('labels.managed-by="tuning-reconciler"', {"a", "b"}),
        ("labels.managed-by=tuning-reconciler", {"a", "b"}),
        ('labels.reconciler-key="a"', {"a"}),
        ('labels.reconciler-key!="a"', {"b", "c", "d"}),
        ("labels.team:*", {"a", "c"}),
        ('labels:"team"', {"a", "c"}),
        ('labels.reconciler-key="*"', {"a", "b"}),
        ('labels.managed-by="tuning-*"', {"a", "b"}),
        ("state=JOB_STATE_RUNNING", {"a"}),
        ("state!=JOB_STATE_RUNNING", {"b", "c", "d"}),
        ('create_time>"2025-01-01T00:01:00Z"', {"c", "d"}),
        ('create_time>="2025-01-01T00:01:00Z"', {"b", "c", "d"}),
        ('createTime<"2025-01-01T00:01:00.000001Z"', {"a", "b"}),
        ('create_time="2025-01-01T01:00:00+01:00"', {"a"}),
        ('labels.team="x" AND state=JOB_STATE_FAILED', {"c"}),
        ('labels.team="x" state=JOB_STATE_FAILED', {"c"}),  # implicit AND
        ("state=JOB_STATE_RUNNING OR state=JOB_STATE_FAILED", {"a", "c"}),
        ('NOT labels.team:*', {"b", "d"}),
        ("-labels.team:*", {"b", "d"}),
        ('(labels.team="x" OR labels.reconciler-key="b") AND NOT state=JOB_STATE_FAILED', {"a", "b"}),
        # AIP-160: OR binds tighter than AND
        ('labels.team="x" AND state=JOB_STATE_RUNNING OR state=JOB_STATE_FAILED', {"a", "c"}),
        ('base_model="gemini-2.0-flash"', {"c"}),
        ('tuned_model_display_name="bot"', {"d"}),
        ('labels.absent="x"', set()),
    ],
)
def test_filter_selects_the_expected_jobs(text: str, expected: set[str]) -> None:
    assert matching(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("labels.a=", "expected a value at position 10, found end of filter"),
        ('(labels.a="b"', "expected ')'"),
        ('labels.a="b")', "expected AND, OR or end of filter at position 13"),
        ("state=JOB_STATE_NOPE", "unknown state 'JOB_STATE_NOPE'"),
        ('name="x"', "unsupported filter field 'name'"),
        ('create_time>"yesterday"', "create_time needs an RFC 3339 timestamp"),
        ("labels.a<\"b\"", "operator '<' is not supported for labels"),
        ("state>JOB_STATE_RUNNING", "operator '>' is not supported for state"),
        ("foo", "bare value 'foo' at position 1 is not supported"),
        ('labels.a="b" AND', "expected a field name or '(' at position 17, found end of filter"),
        ('labels.a="b" & x', "unexpected character '&' at position 14"),
        ("labels=x", "the labels map supports only ':'"),
    ],
)
def test_bad_filters_raise_a_readable_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        compile_filter(text)
    assert reason in str(info.value)


def test_parse_builds_the_aip160_tree() -> None:
    tree = parse('a.b="1" c:* OR NOT d!=e')
    assert tree == And(
        (
            Restriction("a.b", "=", "1", True),
            Or((Restriction("c", ":", "*", False), Not(Restriction("d", "!=", "e", False)))),
        )
    )


def test_quoted_values_keep_escaped_quotes() -> None:
    assert parse(r'labels.k="a\"b"') == Restriction("labels.k", "=", 'a"b', True)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ('labels.managed-by="tuning-reconciler"', ("managed-by", "tuning-reconciler")),
        ('state=JOB_STATE_RUNNING AND labels.k="v"', ("k", "v")),
        ('labels.k="v" OR labels.k="w"', None),  # either may match: no single index list
        ('NOT labels.k="v"', None),
        ('labels.k="v*"', None),
        ("", None),
    ],
)
def test_label_hint_only_for_required_equalities(text: str, hint: tuple[str, str] | None) -> None:
    assert compile_filter(text).hint == hint
