"""What `state push` and `state migrate` may write over what is there (Terraform's rules). Pure."""

from __future__ import annotations

from reconciler.state.model import State


def push_refusal(current: State | None, incoming: State) -> str | None:
    """Why pushing `incoming` over `current` is refused without --force, or None when it is
    allowed. Refused: another lineage, an older serial, the same serial with other content."""
    if current is None:
        return None
    if incoming.lineage != current.lineage:
        return (f"it has lineage {incoming.lineage}, but the state has lineage {current.lineage}: "
                "it is another state")
    if incoming.serial < current.serial:
        return f"its serial {incoming.serial} is older than the state's {current.serial}"
    if incoming.serial == current.serial and incoming.entries != current.entries:
        return f"it has the state's serial {current.serial} but other content"
    return None


def pushed(current: State | None, incoming: State, force: bool) -> State:
    """The state to write: `incoming`, with a serial that moves on (a forced push of an older
    or other state still goes past what was there, so plans saved against it go stale)."""
    out = State(version=incoming.version, lineage=incoming.lineage, serial=incoming.serial,
                entries=dict(incoming.entries))
    if current is not None and (force or out.serial == current.serial) and out.entries != current.entries:
        out.serial = max(out.serial, current.serial + 1)
    return out


def unchanged(current: State | None, incoming: State) -> bool:
    """Pushing would change nothing (same lineage, serial and entries)."""
    return (current is not None and current.lineage == incoming.lineage and current.serial == incoming.serial
            and current.entries == incoming.entries)


def migrate_refusal(source: State, target: State | None, target_exists: bool) -> str | None:
    """A migration copies into a place with no state, or one holding the same state already."""
    if not target_exists or target is None:
        return None
    if target.lineage == source.lineage and target.serial == source.serial and target.entries == source.entries:
        return None
    return (f"it already holds a state (lineage {target.lineage}, serial {target.serial}, "
            f"{len(target.entries)} keys); use `state push --force` to replace it on purpose")
