""".reconcilerignore: parsing, matching, and errors that point at file:line:column."""

from __future__ import annotations

import pytest

from reconciler.drift.ignore import IgnoreFileError, load_ignore, parse_ignore
from reconciler.drift.report import CATEGORIES

TEXT = """\
# accepted drift
legacy-*                      # every category
exp-?    out-of-band, orphan
team-[a-c]* pending-change unmanaged
sandbox/*/*   all
9876
"""


def test_rules_with_comments_categories_and_sources():
    rules = parse_ignore(TEXT, ".reconcilerignore")
    assert [(r.pattern, sorted(r.categories), r.source) for r in rules.rules] == [
        ("legacy-*", [], ".reconcilerignore:2"),
        ("exp-?", ["orphan", "out-of-band"], ".reconcilerignore:3"),
        ("team-[a-c]*", ["pending-change", "unmanaged"], ".reconcilerignore:4"),
        ("sandbox/*/*", [], ".reconcilerignore:5"),  # "all" is the same as no categories
        ("9876", [], ".reconcilerignore:6"),
    ]


@pytest.mark.parametrize(("category", "key", "address", "job_id", "expected"), [
    ("orphan", "legacy-x", "p/l/legacy-x", "1", ".reconcilerignore:2"),
    ("out-of-band", "exp-1", "p/l/exp-1", "1", ".reconcilerignore:3"),
    ("pending-change", "exp-1", "p/l/exp-1", "1", None),  # category not listed
    ("out-of-band", "exp-12", "p/l/exp-12", "1", None),  # ? is one character
    ("pending-change", "team-b2", "p/l/team-b2", "1", ".reconcilerignore:4"),
    ("pending-change", "team-d2", "p/l/team-d2", "1", None),
    ("unmanaged", None, "sandbox/eu/55", "55", ".reconcilerignore:5"),  # "/" patterns match the address
    ("unmanaged", None, "p/l/9876", "9876", ".reconcilerignore:6"),  # an unmanaged job by its id
    ("orphan", "sandbox", "p/l/sandbox", "1", None),
])
def test_matching(category, key, address, job_id, expected):
    rule = parse_ignore(TEXT, ".reconcilerignore").match(category, key, address, job_id)
    assert (rule.source if rule else None) == expected


def test_first_matching_rule_wins():
    rules = parse_ignore("a*\na\n", "f")
    assert rules.match("orphan", "a", "p/l/a", None).source == "f:1"


@pytest.mark.parametrize(("text", "message"), [
    ("ok\nalpha  out-of-bnd\n", "f:2:8: unknown drift category 'out-of-bnd' (expected one of "
                                + ", ".join(CATEGORIES) + ", or all)"),
    ("Alpha\n", "f:1:1: invalid character 'A' in pattern 'Alpha' (keys are lowercase)"),
    ("a b\n", "f:1:3: unknown drift category 'b'"),
    ("a[b\n", "f:1:1: '[' without ']' in pattern 'a[b'"),
    ("a]\n", "f:1:1: ']' without '[' in pattern 'a]'"),
    ("p/k  orphan\n", "f:1:1: a pattern with '/' must have the form project/location/key"),
    ("a orphan,\n", "f:1:9: a category must follow ','"),
    ("a , orphan\n", "f:1:3: empty category before ','"),
    ("  , orphan\n", "f:1:3: expected a key pattern, got ','"),
    ("a;b\n", "f:1:1: invalid character ';'"),
])
def test_bad_lines_name_file_line_and_column(text, message):
    with pytest.raises(IgnoreFileError) as info:
        parse_ignore(text, "f")
    assert str(info.value).startswith(message)


def test_load_missing_file_is_empty_unless_named(tmp_path):
    missing = str(tmp_path / "nope")
    assert len(load_ignore(missing, required=False)) == 0
    with pytest.raises(IgnoreFileError, match="no such ignore file"):
        load_ignore(missing, required=True)
    bad = tmp_path / "bin"
    bad.write_bytes(b"a\n\xff\xfe\n")
    with pytest.raises(IgnoreFileError, match="not UTF-8"):
        load_ignore(str(bad), required=True)
    good = tmp_path / ".reconcilerignore"
    good.write_text("# nothing but comments\n\n   \n")
    assert len(load_ignore(str(good), required=True)) == 0
