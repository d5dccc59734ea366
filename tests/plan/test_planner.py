"""The planner is pure: every rule of DESIGN.md's Actions section, one test each."""

from __future__ import annotations

import pytest

from reconciler.apischema.normalize import spec_hash
from reconciler.model import DesiredJob, Lifecycle
from reconciler.plan.live import LiveJob, LiveView
from reconciler.plan.model import Action, Reason
from reconciler.plan.planner import plan
from reconciler.state.model import State, StateEntry

P, L = "proj", "us-central1"
SPEC = {"baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/train.jsonl"}}


def desired(key: str = "k", spec: dict | None = None, **lifecycle) -> DesiredJob:
    return DesiredJob(key=key, project=P, location=L, spec=spec or SPEC, lifecycle=Lifecycle(**lifecycle))


def job(n: int, key: str = "k", state: str = "JOB_STATE_RUNNING", spec: dict | None = None,
        created: str | None = None, request: str | None = None, hash_label: bool = True, **extra) -> LiveJob:
    spec = spec or SPEC
    labels = {"managed-by": "tuning-reconciler", "reconciler-key": key}
    if hash_label:
        labels["reconciler-spec"] = spec_hash(spec)
    if request:
        labels["reconciler-request"] = request
    raw = {"name": f"projects/123/locations/{L}/tuningJobs/{n}", "state": state, **spec, "labels": labels,
           "createTime": created or f"2026-01-01T00:00:{n:02d}Z", "updateTime": "2026-01-01T01:00:00Z", **extra}
    return LiveJob.from_api(raw)


def entry(j: LiveJob | None, key: str = "k", **kw) -> StateEntry:
    return StateEntry(key=key, project=P, location=L, job_name=j.name if j else None,
                      spec_hash=spec_hash(SPEC), job_state=j.state if j else None, **kw)


def state_of(*entries: StateEntry) -> State:
    return State(entries={e.address: e for e in entries})


def live_of(*jobs: LiveJob, fetched: dict | None = None) -> LiveView:
    return LiveView(listed={(P, L): list(jobs)}, fetched=fetched or {})


def one(d, s, lv, **kw):
    p = plan(d, s, lv, **kw)
    assert len(p.changes) == 1
    return p.changes[0], p


def test_new_key_is_created():
    c, p = one([desired()], State(), live_of())
    assert (c.action, c.reason) == (Action.CREATE, Reason.NEW_KEY)
    assert c.after == SPEC and c.before is None
    assert p.summary() == "Plan: 1 to create, 0 to replace, 0 to cancel, 0 to rebase."


@pytest.mark.parametrize("state", ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED",
                                   "JOB_STATE_CANCELLING", "JOB_STATE_QUEUED"])
def test_same_spec_is_noop_in_healthy_states(state):
    j = job(1, state=state)
    c, p = one([desired()], state_of(entry(j)), live_of(j))
    assert c.action is Action.NOOP and c.reason is Reason.UNCHANGED
    assert p.summary() == "No changes." and not p.has_changes


def test_same_spec_without_hash_label_is_decided_by_the_full_diff():
    j = job(1, hash_label=False)
    c, _ = one([desired()], state_of(entry(j)), live_of(j))
    assert c.action is Action.NOOP


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_EXPIRED", "JOB_STATE_CANCELLED"])
def test_failed_job_is_reported_by_default(state):
    j = job(1, state=state, endTime="2026-01-02T00:00:00Z", error={"code": 13, "message": "boom"})
    c, p = one([desired()], state_of(entry(j)), live_of(j))
    assert (c.action, c.reason) == (Action.NOOP, Reason.JOB_FAILED_REPORTED)
    assert f"job {state[10:]} at 2026-01-02T00:00:00Z: boom; onFailure=report" == c.detail
    assert not p.has_changes


def test_failed_job_is_recreated_under_on_failure_recreate():
    j = job(1, state="JOB_STATE_FAILED")
    c, _ = one([desired(on_failure="recreate")], state_of(entry(j)), live_of(j))
    assert (c.action, c.reason) == (Action.CREATE, Reason.JOB_FAILED_RECREATE)
    assert c.job.name == j.name


def test_spec_change_while_running_replaces_with_field_path_in_reason():
    j = job(1)
    new = {**SPEC, "supervisedTuningSpec": {**SPEC["supervisedTuningSpec"], "hyperParameters": {"epochCount": 5}}}
    c, p = one([desired(spec=new)], state_of(entry(j)), live_of(j))
    assert (c.action, c.reason) == (Action.REPLACE, Reason.SPEC_CHANGED)
    assert "supervisedTuningSpec.hyperParameters.epochCount (unset) -> 5" in c.detail
    assert "cancel the active job" in c.detail
    assert p.summary() == "Plan: 0 to create, 1 to replace, 0 to cancel, 0 to rebase."


def test_spec_change_after_success_replaces_without_cancel():
    j = job(1, state="JOB_STATE_SUCCEEDED")
    c, _ = one([desired(spec={**SPEC, "description": "v2"})], state_of(entry(j)), live_of(j))
    assert c.action is Action.REPLACE and "old one stays as history" in c.detail


def test_spec_change_wait_while_active_then_replace_when_finished():
    new = {**SPEC, "description": "v2"}
    running = job(1)
    c, _ = one([desired(spec=new, on_spec_change="wait")], state_of(entry(running)), live_of(running))
    assert (c.action, c.reason) == (Action.NOOP, Reason.WAITING_FOR_ACTIVE)
    done = job(1, state="JOB_STATE_SUCCEEDED")
    c, _ = one([desired(spec=new, on_spec_change="wait")], state_of(entry(done)), live_of(done))
    assert c.action is Action.REPLACE


def test_spec_change_fail_is_a_plan_problem():
    j = job(1, state="JOB_STATE_SUCCEEDED")
    c, p = one([desired(spec={**SPEC, "description": "v2"}, on_spec_change="fail")], state_of(entry(j)), live_of(j))
    assert c.action is Action.NOOP
    assert p.problems and "onSpecChange=fail" in p.problems[0].message


def test_base_model_change_rebases_succeeded_job_under_rebase():
    j = job(1, state="JOB_STATE_SUCCEEDED")
    c, p = one([desired(spec={**SPEC, "baseModel": "gemini-3-flash"}, on_base_model_change="rebase")],
               state_of(entry(j)), live_of(j))
    assert (c.action, c.reason) == (Action.REBASE, Reason.BASE_MODEL_CHANGED)
    assert p.summary() == "Plan: 0 to create, 0 to replace, 0 to cancel, 1 to rebase."


def test_base_model_change_retunes_by_default_and_when_other_fields_change():
    j = job(1, state="JOB_STATE_SUCCEEDED")
    c, _ = one([desired(spec={**SPEC, "baseModel": "gemini-3-flash"})], state_of(entry(j)), live_of(j))
    assert c.action is Action.REPLACE
    c, _ = one([desired(spec={**SPEC, "baseModel": "gemini-3-flash", "description": "x"},
                        on_base_model_change="rebase")], state_of(entry(j)), live_of(j))
    assert c.action is Action.REPLACE


def test_prevent_cancel_blocks_replacing_an_active_job():
    j = job(1)
    c, p = one([desired(spec={**SPEC, "description": "v2"}, prevent_cancel=True)], state_of(entry(j)), live_of(j))
    assert c.action is Action.NOOP and "preventCancel" in p.problems[0].message


def test_removed_key_with_active_job_is_cancelled():
    j = job(1)
    c, p = one([], state_of(entry(j)), live_of(j))
    assert (c.action, c.reason) == (Action.CANCEL, Reason.KEY_REMOVED_ACTIVE)
    assert c.after is None and c.job.name == j.name
    assert p.summary() == "Plan: 0 to create, 0 to replace, 1 to cancel, 0 to rebase."


def test_removed_key_with_prevent_cancel_in_state_is_refused():
    j = job(1)
    e = entry(j)
    e.prevent_cancel = True  # type: ignore[attr-defined]
    c, p = one([], state_of(e), live_of(j))
    assert c.action is Action.NOOP and "preventCancel" in p.problems[0].message


def test_removed_key_with_finished_or_missing_job_is_forgotten():
    j = job(1, state="JOB_STATE_SUCCEEDED")
    c, p = one([], state_of(entry(j)), live_of(j))
    assert (c.action, c.reason) == (Action.FORGET, Reason.KEY_REMOVED_FINISHED)
    assert p.summary() == "Plan: 0 to create, 0 to replace, 0 to cancel, 0 to rebase, 1 to forget."
    gone = job(2)
    c, _ = one([], state_of(entry(gone)), live_of(fetched={gone.name: None}))
    assert (c.action, c.reason) == (Action.FORGET, Reason.KEY_REMOVED_GONE)


def test_job_in_state_that_no_longer_exists_is_reported_not_created_again():
    j = job(1)
    c, p = one([desired()], state_of(entry(j)), live_of(fetched={j.name: None}))
    assert (c.action, c.reason) == (Action.NOOP, Reason.JOB_GONE_REPORTED)
    assert "no longer exists" in c.detail and "onMissing" in c.detail and c.job is None
    assert not p.has_changes and not p.problems


def test_job_in_state_that_no_longer_exists_is_created_again_under_on_missing_recreate():
    j = job(1)
    c, _ = one([desired(on_missing="recreate")], state_of(entry(j)),
               live_of(fetched={j.name: None}))
    assert (c.action, c.reason) == (Action.CREATE, Reason.JOB_GONE)
    assert "no longer exists" in c.detail


def test_job_found_by_get_after_its_labels_changed_is_still_tracked():
    j = job(1)
    relabelled = LiveJob.from_api({**j.raw, "labels": {}})
    c, _ = one([desired()], state_of(entry(j)), live_of(fetched={j.name: relabelled}))
    assert c.action is Action.NOOP


def test_untracked_labelled_job_is_adopted_not_created_again():
    j = job(7, state="JOB_STATE_PENDING")
    c, _ = one([desired()], State(), live_of(j))
    assert (c.action, c.reason) == (Action.ADOPT, Reason.UNTRACKED_JOB)
    assert c.job.name == j.name and c.after == SPEC and c.before == SPEC
    assert "labelled job found that state does not know: adopting" in c.detail


def test_create_recorded_as_pending_request_is_adopted_by_request_label():
    j = job(7, request="req-1")
    e = StateEntry(key="k", project=P, location=L, request_id="req-1")
    c, _ = one([desired()], state_of(e), live_of(j))
    assert (c.action, c.reason) == (Action.ADOPT, Reason.UNRECORDED_CREATE)


def test_replacement_created_but_not_recorded_is_adopted_and_history_is_not():
    old = job(1, state="JOB_STATE_CANCELLED")
    new = job(2, request="req-2")
    e = entry(old, request_id="req-2")
    c, _ = one([desired()], state_of(e), live_of(old, new))
    assert c.action is Action.ADOPT and c.job.name == new.name
    # once recorded, the old job is history and never adopted again
    e2 = StateEntry(key="k", project=P, location=L, job_name=new.name, history=[old.name])
    c, _ = one([desired()], state_of(e2), live_of(old, new))
    assert c.action is Action.NOOP


@pytest.mark.parametrize("created", ["2026-01-01T00:00:01Z", "2026-01-01T00:00:00Z"])
def test_replacement_with_our_request_id_is_adopted_even_if_not_newer(created):
    # Equal createTimes (a coarse clock) or a skewed server clock must not hide our own
    # unrecorded create: planning CREATE again would start, and bill, a second job.
    old = job(1, state="JOB_STATE_CANCELLED", created="2026-01-01T00:00:01Z")
    new = job(2, request="req-2", created=created)
    c, _ = one([desired()], state_of(entry(old, request_id="req-2")), live_of(old, new))
    assert (c.action, c.reason, c.job.name) == (Action.ADOPT, Reason.UNRECORDED_CREATE, new.name)


def test_cancelled_unknown_job_is_not_adopted():
    j = job(3, state="JOB_STATE_CANCELLED")
    c, _ = one([desired()], State(), live_of(j))
    assert c.action is Action.CREATE


def test_older_unknown_labelled_job_is_not_adopted_over_the_current_one():
    older, current = job(1, state="JOB_STATE_SUCCEEDED"), job(2)
    c, _ = one([desired()], state_of(entry(current)), live_of(older, current))
    assert c.action is Action.NOOP


def test_targets_limit_the_plan_by_key_or_address():
    ds = [desired("a"), desired("b"), desired("c")]
    p = plan(ds, State(), live_of(), targets=["b", f"{P}/{L}/c"])
    assert [c.key for c in p.changes] == ["b", "c"]


def test_changes_are_sorted_by_address_and_plan_round_trips_through_json():
    from reconciler.plan.model import Plan

    j = job(1, key="a", state="JOB_STATE_SUCCEEDED")
    p = plan([desired("z"), desired("a", spec={**SPEC, "description": "v2"})], state_of(entry(j, key="a")),
             live_of(j))
    assert [c.key for c in p.changes] == ["a", "z"]
    again = Plan.from_json(p.to_json())
    assert again.to_json() == p.to_json()


def _moved_world():
    """A manifest switched `metadata.project` from the id to the number of the same project."""
    j = job(1)
    old = entry(j)  # tracked under proj/us-central1/k
    moved = DesiredJob(key="k", project="123", location=L, spec=SPEC, lifecycle=Lifecycle())
    # Listing under either spelling returns the same job (Vertex names it by number).
    live = LiveView(listed={(P, L): [j], ("123", L): [j]})
    return j, old, moved, live


def test_project_named_by_number_moves_the_key_and_never_cancels_its_job():
    j, old, moved, live = _moved_world()
    p = plan([moved], state_of(old), live)
    by = {c.address: c for c in p.changes}
    assert (by[f"123/{L}/k"].action, by[f"123/{L}/k"].job.name) == (Action.ADOPT, j.name)
    assert by[f"123/{L}/k"].detail == f"job tracked as {P}/{L}/k until now: moving it here"
    assert (by[f"{P}/{L}/k"].action, by[f"{P}/{L}/k"].reason) == (Action.FORGET, Reason.KEY_MOVED)
    assert not p.problems and not any(c.action is Action.CANCEL for c in p.changes)
    # --target on the old address alone must not cancel the job the manifests still want
    (c,) = plan([moved], state_of(old), live, targets=[f"{P}/{L}/k"]).changes
    assert c.action is Action.FORGET


def test_two_manifests_naming_one_job_is_a_problem():
    j, old, moved, live = _moved_world()
    p = plan([desired(), moved], state_of(old), live)
    assert [pr.address for pr in p.problems] == [f"{P}/{L}/k"]
    assert p.problems[0].message.startswith(f"job {j.name} is also claimed by 123/{L}/k: two manifests name one job")


def test_a_second_active_job_for_a_key_is_a_problem_not_a_silent_adoption():
    tracked, stray = job(1), job(2, state="JOB_STATE_PENDING")
    c, p = one([desired()], state_of(entry(tracked)), live_of(tracked, stray))
    assert c.action is Action.NOOP and c.job.name == tracked.name
    (problem,) = p.problems
    assert problem.message.startswith(f"another active job carries this key's labels besides the tracked "
                                      f"{tracked.name} (RUNNING): {stray.name} (PENDING); both are billed")
    # older than the tracked one makes no difference: it is billed all the same
    older = job(0, state="JOB_STATE_RUNNING")
    c, p = one([desired()], state_of(entry(tracked)), live_of(tracked, older))
    assert c.action is Action.NOOP and len(p.problems) == 1 and older.name in p.problems[0].message
    # one the user is already cancelling is no longer a problem
    cancelling = job(0, state="JOB_STATE_CANCELLING")
    c, p = one([desired()], state_of(entry(tracked)), live_of(tracked, cancelling))
    assert c.action is Action.NOOP and not p.problems
    # once the tracked job has finished, the newer labelled job is adopted as before
    done = job(1, state="JOB_STATE_SUCCEEDED")
    c, p = one([desired()], state_of(entry(done)), live_of(done, stray))
    assert (c.action, c.job.name, p.problems) == (Action.ADOPT, stray.name, [])


def test_several_untracked_active_jobs_for_a_new_key_are_a_problem():
    a, b = job(1), job(2, state="JOB_STATE_PENDING")
    c, p = one([desired()], State(), live_of(a, b))
    assert c.action is Action.NOOP and c.job.name == b.name
    assert p.problems[0].message.startswith("2 active jobs carry this key's labels and state tracks none of them: "
                                            f"{b.name} (PENDING), {a.name} (RUNNING)")


def test_key_moving_project_is_a_problem_when_the_job_cannot_be_matched():
    # An imported, unlabelled job is invisible to the labelled list: the new address would create.
    j = job(1, hash_label=False)
    j = LiveJob.from_api({**j.raw, "labels": {}})
    old = entry(j)
    moved = DesiredJob(key="k", project="other-spelling", location=L, spec=SPEC, lifecycle=Lifecycle())
    p = plan([moved], state_of(old), LiveView(listed={}, fetched={j.name: j}))
    by = {c.address: c for c in p.changes}
    assert by[f"{P}/{L}/k"].action is Action.NOOP and not any(c.action is Action.CANCEL for c in p.changes)
    (problem,) = p.problems
    assert problem.address == f"{P}/{L}/k"
    assert f"run `reconciler state mv {P}/{L}/k other-spelling/{L}/k`" in problem.message


def test_an_earlier_job_still_running_after_its_cancel_is_a_problem():
    earlier, current = job(1), job(2)
    e = StateEntry(key="k", project=P, location=L, job_name=current.name, spec_hash=spec_hash(SPEC),
                   job_state=current.state, history=[earlier.name])
    c, p = one([desired()], state_of(e), live_of(earlier, current))
    assert c.action is Action.NOOP and earlier.name in p.problems[0].message
