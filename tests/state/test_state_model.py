"""The state data model and its JSON form (pure, no files)."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import StateError
from reconciler.state.model import (
    STATE_VERSION,
    State,
    StateEntry,
    apply_change,
    entry_from_dict,
    state_from_json,
    state_to_json,
)


def _entry(key: str = "support-bot-sft", location: str = "us-central1", **kw: object) -> StateEntry:
    return StateEntry(key=key, project="my-proj", location=location, **kw)  # type: ignore[arg-type]


def _valid_doc() -> dict:
    state = State(entries={e.address: e for e in [_entry(job_name="projects/1/locations/us-central1/tuningJobs/9")]})
    return json.loads(state_to_json(state))


def test_address_and_defaults() -> None:
    e = _entry()
    assert e.address == "my-proj/us-central1/support-bot-sft"
    assert e.history == [] and e.job_name is None
    assert _entry().history is not e.history  # no shared mutable default


def test_new_state_has_fresh_lineage_and_version() -> None:
    a, b = State(), State()
    assert a.version == STATE_VERSION == 1
    assert a.serial == 0 and a.entries == {}
    assert uuid.UUID(a.lineage).version == 4
    assert a.lineage != b.lineage


def test_find_by_key_and_address() -> None:
    west, central, other = _entry(location="europe-west4"), _entry(), _entry(key="other")
    state = State(entries={e.address: e for e in (central, other, west)})
    # A bare key matches every location, in address order.
    assert state.find("support-bot-sft") == [west, central]
    assert state.find("my-proj/us-central1/support-bot-sft") == [central]
    assert state.find("my-proj/asia-east1/support-bot-sft") == []
    assert state.find("missing") == []


def test_round_trip_and_stable_text() -> None:
    e = _entry(job_name="projects/123/locations/us-central1/tuningJobs/456", spec_hash="abc123",
               job_state="JOB_STATE_RUNNING", update_time="2026-01-02T03:04:05.123456Z",
               request_id="r-1", history=["projects/123/locations/us-central1/tuningJobs/1"], prevent_cancel=True)
    state = State(serial=7, entries={e.address: e, "p/l/a": StateEntry(key="a", project="p", location="l")})
    text = state_to_json(state)
    back = state_from_json(text, "s.json")
    assert back == state
    assert state_to_json(back) == text
    assert list(json.loads(text)["entries"]) == sorted(state.entries)  # sorted: diff-friendly


def test_apply_change_sets_and_removes() -> None:
    state = State()
    e = _entry()
    apply_change(state, e.address, e)
    assert state.entries == {e.address: e}
    apply_change(state, e.address, None)
    assert state.entries == {}
    apply_change(state, e.address, None)  # removing twice is harmless (journal replay)
    with pytest.raises(ValueError, match="does not match"):
        apply_change(state, "p/l/other", e)


def test_newer_version_is_refused_with_clear_message() -> None:
    doc = _valid_doc()
    doc["version"] = STATE_VERSION + 1
    with pytest.raises(StateError, match=r"state file s\.json was written by a newer version .*state version 2"):
        state_from_json(json.dumps(doc), "s.json")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=0), r"unknown state version 0"),
        (lambda d: d.update(version="1"), r"version: expected an integer, got a string"),
        (lambda d: d.pop("version"), r"version: expected an integer, got null"),
        (lambda d: d.update(lineage=""), r"lineage: expected a non-empty string"),
        (lambda d: d.update(serial=-1), r"serial: expected an integer >= 0"),
        (lambda d: d.update(serial=True), r"serial: expected an integer >= 0"),
        (lambda d: d.update(entries=[]), r"entries: expected an object, got a list"),
        (lambda d: d.update(extra=1), r"unknown field\(s\) extra"),
    ],
)
def test_wrong_shape_top_level(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = _valid_doc()
    mutate(doc)
    with pytest.raises(StateError, match=r"^state file s\.json: .*" + message):
        state_from_json(json.dumps(doc), "s.json")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("key", None, r"\.key: expected a non-empty string, got null"),
        ("job_name", 5, r"\.job_name: expected a string or null, got a number \(5\)"),
        ("history", "x", r"\.history: expected a list"),
        ("history", ["ok", 3], r"\.history\[1\]: expected a string"),
        ("prevent_cancel", "yes", r"\.prevent_cancel: expected true or false, got a string"),
        ("surprise", 1, r": unknown field\(s\) surprise"),
        ("location", "elsewhere", r": address does not match its entry \(my-proj/elsewhere/support-bot-sft\)"),
    ],
)
def test_wrong_shape_entry_names_the_field(field: str, value: object, message: str) -> None:
    doc = _valid_doc()
    doc["entries"]["my-proj/us-central1/support-bot-sft"][field] = value
    with pytest.raises(StateError, match=r'entries\["my-proj/us-central1/support-bot-sft"\]' + message):
        state_from_json(json.dumps(doc), "s.json")


def test_older_entry_without_prevent_cancel_reads_as_false() -> None:
    e = entry_from_dict({"key": "k", "project": "p", "location": "l"}, "here")
    assert e == StateEntry(key="k", project="p", location="l") and e.prevent_cancel is False


def test_missing_required_entry_field() -> None:
    with pytest.raises(StateError, match=r"^here\.project: missing$"):
        entry_from_dict({"key": "k", "location": "l"}, "here")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "it is empty"),
        ("   \n", "it is empty"),
        ('{"version": 1, "lineage": "x", ', "not valid JSON at line 1 column"),
        ("[1, 2]", "expected a JSON object, got a list"),
        ("null", "expected a JSON object, got null"),
    ],
)
def test_not_json_or_truncated(text: str, message: str) -> None:
    with pytest.raises(StateError, match=r"^state file s\.json: " + message):
        state_from_json(text, "s.json")


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_opt = st.none() | st.text(max_size=30)
_entries = st.builds(
    StateEntry, key=_names, project=_names, location=_names, job_name=_opt, spec_hash=_opt,
    job_state=_opt, update_time=_opt, request_id=_opt, history=st.lists(st.text(max_size=30), max_size=4),
    prevent_cancel=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_entries, max_size=6), st.integers(min_value=0, max_value=2**40))
def test_round_trip_property(entries: list[StateEntry], serial: int) -> None:
    state = State(serial=serial, entries={e.address: e for e in entries})
    assert state_from_json(state_to_json(state), "p.json") == state


def test_api_version_round_trips_and_v1_entries_look_as_before() -> None:
    from reconciler.state.model import entry_to_dict

    beta = StateEntry(key="b", project="p", location="l", job_name="projects/1/locations/l/tuningJobs/2",
                      api_version="v1beta1")
    plain = StateEntry(key="a", project="p", location="l")
    state = State(entries={beta.address: beta, plain.address: plain})
    again = state_from_json(state_to_json(state), "s.json")
    assert again.entries[beta.address].api_version == "v1beta1" and again.entries[plain.address].api_version is None
    assert "api_version" not in entry_to_dict(plain) and entry_to_dict(beta)["api_version"] == "v1beta1"


@pytest.mark.parametrize("value", ["v2", "v1", 1, True])
def test_unknown_api_version_is_refused(value: object) -> None:
    from reconciler.state.model import state_from_dict

    data = {"version": 1, "lineage": "x", "serial": 1,
            "entries": {"p/l/k": {"key": "k", "project": "p", "location": "l", "api_version": value}}}
    with pytest.raises(StateError, match=r"api_version: expected 'v1beta1' or null"):
        state_from_dict(data, "s.json")
