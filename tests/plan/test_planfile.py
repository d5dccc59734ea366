import json
import os
import stat

import pytest

from reconciler.errors import PlanError
from reconciler.plan.model import Action, Change, JobRef, Plan, Reason
from reconciler.plan.planfile import desired_from_plan, load_plan, save_plan, stale_reasons

SPEC = {"baseModel": "m", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}


REASONS = {Action.CREATE: Reason.NEW_KEY, Action.CANCEL: Reason.KEY_REMOVED_ACTIVE}


def change(action: Action, job: JobRef | None = None, after: dict | None = SPEC) -> Change:
    return Change(address="p/l/k", key="k", project="p", location="l", action=action,
                  reason=REASONS.get(action, Reason.SPEC_CHANGED), detail="d", after=after, job=job)


def test_save_and_load_round_trip_with_mode_0600(tmp_path):
    plan = Plan(changes=[change(Action.CREATE)], lineage="L", serial=3)
    path = tmp_path / "sub" / "plan.json"
    save_plan(plan, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_plan(path)
    assert again.lineage == "L" and again.serial == 3 and again.changes == plan.changes
    save_plan(Plan(changes=[], lineage=None), path)
    assert load_plan(path).lineage is None


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON at line 1"),
    ('{"kind": "other"}', "is not a saved plan of tuning-reconciler"),
    ('{"kind": "tuning-reconciler-plan", "format_version": "9.0"}', "has plan format 9.0"),
    ('{"kind": "tuning-reconciler-plan", "format_version": "1.0", "changes": [{"key": 1}]}', "damaged saved plan"),
])
def test_bad_plan_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(PlanError, match=message):
        load_plan(path)


@pytest.mark.parametrize("edit, where", [
    (lambda d: d["changes"][0].update(after="str"), "at changes[0].after: "),
    (lambda d: d["changes"][0].update(lifecycle="x"), "at changes[0].lifecycle: "),
    (lambda d: d.update(changes={}), "at changes: "),
    (lambda d: d["changes"][0].update(action="destroy"), "at changes[0].action: "),
])
def test_hand_edited_plans_are_refused_naming_the_field(tmp_path, edit, where):
    path = tmp_path / "p.json"
    save_plan(Plan(changes=[change(Action.CREATE)], lineage="L", serial=1), path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert str(info.value).startswith(f"{path} is a damaged saved plan: {where}")


def test_missing_plan_file(tmp_path):
    with pytest.raises(PlanError, match="cannot read saved plan"):
        load_plan(tmp_path / "nope.json")


def test_stale_when_action_or_job_update_time_changed():
    job = JobRef("projects/1/locations/l/tuningJobs/2", "JOB_STATE_RUNNING", update_time="t1")
    saved = Plan(changes=[change(Action.REPLACE, job)])
    assert stale_reasons(saved, Plan(changes=[change(Action.REPLACE, job)])) == []
    moved = JobRef(job.name, "JOB_STATE_RUNNING", update_time="t2")
    (reason,) = stale_reasons(saved, Plan(changes=[change(Action.REPLACE, moved)]))
    assert "changed since the plan (updateTime t1 -> t2)" in reason
    (reason,) = stale_reasons(saved, Plan(changes=[change(Action.NOOP, job)]))
    assert reason == "k: planned replace, now no-op"


def test_desired_from_plan_skips_removed_keys():
    plan = Plan(changes=[change(Action.CREATE), change(Action.CANCEL, after=None)])
    (d,) = desired_from_plan(plan)
    assert d.key == "k" and d.spec == SPEC
