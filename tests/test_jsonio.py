"""The one bounded JSON reader: the same values as json.loads, a JsonError for everything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler import jsonio

values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                      max_leaves=30)


@given(values)
def test_reads_what_json_reads(value):
    text = json.dumps(value)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(text.encode()) == json.loads(text)


@given(st.integers(min_value=jsonio.MAX_DEPTH + 1, max_value=200_000), st.sampled_from("[{"))
def test_anything_nested_past_the_limit_is_a_json_error(depth, opener):
    closer = {"[": "]", "{": "}"}[opener]
    inner = '"a": ' if opener == "{" else ""
    text = (opener + inner) * depth + "1" + closer * depth if opener == "[" else \
        '{"a": ' * depth + "1" + "}" * depth
    with pytest.raises(jsonio.JsonError, match="nested deeper than"):
        jsonio.loads(text)


def test_nesting_up_to_the_limit_is_read():
    text = "[" * jsonio.MAX_DEPTH + "]" * jsonio.MAX_DEPTH
    assert jsonio.loads(text) is not None


def test_brackets_inside_strings_do_not_count():
    assert jsonio.loads(json.dumps(["[" * 1000, "{" * 1000])) == ["[" * 1000, "{" * 1000]


@pytest.mark.parametrize("data, words", [(b"", "line 1 column 1"), (b"{", "line 1"), (b"\xff", "not UTF-8"),
                                         ("[1,]", "line 1 column 4"), ("NaNx", "line 1")])
def test_bad_text_is_a_json_error_with_its_position(data, words):
    with pytest.raises(jsonio.JsonError, match=words):
        jsonio.loads(data)
