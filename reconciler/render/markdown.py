"""Markdown for pull-request comments: safe cells, tables, <details>, and a size bound.

Plans (`plan_markdown`) and drift reports (`render.drift`) share this one style: a
headline with counts, a table per kind of row, long material folded into <details>. GitHub
refuses comments over 65,536 characters, so a `Document` that would be larger keeps its head
and the most important rows and says how many rows it left out and how to see them all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.text import clean

GITHUB_COMMENT_LIMIT = 65_536
# Room for what a CI step may wrap around the report (a marker, a heading, a link to the run).
DEFAULT_BUDGET = 60_000
FLOOR = 10  # rows of every table kept before any table gets more (when space allows)
CELL_LIMIT = 300  # characters of one cell before it is cut (an error message can be huge)

# Characters with a meaning in (GitHub-flavoured) Markdown inline text; escaped with "\".
# (Others, like "#", "-", "!" or "(", only matter at a line start or next to an escaped "[".)
_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]|~$])")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_MENTION = re.compile(r"(?<![A-Za-z0-9])@")  # "a@b" and "model@1" are no mentions


def escape(value: Any, limit: int = CELL_LIMIT) -> str:
    """Text from a manifest or the API made inert inside a table cell: no HTML (so no
    `<!-- -->`, `<details>` or `<img>`), no links, emphasis or code spans, no column breaks
    (`|`), no line breaks, no terminal escapes, and no @mentions that would notify people."""
    text = clean(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_PUNCTUATION.sub(r"\\\1", text)
    text = _MENTION.sub("@\u200b", text)  # a zero-width space stops GitHub's mention linking
    text = text.replace("\t", " ")
    return _NEWLINES.sub("<br>", text)


def table_row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(escape(c) or " " for c in cells) + " |"


def _size(text: str) -> int:
    # GitHub counts characters; UTF-8 bytes are never fewer, so bounding them is safe.
    return len(text.encode("utf-8"))


@dataclass
class Table:
    """A titled table. `rank[i]` orders row i for keeping when space runs out (smaller first;
    default: table priority, then row order). Rows are shown in the order given."""

    title: str  # our own text (not escaped), e.g. "Pending changes (3)"
    headers: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    priority: int = 0
    collapsed: bool = False  # inside <details>, closed
    ranks: list[tuple] | None = None
    note: str = ""  # our own Markdown, shown under the title

    def row_lines(self) -> list[str]:
        return [table_row(r) for r in self.rows]

    def frame(self, shown: int, bound: bool = False) -> tuple[list[str], list[str]]:
        """The lines before and after the rows; with `bound`, the longest they can be."""
        total = len(self.rows)
        count = f"{total:,}" if shown == total and not bound else f"{total if bound else shown:,} of {total:,}"
        if self.collapsed:
            before = ["<details>", f"<summary>{self.title} ({count})</summary>", ""]
        else:
            before = [f"#### {self.title} ({count})", ""]
        if self.note:
            before += [self.note, ""]
        if shown or bound:
            before += [table_row(self.headers), "|" + "|".join("---" for _ in self.headers) + "|"]
        after = []
        if shown < total or bound:
            after += ["", f"_…and {total if bound else total - shown:,} more row(s) not shown._"]
        after += ["", "</details>", ""] if self.collapsed else [""]
        return before, after


@dataclass
class Document:
    head: list[str]  # our own Markdown lines, always kept
    tables: list[Table]
    hint: str  # how to get the full report, shown when rows were left out
    tail: list[str] = field(default_factory=list)

    def render(self, limit: int = DEFAULT_BUDGET) -> str:
        """At most `limit` UTF-8 bytes (and so characters), the most important rows kept."""
        lines = [t.row_lines() for t in self.tables]
        total_rows = sum(len(x) for x in lines)
        fixed = _size("\n".join(self.head + self.tail)) + _size(self._note(0, total_rows)) + 4
        for table in self.tables:
            before, after = table.frame(0, bound=True)
            fixed += _size("\n".join(before + after)) + 2
        budget = limit - fixed
        # Every table first gets its FLOOR best rows (so one huge category cannot starve the
        # others), then the rest go by table priority and rank.
        order = []
        for ti, t in enumerate(self.tables):
            by_rank = sorted(range(len(t.rows)), key=lambda i, t=t: ((t.ranks[i] if t.ranks else ()), i))
            order += [(pos >= FLOOR, t.priority, (t.ranks[i] if t.ranks else ()), ti, i) for pos, i in enumerate(by_rank)]
        order.sort()
        keep: list[set[int]] = [set() for _ in self.tables]
        for _, _, _, ti, i in order:
            cost = _size(lines[ti][i]) + 1
            if cost > budget:
                break  # by importance: never a lesser row in place of a greater one
            budget -= cost
            keep[ti].add(i)
        kept = sum(len(k) for k in keep)
        out = list(self.head)
        for table, rows, chosen in zip(self.tables, lines, keep):
            if not table.rows:
                continue
            before, after = table.frame(len(chosen))
            out += before + [r for i, r in enumerate(rows) if i in chosen] + after
        note = self._note(kept, total_rows)
        if note:
            out += [note, ""]
        out += self.tail
        text = "\n".join(out).rstrip("\n") + "\n"
        if _size(text) > limit:  # the head alone is too large: a bug in the caller
            raise ValueError(f"markdown report of {_size(text)} bytes exceeds the limit of {limit}")
        return text

    def _note(self, kept: int, total: int) -> str:
        if kept >= total:
            return ""
        return (f"> [!NOTE]\n> {total - kept:,} of {total:,} rows were left out to keep this comment under "
                f"GitHub's {GITHUB_COMMENT_LIMIT:,}-character limit. {self.hint}")
