"""Plans as Terraform-like text (colour only on a terminal), as JSON, and what `plan
--refresh-only` found changed outside the tool."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from reconciler.drift.outside import OutsideChange
from reconciler.model import short_state
from reconciler.plan.differ import ABSENT
from reconciler.plan.model import Action, Change, Plan, Reason
from reconciler.render.style import Style, use_color
from reconciler.text import clean

SYMBOLS = {
    Action.CREATE: "+", Action.REPLACE: "-/+", Action.CANCEL: "-", Action.REBASE: "~",
    Action.ADOPT: "<=", Action.FORGET: ".", Action.NOOP: " ",
}
PHRASES = {
    Action.CREATE: "will be created", Action.REPLACE: "will be replaced", Action.CANCEL: "will be cancelled",
    Action.REBASE: "will be rebased", Action.ADOPT: "will be adopted into state",
    Action.FORGET: "will no longer be tracked", Action.NOOP: "has no changes",
}
COLORS = {
    Action.CREATE: "32", Action.REPLACE: "33", Action.CANCEL: "31", Action.REBASE: "36",
    Action.ADOPT: "34", Action.FORGET: "2", Action.NOOP: "0",
}


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(unset)"
    return clean(json.dumps(value, ensure_ascii=False, sort_keys=True))


def _flatten(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in sorted(value.items()) for leaf in _flatten(v, f"{path}.{k}" if path else k)]
    return [(path, value)]


def _pending_values(change: Change) -> dict[str, str]:
    """Field path -> `(known after KEY succeeds)` for the fields a waiting change cannot fill yet."""
    from reconciler.graph.references import dotted
    from reconciler.plan.inputs import known_after_text

    return {dotted(i.path): known_after_text(i) for i in change.inputs if i.value is None}


def render_change(change: Change, style: Style) -> list[str]:
    sym = SYMBOLS[change.action]
    color = COLORS[change.action]
    where = f"{change.project}/{change.location}"
    after = (f" once {' and '.join(clean(u.rsplit('/', 1)[-1]) for u in change.waits_for)} "
             f"{'has' if len(change.waits_for) == 1 else 'have'} succeeded"
             if change.waiting else "")
    lines = [f"  {style.bold('# ' + clean(change.key))} ({clean(where)}) {PHRASES[change.action]}{after}"]
    head = f"  {style(color, sym)} {clean(change.key)}"
    if change.job is not None:
        head += f"  {clean(change.job.name)} [{clean(short_state(change.job.state))}]"
    lines.append(head)
    lines.append(f"      reason: {clean(change.detail)}")
    pending = _pending_values(change) if change.inputs else {}
    if change.field_changes:
        for fc in change.field_changes:
            new = pending[fc.path] if fc.path in pending else _value(fc.after)
            lines.append(f"      {style('33', '~')} {clean(fc.path)}: {_value(fc.before)} -> {clean(new)}")
    elif change.action is Action.CREATE and change.after:
        for path, value in _flatten(change.after):
            lines.append(f"      {style('32', '+')} {clean(path)}: {clean(pending.get(path) or _value(value))}")
    return lines


def render_plan(plan: Plan, style: Style) -> str:
    out: list[str] = []
    actionable = plan.actionable
    notes = [c for c in plan.changes if c.action is Action.NOOP and c.reason is not Reason.UNCHANGED]
    if actionable:
        out.append("tuning-reconciler will perform the following actions:")
        out.append("")
        for change in actionable:
            out.extend(render_change(change, style))
            out.append("")
    if notes:
        out.append("Notes (no action):")
        for change in notes:
            out.append(f"  - {clean(change.key)}: {clean(change.detail)}")
        out.append("")
    for problem in plan.problems:
        out.append(style("31", f"Error: {clean(problem.address)}: {clean(problem.message)}"))
    if plan.problems:
        blocked = {p.address for p in plan.problems}
        if any(c.action.changes_anything and c.address not in blocked for c in plan.changes):
            out.append("Nothing is applied while a problem stands; `--target KEY` applies other keys meanwhile.")
        out.append("")
    out.append(style.bold(plan.summary()))
    return "\n".join(out) + "\n"


def print_plan(plan: Plan, stream: TextIO | None = None, no_color: bool = False) -> None:
    stream = stream or sys.stdout
    stream.write(render_plan(plan, Style(use_color(stream, no_color))))
    stream.flush()


def plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def print_outside_changes(found: list[OutsideChange], out: TextIO, as_json: bool = False) -> None:
    if as_json:
        out.write(json.dumps({"format_version": "1.0", "outside_changes": [f.to_json() for f in found]},
                             indent=2, sort_keys=True) + "\n")
        return
    if not found:
        out.write("No changes. State matches what exists in Vertex AI.\n")
        return
    out.write("Changes outside tuning-reconciler since the last apply:\n\n")
    for f in found:
        out.write(f"  ~ {clean(f.key)}: {clean(f.detail)} ({clean(f.job_name)})\n")
    out.write(f"\n{len(found)} outside change(s).\n")
