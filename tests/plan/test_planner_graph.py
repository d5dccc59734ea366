"""The planner with references between jobs: pure, against hand-made live views."""

from __future__ import annotations

from reconciler.apischema.normalize import normalize_spec, normalized_hash, spec_hash
from reconciler.model import DesiredJob, Lifecycle
from reconciler.plan.inputs import resolve_waiting
from reconciler.plan.live import LiveJob, LiveView
from reconciler.plan.model import Action, Reason
from reconciler.plan.planner import plan
from reconciler.state.model import State, StateEntry

P, L = "proj", "us-central1"
BASE = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/base.jsonl"}}
REF = "${jobs.base.tunedModel.model}"
M1 = f"projects/123/locations/{L}/models/111@1"
M2 = f"projects/123/locations/{L}/models/222@1"


def down_spec(source: str = REF, data: str = "gs://b/down.jsonl") -> dict:
    return {"preTunedModel": {"tunedModelName": source}, "supervisedTuningSpec": {"trainingDatasetUri": data}}


def desired(key: str, spec: dict, **lifecycle) -> DesiredJob:
    return DesiredJob(key=key, project=P, location=L, spec=spec, lifecycle=Lifecycle(**lifecycle))


def job(n: int, key: str, spec: dict, state: str = "JOB_STATE_SUCCEEDED", model: str | None = None) -> LiveJob:
    labels = {"managed-by": "tuning-reconciler", "reconciler-key": key, "reconciler-spec": spec_hash(spec)}
    raw = {"name": f"projects/123/locations/{L}/tuningJobs/{n}", "state": state, **spec, "labels": labels,
           "createTime": f"2026-01-01T00:00:{n:02d}Z", "updateTime": "2026-01-01T01:00:00Z"}
    if model:
        raw["tunedModel"] = {"model": model, "endpoint": f"projects/123/locations/{L}/endpoints/{n}"}
    if state == "JOB_STATE_FAILED":
        raw["error"] = {"code": 13, "message": "boom"}
    return LiveJob.from_api(raw)


def entry(j: LiveJob, key: str, **kw) -> StateEntry:
    return StateEntry(key=key, project=P, location=L, job_name=j.name, spec_hash=j.spec_label,
                      job_state=j.state, **kw)


def world(*pairs: tuple[LiveJob, StateEntry]) -> tuple[State, LiveView]:
    return (State(entries={e.address: e for _, e in pairs}),
            LiveView(listed={(P, L): [j for j, _ in pairs]}))


def by_key(p) -> dict:
    return {c.key: c for c in p.changes}


def test_new_chain_creates_the_head_and_the_rest_waits():
    p = plan([desired("third", down_spec("${jobs.second.tunedModel.model}")), desired("second", down_spec()),
              desired("base", BASE)], State(), LiveView())
    assert [c.key for c in p.changes] == ["base", "second", "third"]  # graph order, not address order
    c = by_key(p)
    assert c["base"].action is Action.CREATE and not c["base"].waiting
    assert c["second"].waiting and c["second"].waits_for == (f"{P}/{L}/base",)
    assert c["second"].spec_hash is None
    assert c["second"].after["preTunedModel"]["tunedModelName"] == f"${{jobs.{P}/{L}/base.tunedModel.model}}"
    (i,) = c["third"].inputs
    assert (i.path, i.value, i.built_from, i.upstreams) == (("preTunedModel", "tunedModelName"), None, None,
                                                            (f"{P}/{L}/second",))
    assert p.summary() == "Plan: 3 to create, 0 to replace, 0 to cancel, 0 to rebase (2 waiting for upstream jobs to succeed)."


def test_succeeded_upstream_is_resolved_into_the_create():
    b = job(1, "base", BASE, model=M1)
    p = plan([desired("base", BASE), desired("down", down_spec())], *world((b, entry(b, "base"))))
    c = by_key(p)["down"]
    resolved = {**down_spec(M1)}
    assert c.action is Action.CREATE and not c.waiting and c.after == normalize_spec(resolved)
    assert c.spec_hash == spec_hash(resolved) and c.inputs[0].value == M1


def test_running_upstream_makes_the_create_wait_and_a_failed_one_blocks_it():
    running = job(1, "base", BASE, state="JOB_STATE_RUNNING")
    c = by_key(plan([desired("base", BASE), desired("down", down_spec())], *world((running, entry(running, "base")))))
    assert c["base"].action is Action.NOOP and c["down"].waiting
    failed = job(1, "base", BASE, state="JOB_STATE_FAILED", model=M1)  # a FAILED job has a model: never used
    p = plan([desired("base", BASE), desired("down", down_spec()), desired("after", down_spec("${jobs.down.name}"))],
             *world((failed, entry(failed, "base"))))
    c = by_key(p)
    assert (c["down"].action, c["down"].reason) == (Action.NOOP, Reason.UPSTREAM_BLOCKED)
    assert c["down"].detail == "cannot create: base's job FAILED: boom" and c["down"].job is None
    assert c["after"].reason is Reason.UPSTREAM_BLOCKED and "down is blocked" in c["after"].detail
    assert not p.problems and not p.has_changes


def test_failed_upstream_recreated_makes_its_downstream_wait():
    failed = job(1, "base", BASE, state="JOB_STATE_FAILED", model=M1)
    c = by_key(plan([desired("base", BASE, on_failure="recreate"), desired("down", down_spec())],
                    *world((failed, entry(failed, "base")))))
    assert c["base"].action is Action.CREATE and c["down"].waiting


def test_retuned_upstream_replaces_downstream_once_it_succeeds():
    b1 = job(1, "base", BASE, model=M1)
    d1 = job(2, "down", down_spec(M1))
    new_base = {**BASE, "description": "v2"}
    # The upstream is being replaced: the downstream's replace waits, saying what it was built from.
    state, live = world((b1, entry(b1, "base")), (d1, entry(d1, "down", inputs={"preTunedModel.tunedModelName": M1})))
    c = by_key(plan([desired("base", new_base), desired("down", down_spec())], state, live))
    assert c["base"].action is Action.REPLACE
    down = c["down"]
    assert (down.action, down.reason, down.waits_for) == (Action.REPLACE, Reason.UPSTREAM_CHANGED, (f"{P}/{L}/base",))
    assert down.detail == ("upstream re-tuned: preTunedModel.tunedModelName built from models/111@1, upstream base "
                           "is being re-tuned; waits for base to succeed")
    assert down.inputs[0].built_from == M1 and down.inputs[0].stale
    # The new upstream job has succeeded: the replace no longer waits and uses its model.
    b2 = job(3, "base", new_base, model=M2)
    state, live = world((b2, entry(b2, "base")), (d1, entry(d1, "down", inputs={"preTunedModel.tunedModelName": M1})))
    down = by_key(plan([desired("base", new_base), desired("down", down_spec())], state, live))["down"]
    assert (down.action, down.reason, down.waiting) == (Action.REPLACE, Reason.UPSTREAM_CHANGED, False)
    assert "built from models/111@1, upstream base now models/222@1" in down.detail
    assert down.after["preTunedModel"]["tunedModelName"] == M2


def test_keep_leaves_the_downstream_as_built():
    b2 = job(3, "base", BASE, model=M2)
    d1 = job(2, "down", down_spec(M1))
    state, live = world((b2, entry(b2, "base")), (d1, entry(d1, "down", inputs={"preTunedModel.tunedModelName": M1})))
    down = by_key(plan([desired("base", BASE), desired("down", down_spec(), on_upstream_change="keep")],
                       state, live))["down"]
    assert (down.action, down.reason) == (Action.NOOP, Reason.UPSTREAM_CHANGED)
    assert "kept as built (onUpstreamChange=keep)" in down.detail and down.inputs[0].stale
    # ... but its own spec change replaces it, from the upstream's current model.
    changed = down_spec(data="gs://b/other.jsonl")
    down = by_key(plan([desired("base", BASE), desired("down", changed, on_upstream_change="keep")],
                       state, live))["down"]
    assert down.action is Action.REPLACE and down.after["preTunedModel"]["tunedModelName"] == M2


def test_unchanged_chain_is_no_op_and_state_without_inputs_reads_the_live_job():
    b1 = job(1, "base", BASE, model=M1)
    d1 = job(2, "down", down_spec(M1))
    state, live = world((b1, entry(b1, "base")), (d1, entry(d1, "down")))  # an older entry: no inputs
    p = plan([desired("base", BASE), desired("down", down_spec())], state, live)
    down = by_key(p)["down"]
    assert not p.has_changes and down.reason is Reason.UNCHANGED
    assert down.inputs[0].built_from == M1 and not down.inputs[0].stale


def test_target_takes_the_jobs_it_uses_along():
    p = plan([desired("base", BASE), desired("down", down_spec()), desired("other", {**BASE})], State(), LiveView(),
             targets=["down"])
    assert [c.key for c in p.changes] == ["base", "down"]


def test_resolve_waiting_fills_the_values_and_hashes_the_result():
    waiting = by_key(plan([desired("base", BASE), desired("down", down_spec())], State(), LiveView()))["down"]
    upstream = job(1, "base", BASE, model=M1)
    ready = resolve_waiting(waiting, {f"{P}/{L}/base": upstream})
    assert ready.after == normalize_spec(down_spec(M1)) and ready.spec_hash == normalized_hash(ready.after)
    assert ready.spec_hash == spec_hash(down_spec(M1))  # what the next plan computes: no change then
    assert not ready.waiting and ready.inputs[0].value == M1
    import pytest

    from reconciler.plan.inputs import UnresolvedInput

    with pytest.raises(UnresolvedInput, match="has no tunedModel.model"):
        resolve_waiting(waiting, {f"{P}/{L}/base": job(1, "base", BASE)})


def test_graph_problems_are_plan_problems():
    p = plan([desired("a", down_spec("${jobs.b.name}")), desired("b", down_spec("${jobs.a.name}"))], State(),
             LiveView())
    assert sorted(pr.address for pr in p.problems) == [f"{P}/{L}/a", f"{P}/{L}/b"]
    assert all("reference cycle" in pr.message for pr in p.problems)
    assert all(c.reason is Reason.UPSTREAM_BLOCKED for c in p.changes)


def test_a_v1beta1_job_with_references_stays_v1beta1():
    from dataclasses import replace

    base = job(1, "base", BASE, model=M1)
    down = replace(desired("down", down_spec()), api_version="v1beta1")
    state, live = world((base, entry(base, "base")))
    c = by_key(plan([desired("base", BASE), down], state, live))
    assert c["down"].action is Action.CREATE and c["down"].api_version == "v1beta1"
    assert c["down"].after["preTunedModel"]["tunedModelName"] == M1


def test_a_spec_compared_at_load_time_gives_the_same_plan():
    plain, compared = desired("base", BASE), DesiredJob(
        key="base", project=P, location=L, spec=BASE, normalized=normalize_spec(BASE),
        spec_hash=normalized_hash(normalize_spec(BASE)))
    base = job(1, "base", BASE, model=M1)
    state, live = world((base, entry(base, "base")))
    assert plan([plain], state, live).to_json() == plan([compared], state, live).to_json()
