"""Human output for plans: Terraform-like text, colour only on a TTY, and safe strings."""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any, TextIO

from reconciler.plan.actions import Action, Reason
from reconciler.plan.differ import ABSENT
from reconciler.plan.model import Change, Plan

# C0/C1 control characters (ESC included) would let a key or label rewrite the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

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


def clean(text: Any) -> str:
    """Printable form of a value from a manifest or the API (no escape sequences)."""
    return _CONTROL.sub("?", str(text))


def key_labels(items: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """Display label per address for (address, key, location) items: the key, or `key (location)`
    when the same key is in several locations, so progress lines stay unambiguous."""
    items = list(items)
    counts = Counter(key for _, key, _ in items)
    return {address: clean(key if counts[key] == 1 else f"{key} ({location})")
            for address, key, location in items}


def use_color(stream: TextIO, no_color: bool = False) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self("1", text)


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(unset)"
    return clean(json.dumps(value, ensure_ascii=False, sort_keys=True))


def _flatten(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in sorted(value.items()) for leaf in _flatten(v, f"{path}.{k}" if path else k)]
    return [(path, value)]


def render_change(change: Change, style: Style) -> list[str]:
    sym = SYMBOLS[change.action]
    color = COLORS[change.action]
    where = f"{change.project}/{change.location}"
    lines = [f"  {style.bold('# ' + clean(change.key))} ({clean(where)}) {PHRASES[change.action]}"]
    head = f"  {style(color, sym)} {clean(change.key)}"
    if change.job is not None:
        head += f"  {clean(change.job.name)} [{clean(change.job.state.removeprefix('JOB_STATE_'))}]"
    lines.append(head)
    lines.append(f"      reason: {clean(change.detail)}")
    if change.field_changes:
        for fc in change.field_changes:
            lines.append(f"      {style('33', '~')} {clean(fc.path)}: {_value(fc.before)} -> {_value(fc.after)}")
    elif change.action is Action.CREATE and change.after:
        for path, value in _flatten(change.after):
            lines.append(f"      {style('32', '+')} {clean(path)}: {_value(value)}")
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
