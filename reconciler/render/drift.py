"""A DriftReport as text (terminal), JSON (schemas/drift-report.schema.json), Markdown
(a pull-request comment, size-bounded) or GitHub workflow annotations. Pure functions of the
report: the same report always gives the same output."""

from __future__ import annotations

import json
from typing import Any

from reconciler.drift.report import (
    CATEGORIES,
    FORMAT_VERSION,
    KINDS,
    DriftItem,
    DriftReport,
    category_title,
    count_phrase,
    headline,
)
from reconciler.model import ORPHAN, OUT_OF_BAND, PENDING, UNMANAGED, short_state, state_text
from reconciler.plan.differ import ABSENT
from reconciler.render.markdown import DEFAULT_BUDGET, Document, Table, escape
from reconciler.render.style import Style
from reconciler.text import clean

FORMATS = ("text", "json", "markdown", "github")
DRIFT_MARKER = "<!-- tuning-reconciler:drift -->"
FULL_REPORT_HINT = "Run `reconciler drift --format json` (or `--format text`) for the full report."


def _local(name: str | None) -> str:
    """`projects/N/locations/L/models/1@1` -> `models/1@1` (the location is shown beside it)."""
    if not name:
        return ""
    parts = name.split("/", 4)
    return parts[4] if len(parts) == 5 and parts[0] == "projects" and parts[2] == "locations" else name


def _states(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {short_state(s)}" for s, n in counts.items()) or "none"


def _label(item: DriftItem) -> str:
    return item.key if item.key is not None else (item.job_id or item.address)


# --- JSON ------------------------------------------------------------------------------------


def _item_json(item: DriftItem) -> dict[str, Any]:
    return {
        "category": item.category, "kind": item.kind, "address": item.address, "project": item.project,
        "location": item.location, "key": item.key, "job": item.job, "job_id": item.job_id, "state": item.state,
        "tuning_job_state": item.tuning_state,
        "detail": item.detail, "reason": item.reason, "source": str(item.source) if item.source else None,
        "field_changes": [fc.to_json() for fc in item.field_changes],
        "base_model": item.base_model, "display_name": item.display_name, "create_time": item.create_time,
        "ignored_by": item.ignored_by,
    }


def report_json(report: DriftReport) -> dict[str, Any]:
    s = report.summary
    per_location: dict[tuple[str, str], dict[str, int]] = {}
    for item in report.drift:
        counts = per_location.setdefault((item.project, item.location), {c: 0 for c in CATEGORIES})
        counts[item.category] += 1
    oldest = s.oldest_active_job
    return {
        "format_version": FORMAT_VERSION,
        "has_drift": report.has_drift,
        "headline": headline(report),
        "include_unmanaged": report.include_unmanaged,
        "counts": report.counts(),
        "ignored_counts": report.ignored_counts(),
        "problems": list(report.problems),
        "summary": {
            "jobs_by_state": s.jobs_by_state,
            "unmanaged_jobs_by_state": s.unmanaged_jobs_by_state,
            "total_billable_tokens": s.total_billable_tokens,
            "oldest_active_job": None if oldest is None else {
                "address": oldest.address, "key": oldest.key, "job": oldest.job, "state": oldest.state,
                "tuning_job_state": oldest.tuning_state,
                "create_time": oldest.create_time},
            "tuned_models": [{"address": m.address, "key": m.key, "job": m.job, "model": m.model,
                              "endpoint": m.endpoint, "current": m.current, "create_time": m.create_time}
                             for m in s.tuned_models],
            "locations": [{"project": loc.project, "location": loc.location, "jobs_by_state": loc.jobs_by_state,
                           "unmanaged_jobs_by_state": loc.unmanaged_jobs_by_state,
                           "billable_tokens": loc.billable_tokens,
                           "counts": per_location.get((loc.project, loc.location), {c: 0 for c in CATEGORIES})}
                          for loc in s.locations],
        },
        "items": [_item_json(i) for i in report.items],
    }


def render_json(report: DriftReport) -> str:
    return json.dumps(report_json(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- text ------------------------------------------------------------------------------------

_SYMBOLS = {PENDING: "~", OUT_OF_BAND: "!", ORPHAN: "-", UNMANAGED: "?"}
_COLORS = {PENDING: "33", OUT_OF_BAND: "31", ORPHAN: "35", UNMANAGED: "36"}


def _fc_value(value: Any) -> str:
    return "(unset)" if value is ABSENT else clean(json.dumps(value, ensure_ascii=False, sort_keys=True))


def _text_item(item: DriftItem, style: Style) -> list[str]:
    where = f"{item.project}/{item.location}"
    job = f"  {item.job} [{state_text(item.state, item.tuning_state)}]" if item.job else ""
    if item.category == UNMANAGED:
        extra = " ".join(x for x in (item.base_model or "", f'"{item.display_name}"' if item.display_name else "",
                                     f"created {item.create_time}" if item.create_time else "") if x)
        return [f"  {style(_COLORS[item.category], _SYMBOLS[item.category])} {clean(item.job)} "
                f"[{state_text(item.state, item.tuning_state)}] ({clean(where)}) {clean(extra)}"]
    lines = [f"  {style(_COLORS[item.category], _SYMBOLS[item.category])} {clean(item.key)} ({clean(where)}) "
             f"{item.kind}: {clean(item.detail)}{clean(job)}"]
    lines += [f"      ~ {clean(fc.path)}: {_fc_value(fc.before)} -> {_fc_value(fc.after)}" for fc in item.field_changes]
    return lines


def render_text(report: DriftReport, style: Style | None = None) -> str:
    style = style or Style(False)
    out: list[str] = []
    for category in CATEGORIES:
        items = [i for i in report.drift if i.category == category]
        if items:
            out.append(style.bold(f"{category_title(category)} ({len(items):,}):"))
            for item in items:
                out += _text_item(item, style)
            out.append("")
    if report.ignored:
        out.append(style.bold(f"Ignored ({len(report.ignored):,}):"))
        for item in report.ignored:
            out.append(f"  {clean(_label(item))} ({clean(item.project)}/{clean(item.location)}) {item.category} "
                       f"{item.kind}: ignored by {clean(item.ignored_by)}")
        out.append("")
    out += _text_summary(report)
    out.append(style("31" if report.has_drift else "32", style.bold(headline(report))))
    return "\n".join(out) + "\n"


def _text_summary(report: DriftReport) -> list[str]:
    s = report.summary
    out = ["Summary:"]
    for loc in s.locations:
        line = (f"  {clean(loc.project)}/{clean(loc.location)}: {sum(loc.jobs_by_state.values()):,} managed job(s)"
                f" ({_states(loc.jobs_by_state)})")
        if loc.unmanaged_jobs_by_state is not None:
            line += (f"; {sum(loc.unmanaged_jobs_by_state.values()):,} unmanaged"
                     f" ({_states(loc.unmanaged_jobs_by_state)})")
        out.append(line + f"; {loc.billable_tokens:,} billable tokens")
    if not s.locations:
        out.append("  no jobs")
    if not report.include_unmanaged:
        out.append("  unmanaged jobs: not checked (use --include-unmanaged)")
    if s.tuned_models:
        out.append(f"  Tuned models of SUCCEEDED jobs ({len(s.tuned_models):,}):")
        for m in s.tuned_models:
            current = "" if m.current else " (earlier job)"
            out.append(f"    {clean(m.key)}: {clean(m.model)} endpoint {clean(m.endpoint or '(none)')}{current}")
    out.append(f"  Total billable tokens (managed jobs): {s.total_billable_tokens:,}")
    if s.oldest_active_job:
        a = s.oldest_active_job
        out.append(f"  Oldest active job: {clean(a.key)} {clean(a.job)} [{state_text(a.state, a.tuning_state)}] "
                   f"created {clean(a.create_time)}")
    out.append("")
    return out


# --- Markdown --------------------------------------------------------------------------------


def _rank(item: DriftItem) -> tuple:
    return (KINDS[item.category].index(item.kind),)


def _md_rows(items: list[DriftItem]) -> tuple[list[tuple], list[tuple]]:
    rows = [(i.key, f"{i.project}/{i.location}", i.kind, i.job_id or "", state_text(i.state, i.tuning_state), i.detail)
            for i in items]
    return rows, [_rank(i) for i in items]


def render_markdown(report: DriftReport, limit: int = DEFAULT_BUDGET, hint: str = FULL_REPORT_HINT) -> str:
    s = report.summary
    icon = ":warning:" if report.has_drift else ":white_check_mark:"
    head = [DRIFT_MARKER, f"### {icon} {escape(headline(report))}", ""]
    facts = [f"- **Managed jobs:** {s.managed_jobs:,} ({escape(_states(s.jobs_by_state))})"]
    if s.unmanaged_jobs_by_state is not None:
        facts.append(f"- **Unmanaged jobs:** {sum(s.unmanaged_jobs_by_state.values()):,} "
                     f"({escape(_states(s.unmanaged_jobs_by_state))})")
    else:
        facts.append("- **Unmanaged jobs:** not checked (run with `--include-unmanaged`)")
    facts.append(f"- **Total billable tokens (managed jobs):** {s.total_billable_tokens:,}")
    if s.oldest_active_job:
        a = s.oldest_active_job
        facts.append(f"- **Oldest active job:** {escape(a.key)} ({escape(_local(a.job))}, "
                     f"{escape(state_text(a.state, a.tuning_state))}) created {escape(a.create_time)}")
    ignored = report.ignored_counts()
    if any(ignored.values()):
        parts = ", ".join(count_phrase(c, n) for c, n in ignored.items() if n)
        facts.append(f"- **Ignored:** {parts} (lifecycle.ignoreDrift or .reconcilerignore; listed below)")
    head += facts + [""]

    by_cat = {c: [i for i in report.drift if i.category == c] for c in CATEGORIES}
    tables: list[Table] = [Table(
        "Jobs by location", ("Location", "Managed jobs", "Unmanaged jobs", "Billable tokens"),
        [(f"{loc.project}/{loc.location}", _states(loc.jobs_by_state),
          "not checked" if loc.unmanaged_jobs_by_state is None else _states(loc.unmanaged_jobs_by_state),
          f"{loc.billable_tokens:,}") for loc in s.locations], priority=0)]
    columns = {
        PENDING: ("Key", "Location", "Action", "Job", "State", "Reason"),
        OUT_OF_BAND: ("Key", "Location", "Change", "Job", "State", "Detail"),
        ORPHAN: ("Key", "Location", "Action", "Job", "State", "Detail"),
    }
    priority = {OUT_OF_BAND: 1, PENDING: 2, ORPHAN: 3, UNMANAGED: 4}
    for category in CATEGORIES:
        items = by_cat[category]
        if category == UNMANAGED:
            tables.append(Table(category_title(category), ("Job", "Location", "State", "Base model", "Display name",
                                                           "Created"),
                                [(i.job_id, f"{i.project}/{i.location}", state_text(i.state, i.tuning_state), i.base_model or "",
                                  i.display_name or "", i.create_time or "") for i in items],
                                priority=priority[category]))
            continue
        rows, ranks = _md_rows(items)
        tables.append(Table(category_title(category), columns[category], rows, priority=priority[category],
                            ranks=ranks))
    fields = [(i.key, fc.path, _fc_value(fc.before), _fc_value(fc.after))
              for i in by_cat[PENDING] for fc in i.field_changes]
    tables.append(Table("Field changes of pending changes", ("Key", "Field", "Live", "Desired"), fields,
                        priority=5, collapsed=True))
    tables.append(Table("Ignored drift", ("Key or job", "Location", "Category", "Kind", "Ignored by", "Detail"),
                        [(_label(i), f"{i.project}/{i.location}", i.category, i.kind, i.ignored_by, i.detail)
                         for i in report.ignored], priority=6, collapsed=True))
    tables.append(Table("Tuned models of SUCCEEDED jobs", ("Key", "Location", "Job", "Model", "Endpoint", "Current"),
                        [(m.key, m.address.rsplit("/", 1)[0], _local(m.job), _local(m.model), _local(m.endpoint),
                          "yes" if m.current else "no (earlier job)") for m in s.tuned_models],
                        priority=7, collapsed=True))
    return Document(head=head, tables=tables, hint=hint).render(limit)


# --- GitHub workflow annotations -------------------------------------------------------------


def _gh_data(text: str) -> str:
    # Workflow-command escaping: a newline here would start a command of its own.
    return clean(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(level: str, item: DriftItem, title: str, message: str) -> str:
    props = []
    if item.source is not None:
        props.append(f"file={_gh_property(item.source.file)}")
        if item.source.line:
            props.append(f"line={item.source.line}")
            if item.source.column:
                props.append(f"col={item.source.column}")
    props.append(f"title={_gh_property(title)}")
    return f"::{level} {','.join(props)}::{_gh_data(message)}"


def render_github(report: DriftReport) -> str:
    out = []
    for item in report.items:
        where = f"{item.project}/{item.location}"
        job = f" ({item.job})" if item.job and item.category != UNMANAGED else ""
        if item.category == UNMANAGED:
            message = (f"{item.job} [{state_text(item.state, item.tuning_state)}] in {where}: {item.detail}")
        else:
            message = f"{item.key} ({where}): {item.kind}: {item.detail}{job}"
        if item.ignored_by is None:
            out.append(_annotation("warning", item, f"Drift: {category_title(item.category)} ({item.kind})",
                                   message))
        else:
            out.append(_annotation("notice", item, f"Ignored drift: {category_title(item.category)}",
                                   f"{message} [ignored by {item.ignored_by}]"))
    out.append(clean(headline(report)))
    return "\n".join(out) + "\n"


def render(report: DriftReport, fmt: str, style: Style | None = None, limit: int = DEFAULT_BUDGET) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report, limit=limit)
    if fmt == "github":
        return render_github(report)
    if fmt == "text":
        return render_text(report, style)
    raise ValueError(f"unknown drift format {fmt!r} (expected one of {', '.join(FORMATS)})")
