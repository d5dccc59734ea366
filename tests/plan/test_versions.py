"""v1 and v1beta1 jobs in one plan (pure): which version each location is read through, and
that neither a v1 read of a v1beta1 job nor a manifest moved between versions is a change."""

from __future__ import annotations

from reconciler.apischema.normalize import spec_hash
from reconciler.model import DesiredJob
from reconciler.plan.differ import diff_spec
from reconciler.plan.live import LiveJob, LiveView
from reconciler.plan.model import Action, Change, Plan, Reason
from reconciler.plan.planfile import desired_from_plan
from reconciler.plan.planner import plan
from reconciler.plan.refresh import plan_fields, read_versions
from reconciler.state.model import State, StateEntry

P, L = "proj", "us-central1"
SFT = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/train.jsonl"}}
BETA = {**SFT, "outputUri": "gs://b/out",
        "supervisedTuningSpec": {**SFT["supervisedTuningSpec"], "tuningMode": "TUNING_MODE_FULL"}}


def desired(key: str, spec: dict, version: str = "v1", location: str = L) -> DesiredJob:
    return DesiredJob(key=key, project=P, location=location, spec=spec, api_version=version)


def live(n: int, key: str, spec: dict, read: str, labelled_spec: dict | None = None,
         state: str = "JOB_STATE_SUCCEEDED") -> LiveJob:
    labels = {"managed-by": "tuning-reconciler", "reconciler-key": key}
    if labelled_spec is not None:
        labels["reconciler-spec"] = spec_hash(labelled_spec)
    raw = {"name": f"projects/1/locations/{L}/tuningJobs/{n}", "state": state, **spec, "labels": labels,
           "createTime": "2026-01-01T00:00:00Z", "updateTime": "2026-01-01T00:00:00Z"}
    return LiveJob.from_api(raw, read)


def entry(key: str, job: LiveJob, version: str | None = None) -> StateEntry:
    return StateEntry(key=key, project=P, location=L, job_name=job.name, job_state=job.state, api_version=version)


def test_a_location_is_read_through_v1beta1_when_any_job_there_is() -> None:
    both = [desired("a", SFT), desired("b", BETA, "v1beta1"), desired("c", SFT, location="europe-west4")]
    assert read_versions(both, State()) == {(P, L): "v1beta1", (P, "europe-west4"): "v1"}
    # A key that left the manifests still counts through its state entry.
    gone = StateEntry(key="old", project=P, location="asia-east1", api_version="v1beta1")
    assert read_versions([], State(entries={gone.address: gone})) == {(P, "asia-east1"): "v1beta1"}


def test_plan_fields_select_each_versions_fields() -> None:
    v1, beta = plan_fields("v1"), plan_fields("v1beta1")
    assert "outputUri" not in v1 and "tuningJobState" not in v1 and "distillationSpec" not in v1
    assert {"outputUri", "tuningJobState", "distillationSpec", "customBaseModel"} <= set(
        beta.removeprefix("nextPageToken,tuningJobs(").removesuffix(")").split(","))


def test_a_v1_read_of_a_v1beta1_job_is_not_a_change() -> None:
    """Read through v1, the job lacks outputUri and tuningMode: not a change, with or without
    the spec-hash label to say so."""
    shown_by_v1 = {**SFT}
    for labelled in (BETA, None):
        job = live(1, "b", shown_by_v1, "v1", labelled_spec=labelled)
        (change,) = plan([desired("b", BETA, "v1beta1")], State(entries={entry("b", job).address: entry("b", job)}),
                         LiveView(listed={(P, L): [job]})).changes
        assert (change.action, change.reason) == (Action.NOOP, Reason.UNCHANGED), change.detail
    assert diff_spec(BETA, shown_by_v1, "v1") == []
    assert [c.path for c in diff_spec(BETA, shown_by_v1, "v1beta1")] == ["outputUri", "supervisedTuningSpec.tuningMode"]


def test_a_real_change_hidden_from_a_v1_read_still_shows_through_the_spec_hash() -> None:
    before = {**BETA, "outputUri": "gs://b/elsewhere"}
    job = live(1, "b", SFT, "v1", labelled_spec=before)
    (change,) = plan([desired("b", BETA, "v1beta1")], State(entries={entry("b", job).address: entry("b", job)}),
                     LiveView(listed={(P, L): [job]})).changes
    assert change.action is Action.REPLACE and [c.path for c in change.field_changes] == ["(spec hash)"]


def test_moving_a_manifest_from_v1_to_v1beta1_keeps_its_hash_and_plans_nothing() -> None:
    job = live(1, "a", SFT, "v1beta1", labelled_spec=SFT)
    e = entry("a", job)
    for version in ("v1", "v1beta1"):
        (change,) = plan([desired("a", SFT, version)], State(entries={e.address: e}),
                         LiveView(listed={(P, L): [job]})).changes
        assert change.action is Action.NOOP and change.api_version == version


def test_changes_carry_the_version_apply_goes_through() -> None:
    beta_job = live(2, "gone", BETA, "v1beta1", labelled_spec=BETA, state="JOB_STATE_RUNNING")
    removed = entry("gone", beta_job, "v1beta1")
    p = plan([desired("new", BETA, "v1beta1"), desired("plain", SFT)], State(entries={removed.address: removed}),
             LiveView(listed={(P, L): [beta_job]}))
    versions = {c.key: (c.action, c.api_version) for c in p.changes}
    assert versions == {"new": (Action.CREATE, "v1beta1"), "plain": (Action.CREATE, "v1"),
                        "gone": (Action.CANCEL, "v1beta1")}


def test_saved_plans_keep_the_version_and_older_ones_read_as_v1() -> None:
    change = Change(address=f"{P}/{L}/b", key="b", project=P, location=L, action=Action.CREATE,
                    reason=Reason.NEW_KEY, detail="", after=BETA, api_version="v1beta1")
    data = Plan([change]).to_json()
    assert data["changes"][0]["apiVersion"] == "v1beta1"
    (again,) = desired_from_plan(Plan.from_json(data))
    assert again.api_version == "v1beta1"
    del data["changes"][0]["apiVersion"]
    assert Plan.from_json(data).changes[0].api_version == "v1"
