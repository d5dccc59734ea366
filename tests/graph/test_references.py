"""Parsing `${jobs.KEY.OUTPUT}` references inside strings, escapes, and substitution."""

from __future__ import annotations

import pytest

from reconciler.graph.references import (
    Reference,
    ReferenceSyntaxError,
    Template,
    dotted,
    get_path,
    parse,
    set_paths,
    templates,
    walk_strings,
)


def test_a_whole_string_reference():
    t = parse("${jobs.base-sft.tunedModel.model}")
    assert t.parts == (Reference("base-sft", "tunedModel.model"),)
    assert t.text() == "${jobs.base-sft.tunedModel.model}"


def test_references_inside_text_and_spaces_inside_the_braces():
    t = parse("from ${ jobs.a.name } at ${jobs.b.tunedModel.endpoint}!")
    assert t.parts == ("from ", Reference("a", "name"), " at ", Reference("b", "tunedModel.endpoint"), "!")


def test_full_address_keys_may_hold_dots_in_the_project():
    t = parse("${jobs.my.project/us-central1/stage-1.tunedModel.model}")
    assert t.refs == (Reference("my.project/us-central1/stage-1", "tunedModel.model"),)


def test_dollar_dollar_brace_is_a_literal_and_round_trips():
    t = parse("cost $${PRICE} for ${jobs.a.name}")
    assert t.parts == ("cost ${PRICE} for ", Reference("a", "name"))
    assert parse(t.text()) == t  # written back with the escape
    plain = parse("only $${X} here")
    assert plain.refs == () and plain.text() == "only ${X} here"
    assert parse("a $ sign and $$ two").text() == "a $ sign and $$ two"  # only `${` is special


def test_substitute_fills_values_or_respells_references():
    t = parse("x ${jobs.a.name} y ${jobs.b.name}")
    filled = t.substitute(lambda r: "A" if r.key == "a" else r)
    assert filled.parts == ("x A y ", Reference("b", "name"))
    assert filled.text() == "x A y ${jobs.b.name}"
    assert filled.substitute(lambda r: "$${B}").text() == "x A y $${B}"  # values are never re-parsed
    full = t.substitute(lambda r: Reference(f"p/l/{r.key}", r.output))
    assert full.text() == "x ${jobs.p/l/a.name} y ${jobs.p/l/b.name}"


@pytest.mark.parametrize("text, message", [
    ("${jobs.a.name", "is not closed by `}`"),
    ("${env.HOME}", "`${env.HOME}` is not a reference: write `${jobs.KEY.OUTPUT}`"),
    ("${}", "is not a reference"),
    ("${jobs.Bad_Key.name}", "`Bad_Key` is not a job key"),
    ("${jobs..name}", "`(empty)` is not a job key"),
    ("${jobs.a.tunedModel.checkpoints}", "`tunedModel.checkpoints` is not an output of a job (outputs: "
                                         "`tunedModel.model`, `tunedModel.endpoint`, `name`)"),
    ("${jobs.a}", "`(nothing)` is not an output"),
    ("${jobs.P/l/a.name}", "`P/l/a` is not a project/location/key address"),
    ("${jobs.p/a.name}", "is not a project/location/key address"),
])
def test_malformed_references_say_how_to_write_one(text, message):
    with pytest.raises(ReferenceSyntaxError, match=None) as info:
        parse(text)
    assert message in str(info.value)


def test_templates_walks_every_string_but_not_map_keys():
    spec = {"preTunedModel": {"tunedModelName": "${jobs.a.tunedModel.model}"},
            "description": "plain", "labels": {"${jobs.a.name}": "v"},
            "list": ["x", "${jobs.b.name}", {"deep": "${oops}"}]}
    found, errors = templates(spec)
    assert [(p, t.refs) for p, t in found] == [
        (("preTunedModel", "tunedModelName"), (Reference("a", "tunedModel.model"),)),
        (("list", 1), (Reference("b", "name"),))]
    assert [p for p, _ in errors] == [("list", 2, "deep")]
    assert [p for p, _ in walk_strings(spec)] == [("preTunedModel", "tunedModelName"), ("list", 1), ("list", 2, "deep")]


def test_paths_get_set_and_print():
    spec = {"a": {"b": "x"}, "l": [{"c": "y"}], "keep": {"k": 1}}
    out = set_paths(spec, {("a", "b"): "X", ("l", 0, "c"): "Y"})
    assert out == {"a": {"b": "X"}, "l": [{"c": "Y"}], "keep": {"k": 1}}
    assert spec == {"a": {"b": "x"}, "l": [{"c": "y"}], "keep": {"k": 1}}  # never changed in place
    assert out["keep"] is spec["keep"]  # what is not on a path is shared
    assert get_path(out, ("l", 0, "c")) == "Y" and get_path(out, ("l", 3)) is None and get_path(out, ("z",)) is None
    assert dotted(("l", 0, "c")) == "l[0].c"
    assert set_paths(spec, {}) is spec


def test_template_of_no_parts_is_empty():
    assert Template(()).text() == "" and parse("").parts == ()
