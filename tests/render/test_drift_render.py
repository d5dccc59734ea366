"""Drift report formats from hand-made reports: JSON against its schema, text, Markdown, GitHub."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from reconciler.apischema.normalize import spec_hash
from reconciler.drift.ignore import parse_ignore
from reconciler.drift.report import CATEGORIES, KINDS, build_report
from reconciler.model import DesiredJob, SourcePos
from reconciler.plan.live import LiveJob, LiveView
from reconciler.plan.planner import plan
from reconciler.render.drift import DRIFT_MARKER, FORMATS, render, render_github, render_json, render_markdown
from reconciler.render.markdown import GITHUB_COMMENT_LIMIT
from reconciler.render.style import Style
from reconciler.state.model import State, StateEntry

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "drift-report.schema.json").read_text())
P, L = "proj", "us-central1"
SPEC = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://bkt/train.jsonl"}}
EVIL = "evil <!-- x --> | `tick` [l](http://e) @someone\n::error::injected\x1b[2J\r\n%0A"


def raw_job(n: int, key: str | None, state: str, **extra) -> dict:
    labels = {"managed-by": "tuning-reconciler", "reconciler-key": key, "reconciler-spec": spec_hash(SPEC)} \
        if key else {"owner": "someone"}
    return {"name": f"projects/123/locations/{L}/tuningJobs/{n}", "state": state, **SPEC, "labels": labels,
            "createTime": f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z", **extra}


def world(n_orphans: int = 1, n_unmanaged: int = 1):
    """Every category at once: a pending create, an out-of-band failure with a hostile message,
    orphans, unmanaged jobs (one with a hostile display name), one ignored item."""
    failed = LiveJob.from_api(raw_job(1, "failed", "JOB_STATE_FAILED", error={"code": 13, "message": EVIL}))
    done = LiveJob.from_api(raw_job(2, "done", "JOB_STATE_SUCCEEDED", tunedModel={
        "model": f"projects/123/locations/{L}/models/5@1", "endpoint": f"projects/123/locations/{L}/endpoints/6"},
        tuningDataStats={"supervisedTuningDataStats": {"totalBillableTokenCount": "1234"}}))
    orphans = [LiveJob.from_api(raw_job(100 + i, f"orphan-{i:05d}", "JOB_STATE_SUCCEEDED")) for i in range(n_orphans)]
    hand = [LiveJob.from_api(raw_job(100_000 + i, None, "JOB_STATE_RUNNING",
                                     tunedModelDisplayName=EVIL if i == 0 else f"hand-{i}"))
            for i in range(n_unmanaged)]
    desired = [DesiredJob(k, P, L, SPEC, source=SourcePos(f"manifests/{k},x.yaml", 3, 1))
               for k in ("failed", "done", "new", "skipped")]
    entries = [StateEntry(j.key or "", P, L, j.name, spec_hash(SPEC), "JOB_STATE_RUNNING")
               for j in [failed, done, *orphans]]
    state = State(entries={e.address: e for e in entries})
    live = LiveView(listed={(P, L): [failed, done, *orphans]})
    rules = parse_ignore("skipped pending-change\n", ".reconcilerignore")
    return build_report(desired, state, live, plan(desired, state, live), unmanaged={(P, L): hand}, rules=rules)


def test_json_matches_the_schema_and_the_schema_matches_the_code():
    report = world()
    data = json.loads(render_json(report))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["format_version"] == "1.0" and data["has_drift"] is True
    assert data["counts"] == {"pending-change": 1, "out-of-band": 1, "orphan": 1, "unmanaged": 1}
    assert data["ignored_counts"]["pending-change"] == 1
    assert data["summary"]["total_billable_tokens"] == 1234
    item = SCHEMA["$defs"]["item"]["properties"]
    assert item["category"]["enum"] == list(CATEGORIES)
    assert set(item["kind"]["enum"]) == {k for ks in KINDS.values() for k in ks}
    broken = {**data, "counts": {**data["counts"], "orphan": -1}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(broken)


def test_text_has_every_category_no_escapes_unless_coloured():
    report = world()
    plain = render(report, "text")
    for title in ("Pending changes (1):", "Out-of-band changes (1):", "Orphans (1):", "Unmanaged jobs (1):",
                  "Ignored (1):", "Summary:"):
        assert title in plain
    assert "\x1b" not in plain and "ignored by .reconcilerignore:1" in plain
    assert "Total billable tokens (managed jobs): 1,234" in plain
    assert plain.rstrip().endswith("Drift: 1 pending change, 1 out-of-band change, 1 orphan, 1 unmanaged job "
                                   "(1 ignored).")
    coloured = render(report, "text", style=Style(True))
    assert "\x1b[1m" in coloured and "\x1b[2J" not in coloured  # ours only, never the job's


def test_markdown_is_injection_safe():
    text = render_markdown(world())
    assert text.startswith(DRIFT_MARKER + "\n### :warning: Drift:")
    assert text.count("<!--") == 1  # only our marker
    assert "&lt;!-- x --&gt; \\| \\`tick\\` \\[l\\](http://e) @\u200bsomeone<br>::error::injected?\\[2J?<br>" in text
    assert "\x1b" not in text


def test_markdown_tables_keep_their_column_counts():
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(render_markdown(world()))
    for table in re.findall(r"<table>(.*?)</table>", html, flags=re.S):
        widths = {len(re.findall(r"<t[hd]>", row)) for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)}
        assert len(widths) == 1, table
    assert "<img" not in html and "<a href" not in html


def test_markdown_of_5000_drift_items_stays_under_the_comment_limit():
    report = world(n_orphans=2_500, n_unmanaged=2_500)
    assert len(report.drift) == 5_002
    text = render_markdown(report)
    assert len(text) < GITHUB_COMMENT_LIMIT and len(text.encode()) < GITHUB_COMMENT_LIMIT
    assert "### :warning: Drift: 1 pending change, 1 out-of-band change, 2,500 orphans, 2,500 unmanaged jobs" in text
    assert "- **Total billable tokens (managed jobs):** 1,234" in text
    # The most important rows survive: out-of-band and pending first, orphans next, unmanaged last.
    assert "#### Out-of-band changes (1)" in text and "#### Pending changes (1)" in text
    kept = int(re.search(r"#### Orphans \(([\d,]+) of 2,500\)", text).group(1).replace(",", ""))
    assert kept > 100 and "#### Unmanaged jobs (10 of 2,500)" in text  # the least important: a sample
    left = re.search(r"([\d,]+) of ([\d,]+) rows were left out", text)
    assert left and "reconciler drift --format json" in text
    assert render_markdown(report) == text


def test_github_annotations_escape_workflow_commands():
    out = render_github(world())
    lines = out.splitlines()
    assert len(lines) == 5 + 1  # four drift items, one ignored, the headline
    failed = next(line for line in lines if "failed" in line and line.startswith("::warning"))
    assert failed.startswith("::warning file=manifests/failed%2Cx.yaml,line=3,col=1,title=Drift%3A Out-of-band")
    assert "%0A::error::injected?[2J?%0A%250A" in failed  # one line; "%" itself escaped
    assert sum(1 for line in lines if line.startswith("::notice ")) == 1
    assert lines[-1] == "Drift: 1 pending change, 1 out-of-band change, 1 orphan, 1 unmanaged job (1 ignored)."


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_deterministic(fmt):
    assert render(world(3, 3), fmt) == render(world(3, 3), fmt)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown drift format"):
        render(world(), "xml")
