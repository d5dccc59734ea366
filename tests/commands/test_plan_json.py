"""The JSON plan (`plan --json`, `plan --out` + `show --json`) against schemas/plan.schema.json,
end to end through the CLI against a live emulator over HTTP (virtual clock); and the schema's
enums kept in step with reconciler.plan.model."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from reconciler.api.client import ClientOptions, TuningClient
from reconciler.apischema.generated import manifest_schema as load_manifest_schema
from reconciler.apischema.normalize import spec_hash
from reconciler.model import Lifecycle
from reconciler.plan.differ import FieldChange
from reconciler.plan.model import Action, Change, Input, JobRef, Plan, PlanProblem, Reason

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "plan.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
PROJECT, LOCATION = "demo-project", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"

# How the text plan shows each action (written out here, not imported from render.py).
TEXT = {
    "create": ("+", "will be created"), "replace": ("-/+", "will be replaced"),
    "cancel": ("-", "will be cancelled"), "rebase": ("~", "will be rebased"),
    "adopt": ("<=", "will be adopted into state"), "forget": (".", "will no longer be tracked"),
}


def errors(data: dict) -> list[str]:
    """Every complaint, those inside oneOf/anyOf branches included."""
    found: list[str] = []

    def walk(error: jsonschema.ValidationError) -> None:
        found.append(f"{'/'.join(map(str, error.absolute_path))}: {error.message}")
        for inner in error.context or ():
            walk(inner)

    for error in VALIDATOR.iter_errors(data):
        walk(error)
    return found


def plan_json(ws, *extra: str, code: int = 0) -> dict:
    result = ws.plan("--json", *extra)
    assert result.code == code, result.err
    data = json.loads(result.out)
    assert errors(data) == []  # every plan these tests see
    return data


def by_key(data: dict) -> dict[str, dict]:
    return {c["key"]: c for c in data["changes"]}


def summary_line(summary: dict) -> str:
    line = (f"Plan: {summary['create']} to create, {summary['replace']} to replace, "
            f"{summary['cancel']} to cancel, {summary['rebase']} to rebase")
    extra = [f"{summary[a]} to {a}" for a in ("adopt", "forget") if summary[a]]
    return line + "".join(f", {e}" for e in extra) + "."


def assert_text_agrees(text: str, data: dict) -> None:
    """Every change of the JSON plan is in the text plan as the JSON says, and nothing else is."""
    actionable = [c for c in data["changes"] if c["action"] != "no-op"]
    for c in actionable:
        symbol, phrase = TEXT[c["action"]]
        assert f"  # {c['key']} ({c['project']}/{c['location']}) {phrase}\n" in text, c["key"]
        head = f"  {symbol} {c['key']}"
        if c["job"]:
            head += f"  {c['job']['name']} [{c['job']['state'].removeprefix('JOB_STATE_')}]"
        assert head + "\n" in text, head
        assert f"      reason: {c['detail']}\n" in text
        for fc in c["fieldChanges"]:
            before = json.dumps(fc["before"]) if "before" in fc else "(unset)"
            after = json.dumps(fc["after"]) if "after" in fc else "(unset)"
            assert f"      ~ {fc['path']}: {before} -> {after}\n" in text
    assert text.count("  # ") == len(actionable)
    notes = [c for c in data["changes"] if c["action"] == "no-op" and c["reason"] != "unchanged"]
    if notes:
        section = text.split("Notes (no action):\n", 1)[1].split("\n\n", 1)[0]
        assert section.splitlines() == [f"  - {c['key']}: {c['detail']}" for c in notes]
    else:
        assert "Notes (no action):" not in text
    for p in data["problems"]:
        assert f"Error: {p['address']}: {p['message']}\n" in text
    assert text.count("Error: ") == len(data["problems"])
    assert text.rstrip().endswith(summary_line(data["summary"]) if data["has_changes"] else "No changes.")


def adopt_by_hand(ws, key: str) -> str:
    """What a crashed apply leaves: a labelled job that state never heard of."""
    body = {"baseModel": "gemini-2.5-flash",
            "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/train.jsonl",
                                     "hyperParameters": {"epochCount": "3"}}}
    body["labels"] = {"managed-by": "tuning-reconciler", "reconciler-key": key, "reconciler-spec": spec_hash(body)}
    with TuningClient(ClientOptions(endpoint=ws.emulator.url, access_token=ws.emulator.token)) as client:
        return client.create_job(PARENT, body, request_id="lost-request")["name"]


# ------------------------------------------------------------------ end to end


@pytest.fixture
def world(ws):
    """A workspace whose next plan has every kind of action (and three kinds of no-op)."""
    for key in ("replaced", "cancelled", "forgotten", "kept"):
        ws.job(key)
    ws.job("rebased", lifecycle="onBaseModelChange: rebase\n")
    ws.job("waiting", lifecycle="onSpecChange: wait\n")
    ws.job("broken", dataset="gs://bucket/fail.jsonl")
    applied = ws.apply()
    assert applied.code == 0, applied.err
    ws.admin.advance(0.5)  # every job RUNNING
    ws.admin.set_state(ws.entry("forgotten")["job_name"], "JOB_STATE_SUCCEEDED")
    ws.admin.set_state(ws.entry("rebased")["job_name"], "JOB_STATE_SUCCEEDED")
    ws.admin.set_state(ws.entry("broken")["job_name"], "JOB_STATE_FAILED")
    ws.job("replaced", epochs=4)
    ws.job("waiting", epochs=5, lifecycle="onSpecChange: wait\n")
    rebased = ws.manifests / "rebased.yaml"
    rebased.write_text(rebased.read_text().replace("gemini-2.5-flash", "gemini-2.5-pro"))
    (ws.manifests / "cancelled.yaml").unlink()
    (ws.manifests / "forgotten.yaml").unlink()
    ws.job("created")
    ws.job("adopted")
    ws.adopted_job = adopt_by_hand(ws, "adopted")
    return ws


def test_plan_json_of_every_kind_of_change_matches_the_schema(world):
    ws = world
    data = plan_json(ws, "--detailed-exitcode", code=2)
    changes = by_key(data)
    assert {k: (c["action"], c["reason"]) for k, c in changes.items()} == {
        "adopted": ("adopt", "untracked-labelled-job"),
        "broken": ("no-op", "job-failed-reported"),
        "cancelled": ("cancel", "key-removed-active"),
        "created": ("create", "new-key"),
        "forgotten": ("forget", "key-removed-finished"),
        "kept": ("no-op", "unchanged"),
        "rebased": ("rebase", "base-model-changed"),
        "replaced": ("replace", "spec-changed"),
        "waiting": ("no-op", "waiting-for-active-job"),
    }
    assert [c["address"] for c in data["changes"]] == sorted(c["address"] for c in data["changes"])
    assert data["summary"] == {"create": 1, "replace": 1, "cancel": 1, "rebase": 1, "adopt": 1, "forget": 1,
                               "no-op": 3}
    assert data["has_changes"] is True and data["problems"] == []
    state = ws.state_json()
    assert (data["lineage"], data["serial"]) == (state["lineage"], state["serial"])

    assert changes["created"]["before"] is None and changes["created"]["job"] is None
    assert changes["created"]["after"]["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": "3"}
    replaced = changes["replaced"]
    assert replaced["job"]["name"] == ws.entry("replaced")["job_name"]
    assert replaced["job"]["state"] == "JOB_STATE_RUNNING" and replaced["job"]["updateTime"].endswith("Z")
    assert replaced["fieldChanges"] == [{"path": "supervisedTuningSpec.hyperParameters.epochCount",
                                         "before": "3", "after": "4"}]
    assert changes["cancelled"]["after"] is None and changes["cancelled"]["before"]["baseModel"] == "gemini-2.5-flash"
    assert changes["forgotten"]["job"]["state"] == "JOB_STATE_SUCCEEDED"
    assert changes["rebased"]["fieldChanges"] == [{"path": "baseModel", "before": "gemini-2.5-flash",
                                                   "after": "gemini-2.5-pro"}]
    assert changes["rebased"]["lifecycle"] == {"onSpecChange": "replace", "onFailure": "report",
                                               "onBaseModelChange": "rebase", "preventCancel": False,
                                               "onUpstreamChange": "retune",
                                               "onMissing": "report"}
    assert changes["adopted"]["job"]["name"] == ws.adopted_job
    assert changes["broken"]["job"]["state"] == "JOB_STATE_FAILED"
    # The same world planned again, and `--format json`, give the same document.
    assert plan_json(ws, "--format", "json") == data


def test_saved_plan_and_show_agree_with_the_plan(world):
    ws = world
    planned = plan_json(ws)
    text = ws.plan()
    assert text.code == 0, text.err
    planfile = ws.root / "plans" / "next.plan"
    saved = ws.plan("--out", str(planfile))
    assert saved.code == 0 and f"Saved the plan to: {planfile}" in saved.err

    on_disk = json.loads(planfile.read_text())
    assert errors(on_disk) == []  # the file itself, with kind and tool_version
    assert on_disk["kind"] == "tuning-reconciler-plan" and on_disk["tool_version"]
    assert {k: v for k, v in on_disk.items() if k not in ("kind", "tool_version")} == planned

    shown_json = ws.run("show", str(planfile), "--json", state=False)
    assert shown_json.code == 0, shown_json.err
    shown = json.loads(shown_json.out)
    assert errors(shown) == []
    assert shown == planned

    shown_text = ws.run("show", str(planfile), state=False)
    assert shown_text.code == 0, shown_text.err
    assert "\x1b[" not in shown_text.out  # not a terminal
    assert shown_text.out == text.out  # exactly what `plan` printed
    assert_text_agrees(shown_text.out, shown)
    assert "kept" not in shown_text.out  # an unchanged key is not shown at all


def test_blocked_plan_lists_its_problems_and_is_not_saved(ws):
    ws.job("keeper")
    ws.job("guarded", lifecycle="preventCancel: true\n")
    ws.job("strict", lifecycle="onSpecChange: fail\n")
    assert ws.apply().code == 0
    ws.admin.advance(0.5)
    ws.job("guarded", epochs=9, lifecycle="preventCancel: true\n")
    ws.job("strict", epochs=2, lifecycle="onSpecChange: fail\n")
    ws.job("newcomer")
    data = plan_json(ws, code=1)
    changes = by_key(data)
    assert {k: (c["action"], c["reason"]) for k, c in changes.items()} == {
        "guarded": ("no-op", "spec-changed"), "keeper": ("no-op", "unchanged"),
        "newcomer": ("create", "new-key"), "strict": ("no-op", "spec-changed"),
    }
    problems = {p["address"]: p["message"] for p in data["problems"]}
    assert sorted(problems) == [f"{PROJECT}/{LOCATION}/guarded", f"{PROJECT}/{LOCATION}/strict"]
    assert "lifecycle.preventCancel is true" in problems[f"{PROJECT}/{LOCATION}/guarded"]
    assert problems[f"{PROJECT}/{LOCATION}/strict"].startswith("spec changed and lifecycle.onSpecChange=fail: ")
    assert changes["guarded"]["lifecycle"]["preventCancel"] is True
    assert changes["strict"]["lifecycle"]["onSpecChange"] == "fail"

    text = ws.plan()
    assert text.code == 1
    assert_text_agrees(text.out, data)

    planfile = ws.root / "blocked.plan"
    refused = ws.plan("--out", str(planfile))
    assert refused.code == 1 and not planfile.exists()  # a blocked plan is never saved

    (ws.manifests / "guarded.yaml").unlink()  # removing a preventCancel key is blocked too
    data = plan_json(ws, code=1)
    guarded = by_key(data)["guarded"]
    assert (guarded["action"], guarded["reason"], guarded["after"]) == ("no-op", "key-removed-active", None)
    assert "has lifecycle.preventCancel" in {p["address"]: p["message"] for p in data["problems"]}[guarded["address"]]


def test_empty_plan_and_failed_job_recreate(ws):
    ws.job("alpha", dataset="gs://bucket/fail.jsonl", lifecycle="onFailure: recreate\n")
    data = plan_json(ws)
    assert (data["lineage"], data["serial"]) == (None, 0)  # no state yet
    assert ws.apply().code == 0
    data = plan_json(ws)
    assert data["has_changes"] is False and data["summary"]["no-op"] == 1
    ws.admin.advance(10)  # the job FAILED
    data = plan_json(ws)
    (change,) = data["changes"]
    assert (change["action"], change["reason"]) == ("create", "job-failed-recreate")
    assert change["job"]["state"] == "JOB_STATE_FAILED" and change["job"]["endTime"].endswith("Z")
    assert change["job"]["errorMessage"] and change["before"] is not None


# ------------------------------------------------------------------ the schema itself


def test_schema_is_valid_2020_12_and_documented():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["additionalProperties"] is False
    for name in ("change", "jobRef", "fieldChange", "lifecycle", "problem"):
        assert SCHEMA["$defs"][name]["additionalProperties"] is False, name
    for name in ("action", "reason", "change", "jobRef", "fieldChange", "lifecycle", "spec"):
        assert SCHEMA["$defs"][name]["description"], name
    assert all(p.get("description") for p in SCHEMA["properties"].values())


def rules() -> dict[str, list[str]]:
    """action -> the reasons the schema allows with it (the allOf if/then rules of a change)."""
    out: dict[str, list[str]] = {}
    for rule in SCHEMA["$defs"]["change"]["allOf"]:
        action = rule["if"]["properties"]["action"]["const"]
        assert action not in out, action
        out[action] = rule["then"]["properties"]["reason"]["enum"]
    return out


def test_action_and_reason_enums_match_the_code():
    """Adding an Action or a Reason without updating schemas/plan.schema.json fails here."""
    actions = [a.value for a in Action]
    reasons = [r.value for r in Reason]
    assert sorted(SCHEMA["$defs"]["action"]["enum"]) == sorted(actions)
    assert sorted(SCHEMA["$defs"]["reason"]["enum"]) == sorted(reasons)
    assert sorted(SCHEMA["properties"]["summary"]["required"]) == sorted(actions)
    assert sorted(SCHEMA["properties"]["summary"]["properties"]) == sorted(actions)
    allowed = rules()
    assert sorted(allowed) == sorted(actions)  # every action says which reasons go with it
    assert sorted({r for rs in allowed.values() for r in rs}) == sorted(reasons)  # and every reason is used


def test_lifecycle_enums_match_the_manifest_schema():
    manifest = load_manifest_schema()["properties"]["lifecycle"]["properties"]
    ours = SCHEMA["$defs"]["lifecycle"]["properties"]
    for name in ("onSpecChange", "onFailure", "onBaseModelChange"):
        assert ours[name]["enum"] == manifest[name]["enum"], name
    assert set(ours) == set(manifest) - {"ignoreDrift"}  # the plan does not carry ignoreDrift


SPEC = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}
JOB = JobRef(f"projects/1/locations/{LOCATION}/tuningJobs/2", "JOB_STATE_RUNNING", "2026-01-01T00:00:00Z")


def change(action: Action, reason: Reason, **fields) -> Change:
    values = dict(before=SPEC, after=SPEC, job=JOB, spec_hash="0123456789abcdef")
    values.update(fields)
    return Change(address=f"{PROJECT}/{LOCATION}/k", key="k", project=PROJECT, location=LOCATION, action=action,
                  reason=reason, detail="why", **values)


def every_pair() -> list[Change]:
    """One Change per (action, reason) pair the planner makes, shaped as the planner shapes it."""
    removed = dict(after=None)
    return [
        change(Action.CREATE, Reason.NEW_KEY, before=None, job=None),
        change(Action.CREATE, Reason.JOB_GONE, before=None, job=None, lifecycle=Lifecycle(on_missing="recreate")),
        change(Action.CREATE, Reason.JOB_FAILED_RECREATE),
        change(Action.REPLACE, Reason.SPEC_CHANGED, field_changes=(FieldChange("description", "a", "b"),)),
        change(Action.CANCEL, Reason.KEY_REMOVED_ACTIVE, **removed),
        change(Action.REBASE, Reason.BASE_MODEL_CHANGED),
        change(Action.ADOPT, Reason.UNTRACKED_JOB),
        change(Action.ADOPT, Reason.UNRECORDED_CREATE),
        change(Action.FORGET, Reason.KEY_REMOVED_FINISHED, **removed),
        change(Action.FORGET, Reason.KEY_REMOVED_GONE, before=None, job=None, after=None, spec_hash=None),
        change(Action.FORGET, Reason.KEY_MOVED, **removed),
        change(Action.NOOP, Reason.UNCHANGED),
        change(Action.NOOP, Reason.JOB_FAILED_REPORTED),
        change(Action.NOOP, Reason.JOB_GONE_REPORTED, before=None, job=None),
        change(Action.NOOP, Reason.WAITING_FOR_ACTIVE),
        change(Action.NOOP, Reason.SPEC_CHANGED, lifecycle=Lifecycle(on_spec_change="fail")),
        change(Action.NOOP, Reason.KEY_REMOVED_ACTIVE, lifecycle=Lifecycle(prevent_cancel=True), **removed),
        # Job graphs: a job built from another job's output.
        change(Action.REPLACE, Reason.UPSTREAM_CHANGED, inputs=(UPSTREAM_INPUT,), waits_for=("p/l/base",),
               spec_hash=None, field_changes=(FieldChange("preTunedModel.tunedModelName", "m@1", "${x}"),)),
        change(Action.NOOP, Reason.UPSTREAM_CHANGED, inputs=(UPSTREAM_INPUT,),
               lifecycle=Lifecycle(on_upstream_change="keep")),
        change(Action.NOOP, Reason.UPSTREAM_BLOCKED, before=None, job=None, spec_hash=None,
               inputs=(UPSTREAM_INPUT,)),
    ]


UPSTREAM_INPUT = Input(("preTunedModel", "tunedModelName"), "${jobs.p/l/base.tunedModel.model}", ("p/l/base",),
                       None, "projects/1/locations/l/models/2@1")


def test_every_action_and_reason_the_planner_makes_validates():
    pairs = every_pair()
    assert {c.reason for c in pairs} == set(Reason) and {c.action for c in pairs} == set(Action)
    for c in pairs:
        data = Plan([c], [PlanProblem(c.address, "blocked")], lineage="l", serial=3).to_json()
        assert errors(data) == [], (c.action, c.reason)


@pytest.mark.parametrize("mutate, complaint", [
    (lambda d: d.pop("format_version"), "'format_version' is a required property"),
    (lambda d: d.update(format_version="2.0"), "'1.0' was expected"),
    (lambda d: d.update(extra=1), "Additional properties are not allowed"),
    (lambda d: d["summary"].pop("rebase"), "'rebase' is a required property"),
    (lambda d: d["changes"][0].update(action="delete"), "'delete' is not one of"),
    (lambda d: d["changes"][0].update(reason="because"), "'because' is not one of"),
    (lambda d: d["changes"][0].update(reason="key-removed-gone"), "'key-removed-gone' is not one of"),
    (lambda d: d["changes"][0].update(after=None), "None is not of type 'object'"),
    (lambda d: d["changes"][0].update(note="x"), "Additional properties are not allowed"),
    (lambda d: d["changes"][0]["job"].update(state="RUNNING"), "does not match"),
    (lambda d: d["changes"][0]["job"].pop("name"), "'name' is a required property"),
    (lambda d: d["changes"][0]["fieldChanges"][0].pop("path"), "'path' is a required property"),
    (lambda d: d["changes"][0]["lifecycle"].update(onFailure="ignore"), "'ignore' is not one of"),
    (lambda d: d["problems"].append({"address": "a"}), "'message' is a required property"),
])
def test_schema_refuses_what_the_format_does_not_allow(mutate, complaint):
    good = Plan([change(Action.REPLACE, Reason.SPEC_CHANGED, field_changes=(FieldChange("x", 1, 2),))]).to_json()
    assert errors(good) == []
    bad = copy.deepcopy(good)
    mutate(bad)
    found = errors(bad)
    assert found and any(complaint in e for e in found), found
