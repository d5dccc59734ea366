"""Job graphs end to end: the real CLI in-process against the emulator over real HTTP.

Chains, a diamond, cycles and unknown references, an upstream failure blocking its downstream
jobs, a cascade through a chain (and `keep` stopping it), a saved plan across a chain, apply
without --wait continuing on the next apply, and a referenced key that leaves the manifests.
Tests that follow jobs to the end use an emulator with a real clock and short jobs; the
apply itself waits for them, so no test waits on a wall-clock bound."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest

PROJECT, LOCATION = "demo-project", "us-central1"  # as the workspace (conftest) sets them

ROOT = Path(__file__).resolve().parents[2]
FAST = dict(job_duration=0.3)
TARGET = ("--project", PROJECT, "--location", LOCATION)


def stage(ws, key: str, uses: str | None = None, epochs: int = 3, dataset: str | None = None,
          lifecycle: str = "", extra: str = "", uses_field: str = "tunedModel.model") -> None:
    """A job tuned from `uses`' model (continuous tuning), or from the base model."""
    source = (f"  preTunedModel:\n    tunedModelName: ${{jobs.{uses}.{uses_field}}}\n" if uses
              else "  baseModel: gemini-2.5-flash\n")
    lc = f"lifecycle:\n{textwrap.indent(textwrap.dedent(lifecycle), '  ')}" if lifecycle else ""
    ws.write(f"{key}.yaml", (
        f"apiVersion: tuning.reconciler/v1\nkind: TuningJob\nmetadata:\n  name: {key}\nspec:\n{source}"
        f"  supervisedTuningSpec:\n    trainingDatasetUri: {dataset or f'gs://bucket/{key}.jsonl'}\n"
        f"    hyperParameters: {{epochCount: \"{epochs}\"}}\n{textwrap.indent(extra, '  ')}{lc}"))


def fast_ws(ws, emulator_factory, monkeypatch, **config):
    ws.emulator = emulator_factory(**{**FAST, **config})
    monkeypatch.setenv("RECONCILER_ENDPOINT", ws.emulator.url)
    return ws


def live(ws, name: str) -> dict:
    return ws.emulator.backend.get(name)


def model_of(ws, key: str) -> str:
    return live(ws, ws.entry(key)["job_name"])["tunedModel"]["model"]


def pre_tuned(ws, key: str) -> str:
    return live(ws, ws.entry(key)["job_name"])["preTunedModel"]["tunedModelName"]


def chain(ws, keys: list[str], **kw) -> None:
    for i, key in enumerate(keys):
        stage(ws, key, keys[i - 1] if i else None, **kw)


def apply_wait(ws, *extra: str):
    return ws.apply("--wait", "--poll-interval", "0.05", *extra)


def managed_jobs(ws) -> list:
    return [j for j in ws.emulator.backend.jobs.values() if j.labels.get("managed-by") == "tuning-reconciler"]


@pytest.mark.slow
def test_chain_of_three_runs_in_order_with_wait(ws, emulator_factory, monkeypatch):
    fast_ws(ws, emulator_factory, monkeypatch)
    chain(ws, ["first", "second", "third"])
    plan = ws.plan()
    assert plan.out.index("# first") < plan.out.index("# second") < plan.out.index("# third")
    assert "# second (demo-project/us-central1) will be created once first has succeeded" in plan.out
    assert "+ preTunedModel.tunedModelName: (known after second succeeds)" in plan.out
    assert "Plan: 3 to create, 0 to replace, 0 to cancel, 0 to rebase (2 waiting for upstream jobs to succeed)." \
        in plan.out
    result = apply_wait(ws)
    assert result.code == 0, result.out + result.err
    out = result.out
    assert out.index("first: SUCCEEDED") < out.index("second: first succeeded; starting") \
        < out.index("second: created") < out.index("second: SUCCEEDED") < out.index("third: created")
    assert "to start after them: second (after first), third (after second)" in out
    assert "Apply complete! Jobs: 3 created" in out
    # Each stage was created from the model its upstream produced; the service made new versions.
    first, second = model_of(ws, "first"), model_of(ws, "second")
    assert pre_tuned(ws, "second") == first and pre_tuned(ws, "third") == second
    assert first.endswith("@1") and second == first[:-2] + "@2" and model_of(ws, "third").endswith("@3")
    assert live(ws, ws.entry("third")["job_name"])["preTunedModel"]["baseModel"] == "gemini-2.5-flash"
    assert ws.entry("third")["inputs"] == {"preTunedModel.tunedModelName": second}
    assert "inputs" not in ws.entry("first")
    assert ws.plan("--detailed-exitcode").code == 0  # resolved spec == the live jobs: no changes
    assert len(managed_jobs(ws)) == 3


def test_apply_without_wait_starts_what_can_start_and_the_next_apply_continues(ws, admin):
    chain(ws, ["first", "second"])
    result = ws.apply()
    assert result.code == 0, result.err
    assert "second: waits for first to succeed" in result.out
    assert "Apply complete! Jobs: 1 created" in result.out
    assert "1 change(s) wait for upstream jobs: second" in result.out
    assert "second" not in ws.state_json()["entries"].__repr__() or "job_name" not in ws.entry("second")
    again = ws.apply()  # first still running: still waiting, nothing created twice
    assert "second: waits for first to succeed" in again.out and "Jobs: 0 created" in again.out
    admin.advance(3600)
    plan = ws.plan()
    assert "+ preTunedModel.tunedModelName: \"projects/" in plan.out and "known after" not in plan.out
    last = ws.apply()
    assert last.code == 0 and "Jobs: 1 created" in last.out, last.out
    assert pre_tuned(ws, "second") == model_of(ws, "first")
    admin.advance(3600)
    assert ws.plan("--detailed-exitcode").code == 0


@pytest.mark.slow
def test_diamond_starts_the_join_after_both_sides(ws, emulator_factory, monkeypatch):
    fast_ws(ws, emulator_factory, monkeypatch)
    stage(ws, "base")
    stage(ws, "left", "base")
    stage(ws, "right", "base")
    # The join continues from `left` and names `right`'s endpoint in its description.
    stage(ws, "join", "left", extra="description: \"compare with ${jobs.right.tunedModel.endpoint}\"\n")
    plan = ws.plan()
    assert "# join (demo-project/us-central1) will be created once left and right have succeeded" in plan.out
    assert "+ description: (known after right succeeds)" in plan.out
    result = apply_wait(ws)
    assert result.code == 0, result.out + result.err
    out = result.out
    assert out.index("left: SUCCEEDED") < out.index("join: left, right succeeded; starting")
    assert out.index("right: SUCCEEDED") < out.index("join: created")
    join = live(ws, ws.entry("join")["job_name"])
    right = live(ws, ws.entry("right")["job_name"])
    assert join["description"] == f"compare with {right['tunedModel']['endpoint']}"
    assert join["preTunedModel"]["tunedModelName"] == model_of(ws, "left")
    # left and right each continued base's model: two new versions of it.
    versions = sorted(model_of(ws, k).rsplit("@", 1)[1] for k in ("left", "right"))
    assert versions == ["2", "3"]
    assert ws.plan("--detailed-exitcode").code == 0


def test_cycle_is_an_error_naming_every_job_on_it(ws):
    stage(ws, "a", "c")
    stage(ws, "b", "a")
    stage(ws, "c", "b")
    stage(ws, "free")
    for argv in (("validate", str(ws.manifests), *TARGET), ("plan", str(ws.manifests), "--no-color")):
        result = ws.run(*argv, state=argv[0] != "validate")
        assert result.code == 1
        text = result.out + result.err
        for key in "abc":
            assert f"{ws.manifests / key}.yaml:7:21: reference cycle: a -> c -> b -> a" in text, text
        assert "free.yaml" not in text and "Traceback" not in text
    assert not ws.emulator.backend.jobs  # nothing was created


def test_unknown_reference_and_non_output_are_errors_at_their_position(ws):
    stage(ws, "orphan", "nobody")
    stage(ws, "odd", "orphan", uses_field="tunedModel.weights")
    result = ws.run("validate", str(ws.manifests), *TARGET, state=False)
    assert result.code == 1
    assert (f"{ws.manifests}/orphan.yaml:7:21: `${{jobs.nobody.tunedModel.model}}`: no manifest declares a job "
            "`nobody`") in result.out
    assert (f"{ws.manifests}/odd.yaml:7:21: `${{jobs.orphan.tunedModel.weights}}`: `tunedModel.weights` is not an "
            "output of a job") in result.out
    github = ws.run("validate", str(ws.manifests), "--format", "github", *TARGET, state=False)
    assert "::error file=" in github.out and "line=7,col=21" in github.out
    assert ws.apply().code == 1 and not ws.emulator.backend.jobs


@pytest.mark.slow
def test_upstream_failure_blocks_its_downstream_jobs_with_the_reason(ws, emulator_factory, monkeypatch):
    fast_ws(ws, emulator_factory, monkeypatch)
    stage(ws, "broken", dataset="gs://bucket/fail.jsonl")
    stage(ws, "after", "broken")
    stage(ws, "later", "after")
    stage(ws, "fine")
    result = apply_wait(ws)
    assert result.code == 1
    assert "broken: FAILED: Failed to create endpoint" in result.out
    assert "after: blocked: upstream broken's job" in result.out and "FAILED" in result.out
    assert "later: blocked: after is blocked" in result.out
    assert "Error: after: not started: upstream broken's job" in result.err
    keys = {j.labels["reconciler-key"] for j in managed_jobs(ws)}
    assert keys == {"broken", "fine"}  # never a create with a missing value
    plan = ws.plan()
    assert "after: cannot create: broken's job FAILED: Failed to create endpoint" in plan.out
    assert "later: cannot create: after is blocked" in plan.out
    assert "No changes." in plan.out and plan.code == 0
    assert ws.plan_json()["changes"][1]["reason"] == "upstream-blocked"


@pytest.mark.slow
def test_upstream_change_cascades_through_the_chain_and_keep_stops_it(ws, emulator_factory, monkeypatch):
    fast_ws(ws, emulator_factory, monkeypatch)
    stage(ws, "first")
    stage(ws, "second", "first")
    stage(ws, "third", "second")
    stage(ws, "kept", "second", lifecycle="onUpstreamChange: keep\n")
    assert apply_wait(ws).code == 0
    old = {k: ws.entry(k)["job_name"] for k in ("first", "second", "third", "kept")}
    old_second = model_of(ws, "second")

    stage(ws, "first", epochs=4)  # re-tune the chain's first stage
    plan = ws.plan()
    assert "-/+ second" in plan.out and "-/+ third" in plan.out and "-/+ kept" not in plan.out
    assert (f"upstream re-tuned: preTunedModel.tunedModelName built from "
            f"models/{old_second.split('/models/')[1]}, upstream second is being re-tuned") in plan.out
    assert "~ preTunedModel.tunedModelName: \"" + old_second + "\" -> (known after second succeeds)" in plan.out
    assert "kept: job SUCCEEDED, spec unchanged; kept as built (onUpstreamChange=keep)" in plan.out
    data = ws.plan_json()
    changes = {c["key"]: c for c in data["changes"]}
    assert changes["third"]["waitsFor"] == [f"{PROJECT}/{LOCATION}/second"]
    assert changes["third"]["inputs"][0]["builtFrom"] == old_second and changes["third"]["inputs"][0]["value"] is None
    drift = ws.run("drift", str(ws.manifests), "--no-color")
    assert drift.code == 2 and "stale-input" in drift.out

    result = apply_wait(ws)
    assert result.code == 0, result.out + result.err
    assert "Jobs: 0 created, 3 replaced" in result.out
    new_second = model_of(ws, "second")
    assert new_second != old_second
    assert pre_tuned(ws, "second") == model_of(ws, "first") and pre_tuned(ws, "third") == new_second
    assert ws.entry("kept")["job_name"] == old["kept"] and pre_tuned(ws, "kept") == old_second
    for key in ("first", "second", "third"):
        assert ws.entry(key)["history"] == [old[key]]
    plan = ws.plan("--detailed-exitcode")
    assert plan.code == 0  # only a note for `kept`
    assert (f"kept as built (onUpstreamChange=keep): preTunedModel.tunedModelName built from "
            f"models/{old_second.split('/models/')[1]}, upstream second now models/{new_second.split('/models/')[1]}"
            ) in plan.out
    drift = ws.run("drift", str(ws.manifests), "--format", "json")
    report = json.loads(drift.out)
    jsonschema.validate(report, json.loads((ROOT / "schemas" / "drift-report.schema.json").read_text()))
    items = report["items"]
    assert [(i["key"], i["kind"]) for i in items] == [("kept", "stale-input")]
    # keep -> retune: now `kept` is re-tuned from the current second.
    stage(ws, "kept", "second")
    assert "-/+ kept" in ws.plan().out
    assert ws.apply().code == 0 and pre_tuned(ws, "kept") == new_second


@pytest.mark.slow
def test_saved_plan_across_a_chain(ws, emulator_factory, monkeypatch):
    fast_ws(ws, emulator_factory, monkeypatch)
    chain(ws, ["first", "second", "third"])
    planfile = ws.root / "chain.plan.json"
    assert ws.plan("--out", str(planfile)).code == 0
    saved = json.loads(planfile.read_text())
    changes = {c["key"]: c for c in saved["changes"]}
    assert changes["second"]["waitsFor"] == [f"{PROJECT}/{LOCATION}/first"]
    assert changes["third"]["after"]["preTunedModel"]["tunedModelName"] == \
        f"${{jobs.{PROJECT}/{LOCATION}/second.tunedModel.model}}"
    assert changes["third"]["specHash"] is None
    shown = ws.run("show", str(planfile), state=False)
    assert "(known after first succeeds)" in shown.out
    result = ws.run("apply", str(planfile), "--no-color", "--wait", "--poll-interval", "0.05")
    assert result.code == 0, result.out + result.err
    assert "Jobs: 3 created" in result.out
    assert pre_tuned(ws, "third") == model_of(ws, "second")
    assert ws.plan("--detailed-exitcode").code == 0
    # Applied, the saved plan is stale.
    stale = ws.run("apply", str(planfile), "--no-color")
    assert stale.code == 1 and "Saved plan is stale" in stale.err


def test_saved_plan_without_wait_leaves_the_rest_for_the_next_apply(ws, admin):
    chain(ws, ["first", "second"])
    planfile = ws.root / "p.json"
    assert ws.plan("--out", str(planfile)).code == 0
    result = ws.run("apply", str(planfile), "--no-color")
    assert result.code == 0 and "second: waits for first to succeed" in result.out
    admin.advance(3600)
    assert ws.apply().code == 0
    assert pre_tuned(ws, "second") == model_of(ws, "first")


def test_a_referenced_key_leaving_the_manifests_is_an_error_not_a_cancel(ws):
    chain(ws, ["first", "second"])
    assert ws.apply().code == 0
    first_job = ws.entry("first")["job_name"]
    (ws.manifests / "first.yaml").unlink()
    plan = ws.plan()
    assert plan.code == 1 and "no manifest declares a job `first`" in plan.err
    applied = ws.apply()
    assert applied.code == 1
    assert live(ws, first_job)["state"] != "JOB_STATE_CANCELLING"
    assert ws.entry("first")["job_name"] == first_job


def test_target_includes_the_jobs_it_uses(ws):
    chain(ws, ["first", "second"])
    stage(ws, "other")
    data = ws.plan_json("--target", "second")
    assert sorted(c["key"] for c in data["changes"]) == ["first", "second"]


def test_full_address_references_and_escapes(ws, admin):
    stage(ws, "first")
    stage(ws, "second", f"{PROJECT}/{LOCATION}/first",
          extra="description: \"from ${jobs.first.name}, literal $${HOME}\"\n")
    assert ws.apply().code == 0
    admin.advance(3600)
    assert ws.apply().code == 0
    second = live(ws, ws.entry("second")["job_name"])
    assert second["description"] == f"from {ws.entry('first')['job_name']}, literal ${{HOME}}"
    assert second["preTunedModel"]["tunedModelName"] == model_of(ws, "first")


def test_state_without_inputs_still_plans_a_cascade(ws, admin):
    """An older state file (no `inputs`) still says what a job was built from: the live job."""
    chain(ws, ["first", "second"])
    ws.apply()
    admin.advance(3600)
    ws.apply()
    admin.advance(3600)
    data = ws.state_json()
    data["entries"][f"{PROJECT}/{LOCATION}/second"].pop("inputs")
    ws.state.write_text(json.dumps(data))
    built = pre_tuned(ws, "second")
    assert ws.plan("--detailed-exitcode").code == 0
    stage(ws, "first", epochs=7)
    plan = ws.plan()
    assert f"built from models/{built.split('/models/')[1]}, upstream first is being re-tuned" in plan.out


def test_state_show_lists_what_a_job_was_built_from(ws, admin):
    chain(ws, ["first", "second"])
    ws.apply()
    admin.advance(3600)
    ws.apply()
    shown = ws.run("state", "show", "second", "--state", str(ws.state), state=False)
    assert f"input          = preTunedModel.tunedModelName: {model_of(ws, 'first')}" in shown.out, shown.out


def test_graph_command_draws_the_manifests_offline(ws):
    stage(ws, "base")
    stage(ws, "left", "base")
    stage(ws, "right", "base")
    text = ws.run("graph", str(ws.manifests), *TARGET, state=False)
    assert text.code == 0 and "Job graph: 3 jobs, 2 references, 2 stage(s)." in text.out
    assert "stage 2  left   uses base.tunedModel.model -> preTunedModel.tunedModelName" in text.out
    mermaid = ws.run("graph", str(ws.manifests), "--format", "mermaid", *TARGET, state=False)
    assert mermaid.out.startswith("flowchart LR\n") and mermaid.out.count("-->") == 2
    dot = ws.run("graph", str(ws.manifests), "--format", "dot", *TARGET, state=False)
    assert f'"{PROJECT}/{LOCATION}/base" -> "{PROJECT}/{LOCATION}/left"' in dot.out
    stage(ws, "bad", "bad")
    broken = ws.run("graph", str(ws.manifests), *TARGET, state=False)
    assert broken.code == 1 and "bad.yaml:7:21: `${jobs.bad.tunedModel.model}`: a job cannot use its own" in broken.err
    assert "Traceback" not in broken.err


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["JOB_STATE_EXPIRED", "JOB_STATE_CANCELLED"])
def test_an_upstream_that_expires_or_is_cancelled_while_waiting_blocks_its_downstream(ws, emulator_factory,
                                                                                      monkeypatch, ending):
    import threading
    import time

    fast_ws(ws, emulator_factory, monkeypatch, job_duration=3600)  # it would run for an hour...
    chain(ws, ["first", "second"])
    stop = threading.Event()

    def end_it_out_of_band() -> None:  # ...but someone ends it as soon as it exists
        while not stop.is_set():
            jobs = list(ws.emulator.backend.jobs.values())
            if jobs:
                ws.emulator.backend.set_state(jobs[0].name, ending)
                return
            time.sleep(0.01)

    helper = threading.Thread(target=end_it_out_of_band)
    helper.start()
    try:
        result = apply_wait(ws)
    finally:
        stop.set()
        helper.join()
    assert result.code == 1
    short = ending.removeprefix("JOB_STATE_")
    assert "second: blocked: upstream first's job" in result.out and short in result.out, result.out
    assert len(managed_jobs(ws)) == 1  # second was never created
