"""The shared Markdown renderer: inert cells, the size bound, and plans as PR comments."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from reconciler.plan.differ import FieldChange
from reconciler.plan.model import Action, Change, JobRef, Plan, PlanProblem, Reason
from reconciler.render.markdown import FLOOR, GITHUB_COMMENT_LIMIT, Document, Table, escape, table_row
from reconciler.render.plan_markdown import PLAN_MARKER, render_plan_markdown

# GitHub-like: raw HTML allowed (so that an escaping mistake would show), tables on.
MD = MarkdownIt("commonmark", {"html": True}).enable("table")

NASTY = ("a|b <img src=x onerror=alert(1)> <!-- hidden --> `code` [link](http://evil) **bold** @octocat "
         "\x1b[31mred\x1b[0m\nsecond line\r\nthird </details> $x$ \\|")


def cells_of(row_html: str) -> list[str]:
    return re.findall(r"<td>(.*?)</td>", row_html, flags=re.S)


def test_escaped_cell_is_inert_and_stays_one_cell():
    html = MD.render("\n".join([table_row(["h1", "h2"]), "|---|---|", table_row([NASTY, "ok"])]))
    cells = cells_of(html)
    assert len(cells) == 2 and cells[1] == "ok"
    text = cells[0]
    for bad in ("<img", "<!--", "<code>", "<a ", "<strong>", "</details>", "\x1b"):
        assert bad not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "a|b" in text
    assert "@\u200boctocat" in text  # no mention
    assert text.count("<br>") == 2  # newlines kept as line breaks inside the cell
    assert "[link](http://evil)" in text and "`code`" in text  # shown literally


def test_escape_cuts_long_values_and_keeps_emails_and_versions():
    assert escape("x" * 1000).endswith("…") and len(escape("x" * 1000)) == 300
    assert escape("models/1@1 a@b") == "models/1@1 a@b"
    assert escape(None) == "None" and escape(42) == "42"


def _doc(rows: int, cell: str = "x" * 50) -> Document:
    return Document(head=["### head", ""], hint="Run the full thing.", tables=[
        Table("Important", ("A", "B"), [(f"imp-{i}", cell) for i in range(rows)], priority=0),
        Table("Less", ("A",), [(f"less-{i}",) for i in range(rows)], priority=1, collapsed=True),
    ])


def test_small_document_is_complete_without_a_note():
    text = _doc(3).render()
    assert "#### Important (3)" in text and "<summary>Less (3)</summary>" in text
    assert "left out" not in text and "imp-2" in text and "less-2" in text


@pytest.mark.parametrize("limit", [2_000, 10_000, GITHUB_COMMENT_LIMIT])
def test_large_document_keeps_head_and_most_important_rows_under_the_limit(limit):
    text = _doc(5_000).render(limit)
    assert len(text.encode()) <= limit and text.startswith("### head")
    kept_imp = len(re.findall(r"^\| imp-", text, flags=re.M))
    kept_less = len(re.findall(r"^\| less-", text, flags=re.M))
    # Every table keeps its FLOOR first rows; all further space goes to the more important table.
    assert kept_less == FLOOR and kept_imp > FLOOR
    assert f"<summary>Less ({FLOOR} of 5,000)</summary>" in text and "| less-9 |" in text
    assert f"#### Important ({kept_imp:,} of 5,000)" in text
    assert f"_…and {5_000 - kept_imp:,} more row(s) not shown._" in text
    assert f"{10_000 - kept_imp - FLOOR:,} of 10,000 rows were left out" in text and "Run the full thing." in text
    assert "| imp-0 |" in text  # rows are kept in order


def test_ranks_choose_which_rows_survive():
    rows = [(f"low-{i}",) if i % 2 else (f"high-{i}",) for i in range(40)]
    table = Table("T", ("A",), rows, ranks=[(i % 2,) for i in range(40)])
    doc = Document(head=["h"], tables=[table], hint="hint")
    full = doc.render()
    assert full.index("low-1 ") < full.index("high-2 ")  # shown in the given order
    cut = doc.render(len(full.encode()) - 1)
    kept = re.findall(r"^\| ((?:high|low)-\d+) \|", cut, flags=re.M)
    lows = [k for k in kept if k.startswith("low")]
    assert all(f"high-{i}" in kept for i in range(0, 40, 2)) and 0 < len(lows) < 20
    assert lows == [f"low-{i}" for i in range(1, 2 * len(lows), 2)]  # equal ranks: first come first kept
    small = doc.render(300)
    assert 0 < small.count("| high-") < 20 and "| low-" not in small


def test_a_huge_table_does_not_starve_a_small_one():
    doc = Document(head=["h"], hint="hint", tables=[
        Table("Big", ("A",), [(f"big-{i}",) for i in range(5_000)], priority=0),
        Table("Small", ("A",), [("small-0",), ("small-1",)], priority=1)])
    text = doc.render(2_000)
    assert "#### Small (2)" in text and "| small-1 |" in text and "#### Big (" in text


def test_a_head_too_large_for_the_limit_is_an_error():
    with pytest.raises(ValueError, match="exceeds the limit"):
        Document(head=["x" * 100], tables=[], hint="").render(50)


def _change(key: str, action: Action, reason: Reason, detail: str, **kw) -> Change:
    return Change(address=f"p/l/{key}", key=key, project="p", location="l", action=action, reason=reason,
                  detail=detail, **kw)


def test_plan_markdown_headline_tables_and_details():
    plan = Plan(changes=[
        _change("alpha", Action.CREATE, Reason.NEW_KEY, "no job for this key yet",
                after={"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t"}}),
        _change("beta", Action.REPLACE, Reason.SPEC_CHANGED, "spec changed",
                job=JobRef("projects/1/locations/l/tuningJobs/9", "JOB_STATE_RUNNING"),
                field_changes=(FieldChange("description", "old", "new"),)),
        _change("gamma", Action.NOOP, Reason.JOB_FAILED_REPORTED, "job FAILED; onFailure=report"),
        _change("delta", Action.NOOP, Reason.UNCHANGED, "job SUCCEEDED, spec unchanged"),
    ])
    text = render_plan_markdown(plan)
    assert text.startswith(PLAN_MARKER + "\n### :memo: Plan: 1 to create, 1 to replace, 0 to cancel, 0 to rebase.")
    assert "| create | alpha | p/l |   |   | no job for this key yet |" in text
    assert "| replace | beta | p/l | projects/1/locations/l/tuningJobs/9 | RUNNING | spec changed |" in text
    assert "#### Notes (no action) (1)" in text and "gamma" in text and "delta" not in text
    assert "<summary>Field changes (3)</summary>" in text
    assert '| beta | description | "old" | "new" |' in text
    assert '| alpha | supervisedTuningSpec.trainingDatasetUri | (unset) | "gs://b/t" |' in text
    assert render_plan_markdown(plan) == text


def test_plan_markdown_without_changes_and_with_problems():
    assert "### :white_check_mark: No changes." in render_plan_markdown(Plan(changes=[]))
    blocked = Plan(changes=[_change("a", Action.NOOP, Reason.SPEC_CHANGED, "spec changed")],
                   problems=[PlanProblem("p/l/a", "preventCancel is true <b>")])
    text = render_plan_markdown(blocked)
    assert "### :x: No changes." in text and "cannot be applied: 1 error(s)" in text
    assert "| p/l/a | preventCancel is true &lt;b&gt; |" in text


def test_plan_markdown_is_bounded():
    changes = [_change(f"key-{i:05d}", Action.CREATE, Reason.NEW_KEY, "no job for this key yet " + "x" * 80,
                       after={"baseModel": "gemini-2.5-flash", "description": "d" * 100}) for i in range(5_000)]
    text = render_plan_markdown(Plan(changes=changes))
    assert len(text) < GITHUB_COMMENT_LIMIT and "rows were left out" in text
    assert "Run `reconciler plan`" in text and "key-00000" in text
