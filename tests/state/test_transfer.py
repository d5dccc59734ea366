"""What `state push` and `state migrate` may write over what is there (pure rules)."""

from __future__ import annotations

from reconciler.state.model import State, StateEntry
from reconciler.state.transfer import migrate_refusal, push_refusal, pushed, unchanged

E = StateEntry(key="k", project="p", location="l", job_name="projects/1/locations/l/tuningJobs/1")
F = StateEntry(key="f", project="p", location="l")


def state(serial: int, *entries: StateEntry, lineage: str = "lin-a") -> State:
    return State(lineage=lineage, serial=serial, entries={e.address: e for e in entries})


def test_push_onto_nothing_or_a_newer_serial_is_allowed():
    assert push_refusal(None, state(3, E)) is None
    assert push_refusal(state(3, E), state(4, E, F)) is None
    assert push_refusal(state(3, E), state(3, E)) is None and unchanged(state(3, E), state(3, E))


def test_push_refuses_another_lineage_an_older_serial_and_same_serial_other_content():
    assert "another state" in push_refusal(state(3, E), state(9, E, lineage="lin-b"))
    assert "older" in push_refusal(state(3, E), state(2, E))
    assert "other content" in push_refusal(state(3, E), state(3, F))


def test_what_is_written_moves_the_serial_on_past_what_was_there():
    assert pushed(state(3, E), state(7, F), force=False).serial == 7  # a newer serial is kept
    assert pushed(state(5, E), state(2, F), force=True).serial == 6  # forced older: past the current
    assert pushed(state(5, E), state(5, F), force=True).serial == 6
    assert pushed(None, state(2, F), force=False).serial == 2
    forced = pushed(state(5, E), state(1, F, lineage="lin-b"), force=True)
    assert forced.lineage == "lin-b" and forced.serial == 6 and forced.entries == {F.address: F}


def test_migrate_only_into_an_empty_place_or_the_same_state():
    assert migrate_refusal(state(3, E), None, False) is None
    assert migrate_refusal(state(3, E), state(3, E), True) is None
    assert "already holds a state" in migrate_refusal(state(3, E), state(3, F), True)
    assert "already holds a state" in migrate_refusal(state(3, E), state(3, E, lineage="lin-b"), True)
