"""A plan as a pull-request comment: headline, changes, notes and field changes, bounded to
GitHub's comment size (the Markdown style is `render.markdown`'s)."""

from __future__ import annotations

import json
from typing import Any

from reconciler.model import short_state
from reconciler.plan.differ import ABSENT
from reconciler.plan.model import Action, Plan, Reason
from reconciler.render.graph import plan_mermaid
from reconciler.render.markdown import DEFAULT_BUDGET, Document, Table

PLAN_MARKER = "<!-- tuning-reconciler:plan -->"
PLAN_HINT = "Run `reconciler plan` (or `reconciler plan --json`) for the full plan."


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(unset)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _flatten(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in sorted(value.items()) for leaf in _flatten(v, f"{path}.{k}" if path else k)]
    return [(path, value)]


def _known_after(change, path: str) -> str | None:
    """`(known after KEY succeeds)` for a field a waiting change cannot fill in yet."""
    if change is None:
        return None
    from reconciler.graph.references import dotted
    from reconciler.plan.inputs import known_after_text

    return next((known_after_text(i) for i in change.inputs if i.value is None and dotted(i.path) == path), None)


def _where(project: str, location: str) -> str:
    return f"{project}/{location}"


def render_plan_markdown(plan: Plan, limit: int = DEFAULT_BUDGET, hint: str = PLAN_HINT) -> str:
    """A plan as a pull-request comment (headline, changes, notes, field changes), bounded."""
    actionable = plan.actionable
    notes = [c for c in plan.changes if c.action is Action.NOOP and c.reason is not Reason.UNCHANGED]
    if plan.problems:
        icon = ":x:"
    elif actionable:
        icon = ":memo:"
    else:
        icon = ":white_check_mark:"
    head = [PLAN_MARKER, f"### {icon} {plan.summary()}", ""]
    if plan.problems:
        head += [f"**This plan cannot be applied: {len(plan.problems):,} error(s).**", ""]
    tables = [
        Table("Errors", ("Address", "Error"), [(p.address, p.message) for p in plan.problems], priority=0),
        Table("Changes", ("Action", "Key", "Location", "Job", "State", "Reason"),
              [(c.action.value, c.key, _where(c.project, c.location), c.job.name if c.job else "",
                short_state(c.job.state if c.job else None), c.detail) for c in actionable], priority=1),
        Table("Notes (no action)", ("Key", "Location", "Job", "State", "Note"),
              [(c.key, _where(c.project, c.location), c.job.name if c.job else "",
                short_state(c.job.state if c.job else None), c.detail) for c in notes], priority=2),
    ]
    fields: list[tuple[str, str, str, str]] = []
    by_key = {c.key: c for c in actionable if c.waiting}
    for c in actionable:
        if c.field_changes:
            fields += [(c.key, fc.path, _value(fc.before), _value(fc.after)) for fc in c.field_changes]
        elif c.action is Action.CREATE and c.after:
            fields += [(c.key, path, "(unset)", _value(v)) for path, v in _flatten(c.after)]
    fields = [(k, path, before, _known_after(by_key.get(k), path) or after) for k, path, before, after in fields]
    tables.append(Table("Field changes", ("Key", "Field", "Before", "After"), fields, priority=3, collapsed=True))
    graph = plan_mermaid(plan.changes)
    tail = ["#### Job graph", "", "```mermaid", *graph, "```", ""] if graph else []
    return Document(head=head, tables=tables, hint=hint, tail=tail).render(limit)
