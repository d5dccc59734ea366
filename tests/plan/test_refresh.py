"""refresh(): one filtered list per project+location, biggest pages, and with
`fields=plan_fields()` exactly the parts of each job the planner reads (real HTTP to the
emulator on 127.0.0.1)."""

from __future__ import annotations

import math

from reconciler.api.client import ClientOptions, TuningClient
from reconciler.apischema.normalize import normalize_spec
from reconciler.emulator.admin import EmulatorAdmin
from reconciler.emulator.server import RunningEmulator
from reconciler.model import KEY_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, DesiredJob
from reconciler.plan.live import LiveJob
from reconciler.plan.planner import plan
from reconciler.plan.refresh import LIST_PAGE_SIZE, parents_of, plan_fields, refresh
from reconciler.state.model import State, StateEntry

PARENT = "projects/p/locations/us-central1"
SPEC = {"baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/train.jsonl",
                                 "hyperParameters": {"epochCount": "3"}}}


def client_for(emulator: RunningEmulator) -> TuningClient:
    return TuningClient(ClientOptions(endpoint=emulator.url, access_token=emulator.token))


def seed(admin: EmulatorAdmin, count: int, state: str = "JOB_STATE_SUCCEEDED") -> list[str]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, KEY_LABEL: "job-{n}"}
    return admin.seed(PARENT, count=count, labels=labels, state=state, spec=SPEC)


def test_partial_list_keeps_what_the_planner_reads(emulator: RunningEmulator, admin: EmulatorAdmin) -> None:
    names = seed(admin, 3)
    with client_for(emulator) as client:
        full = {j["name"]: j for j in client.list_jobs(PARENT)}
        partial = {j["name"]: j for j in client.list_jobs(PARENT, fields=plan_fields())}
    assert set(full) == set(partial) == set(names)
    for name, job in full.items():
        assert "tunedModel" in job and "tuningDataStats" in job  # bulky output-only parts exist...
        slim = partial[name]
        assert "tuningDataStats" not in slim  # ...and are not sent
        # Of the tuned model only what references use (`${jobs.KEY.tunedModel.model}`), not its checkpoints.
        assert "checkpoints" in job["tunedModel"]
        assert slim.pop("tunedModel") == {k: job["tunedModel"][k] for k in ("model", "endpoint")}
        assert slim == {k: v for k, v in job.items() if k in slim}
        assert normalize_spec(slim) == normalize_spec(job)  # the diff sees the same spec
        assert LiveJob.from_api(slim) == LiveJob.from_api(job)  # same state, labels, times


def test_refresh_uses_the_biggest_pages(emulator: RunningEmulator, admin: EmulatorAdmin) -> None:
    count = LIST_PAGE_SIZE + 10
    seed(admin, count)
    admin.seed(PARENT, count=5, labels={"team": "other"})  # unmanaged: filtered out
    before = admin.stats()["requests"].get("list", 0)
    desired = [DesiredJob(key=f"job-{i}", project="p", location="us-central1", spec=SPEC) for i in range(count)]
    with client_for(emulator) as client:
        view = refresh(client, parents_of(desired, State()), State(), fields=plan_fields())
    lists = admin.stats()["requests"]["list"] - before
    assert lists == math.ceil(count / LIST_PAGE_SIZE) == 2
    assert len(view.all_jobs()) == count
    assert all(job.managed for job in view.all_jobs())


def test_plan_from_a_partial_refresh_equals_plan_from_whole_jobs(
        emulator: RunningEmulator, admin: EmulatorAdmin) -> None:
    names = seed(admin, 4)
    state = State()
    for i, name in enumerate(names[:3]):
        entry = StateEntry(key=f"job-{i}", project="p", location="us-central1", job_name=name)
        state.entries[entry.address] = entry
    changed = {**SPEC, "supervisedTuningSpec": {**SPEC["supervisedTuningSpec"],
                                                "hyperParameters": {"epochCount": "4"}}}
    desired = [DesiredJob(key=f"job-{i}", project="p", location="us-central1",
                          spec=changed if i == 1 else SPEC) for i in range(5)]
    with client_for(emulator) as client:
        slim = plan(desired, state, refresh(client, parents_of(desired, state), state, fields=plan_fields()))
        whole = plan(desired, state, refresh(client, parents_of(desired, state), state))
    assert [c.to_json() for c in slim.changes] == [c.to_json() for c in whole.changes]
    assert [c.action.value for c in slim.changes] == ["no-op", "replace", "no-op", "adopt", "create"]
