"""build_report is pure: categories, ignore rules, summary and ordering from hand-made worlds."""

from __future__ import annotations

import random

from reconciler.apischema.normalize import spec_hash
from reconciler.drift.ignore import parse_ignore
from reconciler.drift.report import billable_tokens, build_report, headline
from reconciler.model import ORPHAN, OUT_OF_BAND, PENDING, UNMANAGED, DesiredJob, Lifecycle, SourcePos
from reconciler.plan.live import LiveJob, LiveView
from reconciler.plan.planner import plan
from reconciler.state.model import State, StateEntry

P, L = "proj", "us-central1"
SPEC = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://bkt/train.jsonl"}}


def desired(key: str, spec: dict | None = None, **lifecycle) -> DesiredJob:
    return DesiredJob(key=key, project=P, location=L, spec=spec or SPEC, lifecycle=Lifecycle(**lifecycle),
                      source=SourcePos(f"manifests/{key}.yaml", 1, 1))


def job(n: int, key: str | None = "k", state: str = "JOB_STATE_RUNNING", spec: dict | None = None,
        labels: dict | None = None, **extra) -> LiveJob:
    spec = spec or SPEC
    if labels is None:
        labels = {"managed-by": "tuning-reconciler", "reconciler-key": key, "reconciler-spec": spec_hash(spec)}
    raw = {"name": f"projects/123/locations/{L}/tuningJobs/{n}", "state": state, **spec, "labels": labels,
           "createTime": f"2026-01-01T00:00:{n:02d}Z", "updateTime": "2026-01-01T01:00:00Z", **extra}
    return LiveJob.from_api(raw)


def entry(j: LiveJob | None, key: str, job_state: str | None = None, name: str | None = None) -> StateEntry:
    return StateEntry(key=key, project=P, location=L, job_name=name or (j.name if j else None),
                      spec_hash=spec_hash(SPEC), job_state=job_state or (j.state if j else None))


def report(want: list[DesiredJob], entries: list[StateEntry], jobs: list[LiveJob], fetched: dict | None = None,
           unmanaged: list[LiveJob] | None = None, rules=None, targets=None):
    state = State(entries={e.address: e for e in entries})
    live = LiveView(listed={(P, L): jobs}, fetched=fetched or {})
    return build_report(want, state, live, plan(want, state, live, targets=targets),
                        unmanaged={(P, L): unmanaged} if unmanaged is not None else None, rules=rules,
                        targets=targets)


def kinds(r) -> list[tuple[str, str, str | None]]:
    return [(i.category, i.kind, i.key) for i in r.items]


def test_in_sync_world_has_no_drift():
    j = job(1, "a", state="JOB_STATE_SUCCEEDED")
    r = report([desired("a")], [entry(j, "a")], [j])
    assert r.items == () and not r.has_drift and headline(r) == "No drift."


def test_pending_changes_carry_the_plan_action_reason_and_field_changes():
    running = job(1, "a")
    r = report([desired("a", spec={**SPEC, "description": "v2"}), desired("b")], [entry(running, "a")], [running])
    assert kinds(r) == [(PENDING, "replace", "a"), (PENDING, "create", "b")]
    replace = r.items[0]
    assert replace.reason == "spec-changed" and replace.job == running.name
    assert [fc.path for fc in replace.field_changes] == ["description"]
    assert str(replace.source) == "manifests/a.yaml:1:1"


def test_waiting_and_refused_changes_are_pending_too():
    a, b = job(1, "a"), job(2, "b")
    r = report([desired("a", spec={**SPEC, "description": "x"}, on_spec_change="wait"),
                desired("b", spec={**SPEC, "description": "y"}, on_spec_change="fail")],
               [entry(a, "a"), entry(b, "b")], [a, b])
    assert kinds(r) == [(PENDING, "waiting", "a"), (PENDING, "blocked", "b")]
    assert "onSpecChange=fail" in r.items[1].detail and r.problems


def test_out_of_band_cancel_fail_expire_since_last_apply():
    jobs = [job(1, "a", state="JOB_STATE_CANCELLED"), job(2, "b", state="JOB_STATE_FAILED",
                                                          error={"code": 13, "message": "boom"}),
            job(3, "c", state="JOB_STATE_EXPIRED"), job(4, "d", state="JOB_STATE_FAILED")]
    entries = [entry(jobs[0], "a", job_state="JOB_STATE_RUNNING"), entry(jobs[1], "b", job_state="JOB_STATE_PENDING"),
               entry(jobs[2], "c", job_state="JOB_STATE_RUNNING"),
               entry(jobs[3], "d")]  # d had already failed at the last apply: old news, not drift
    r = report([desired(k) for k in "abcd"], entries, jobs)
    assert kinds(r) == [(OUT_OF_BAND, "cancelled", "a"), (OUT_OF_BAND, "failed", "b"), (OUT_OF_BAND, "expired", "c")]
    assert r.items[1].detail.startswith("PENDING -> FAILED since the last apply") and "boom" in r.items[1].detail


def test_identity_labels_changed_and_job_gone():
    relabelled = job(1, labels={"team": "x"})  # someone removed our labels: the refresh had to `get` it
    gone = "projects/123/locations/us-central1/tuningJobs/99"
    r = report([desired("a"), desired("b")], [entry(relabelled, "a"), entry(None, "b", name=gone)], [],
               fetched={relabelled.name: relabelled, gone: None})
    assert (OUT_OF_BAND, "labels-changed", "a") in kinds(r)
    # A vanished job is counted (out-of-band) and not re-created unless onMissing says so.
    assert (OUT_OF_BAND, "gone", "b") in kinds(r) and (PENDING, "create", "b") not in kinds(r)
    again = report([desired("a"), desired("b", on_missing="recreate")], [entry(relabelled, "a"),
                                                                         entry(None, "b", name=gone)], [],
                   fetched={relabelled.name: relabelled, gone: None})
    assert (OUT_OF_BAND, "gone", "b") in kinds(again) and (PENDING, "create", "b") in kinds(again)
    labels = next(i for i in r.items if i.kind == "labels-changed")
    assert "managed-by label missing" in labels.detail
    other_key = job(2, "someone-else")
    r = report([desired("a")], [entry(other_key, "a")], [other_key])
    assert "reconciler-key=someone-else" in next(i for i in r.items if i.kind == "labels-changed").detail


def test_orphans_are_state_entries_whose_key_left_the_manifests():
    running, done = job(1, "a"), job(2, "b", state="JOB_STATE_SUCCEEDED")
    r = report([], [entry(running, "a"), entry(done, "b")], [running, done])
    assert kinds(r) == [(ORPHAN, "cancel", "a"), (ORPHAN, "forget", "b")]
    assert r.items[0].source is None


def test_unmanaged_jobs_only_when_listed_and_never_with_targets():
    hand = job(5, labels={}, tunedModelDisplayName="by-hand")
    assert report([], [], [], unmanaged=[hand]).counts()[UNMANAGED] == 1
    item = report([], [], [], unmanaged=[hand]).items[0]
    assert (item.key, item.address, item.display_name) == (None, f"{P}/{L}/5", "by-hand")
    assert report([], [], []).include_unmanaged is False
    assert report([desired("a")], [], [], unmanaged=[hand], targets=["a"]).counts()[UNMANAGED] == 0


def test_targets_limit_out_of_band_items_as_they_limit_the_plan():
    a, b = job(1, "a", state="JOB_STATE_CANCELLED"), job(2, "b", state="JOB_STATE_CANCELLED")
    entries = [entry(a, "a", job_state="JOB_STATE_RUNNING"), entry(b, "b", job_state="JOB_STATE_RUNNING")]
    r = report([desired("a"), desired("b")], entries, [a, b], targets=["b"])
    assert kinds(r) == [(OUT_OF_BAND, "cancelled", "b")]


def test_ignored_items_are_kept_counted_and_do_not_make_drift():
    a = job(1, "a", state="JOB_STATE_CANCELLED")
    rules = parse_ignore("legacy-*  orphan\n", ".reconcilerignore")
    old = job(2, "legacy-1", state="JOB_STATE_SUCCEEDED")
    r = report([desired("a", ignore_drift=("out-of-band",)), desired("b", ignore_drift=("pending-change",))],
               [entry(a, "a", job_state="JOB_STATE_RUNNING"), entry(old, "legacy-1")], [a, old], rules=rules)
    assert not r.has_drift and r.drift == []
    assert {(i.kind, i.ignored_by) for i in r.ignored} == {
        ("cancelled", "lifecycle.ignoreDrift"), ("create", "lifecycle.ignoreDrift"), ("forget", ".reconcilerignore:1")}
    assert r.ignored_counts() == {PENDING: 1, OUT_OF_BAND: 1, ORPHAN: 1, UNMANAGED: 0}
    assert headline(r) == "No drift (3 ignored)."


def test_ignore_drift_field_paths_hide_only_changes_entirely_under_them():
    j = job(1, "a", state="JOB_STATE_SUCCEEDED")
    only_labels = {**SPEC, "labels": {"team": "x"}}
    r = report([desired("a", spec=only_labels, ignore_drift=("labels",))], [entry(j, "a")], [j])
    assert [i.ignored_by for i in r.items] == ["lifecycle.ignoreDrift"]
    more = {**only_labels, "description": "also"}
    r = report([desired("a", spec=more, ignore_drift=("labels",))], [entry(j, "a")], [j])
    assert [i.ignored_by for i in r.items] == [None]


def test_summary_counts_states_models_tokens_and_oldest_active():
    stats = {"supervisedTuningDataStats": {"totalBillableTokenCount": "9007199254740993"}}  # > 2**53: int64 string
    done = job(1, "a", state="JOB_STATE_SUCCEEDED", tuningDataStats=stats,
               tunedModel={"model": "projects/123/locations/us-central1/models/7@1",
                           "endpoint": "projects/123/locations/us-central1/endpoints/8"})
    older = job(2, "a", state="JOB_STATE_SUCCEEDED", tunedModel={"model": "m@1"},
                tuningDataStats={"preferenceOptimizationDataStats": {"totalBillableTokenCount": "7"}})
    running, queued = job(3, "b"), job(4, "c", state="JOB_STATE_PENDING")
    hand = job(9, labels={}, state="JOB_STATE_RUNNING", tuningDataStats=stats)
    r = report([desired("a"), desired("b"), desired("c")],
               [entry(done, "a"), entry(running, "b"), entry(queued, "c")],
               [done, older, running, queued], unmanaged=[hand])
    s = r.summary
    assert s.jobs_by_state == {"JOB_STATE_PENDING": 1, "JOB_STATE_RUNNING": 1, "JOB_STATE_SUCCEEDED": 2}
    assert s.unmanaged_jobs_by_state == {"JOB_STATE_RUNNING": 1}
    assert s.total_billable_tokens == 9007199254740993 + 7  # unmanaged jobs are not counted
    assert [(m.job.rsplit("/", 1)[1], m.current, m.endpoint) for m in s.tuned_models] == [
        ("1", True, "projects/123/locations/us-central1/endpoints/8"), ("2", False, None)]
    assert s.oldest_active_job is not None and s.oldest_active_job.key == "b"
    assert [(loc.project, loc.location, loc.billable_tokens) for loc in s.locations] == [(P, L, 9007199254740993 + 7)]


def test_billable_tokens_tolerates_missing_and_bad_values():
    assert billable_tokens({}) == 0
    assert billable_tokens({"tuningDataStats": {"supervisedTuningDataStats": {"totalBillableTokenCount": "x"},
                                                "other": {"totalBillableTokenCount": 5}, "junk": [1]}}) == 5
    assert billable_tokens({"tuningDataStats": {"a": {"totalBillableTokenCount": True}}}) == 0


def test_items_are_sorted_the_same_whatever_the_input_order():
    jobs = [job(n, f"k{n:02d}", state=random.Random(n).choice(["JOB_STATE_CANCELLED", "JOB_STATE_RUNNING"]))
            for n in range(1, 30)]
    entries = [entry(j, j.key or "", job_state="JOB_STATE_RUNNING") for j in jobs]
    want = [desired(j.key or "", spec={**SPEC, "description": "d"}) for j in jobs[::2]]
    first = report(want, entries, jobs)
    shuffled = jobs[:]
    random.Random(7).shuffle(shuffled)
    again = report(list(reversed(want)), list(reversed(entries)), shuffled)
    assert first == again and len(first.items) > 30
    assert [i.sort_key() for i in first.items] == sorted(i.sort_key() for i in first.items)


def test_active_labelled_jobs_nothing_tracks_are_reported_as_strays():
    tracked, duplicate, orphaned = job(1, "a"), job(2, "a", state="JOB_STATE_PENDING"), job(3, "gone-key")
    adoptable, finished = job(4, "b"), job(5, "old", state="JOB_STATE_SUCCEEDED")
    r = report([desired("a"), desired("b")], [entry(tracked, "a")], [tracked, duplicate, orphaned, adoptable, finished])
    strays = [(i.key, i.job) for i in r.items if i.kind == "stray"]
    # the adoptable one is the plan's (adopt), the finished one costs nothing
    assert strays == [("a", duplicate.name), ("gone-key", orphaned.name)]
    assert (PENDING, "blocked", "a") in kinds(r)  # and the plan refuses to pick one for the user
    stray = next(i for i in r.items if i.kind == "stray")
    assert stray.category == OUT_OF_BAND and stray.detail.startswith("PENDING job labelled for this key that "
                                                                     "state does not track: billed but unmanaged")


def test_an_imported_unlabelled_job_is_not_label_drift():
    hand_made = job(1, None, labels={"team": "x"})
    imported = StateEntry(key="a", project=P, location=L, job_name=hand_made.name, spec_hash=spec_hash(SPEC),
                          job_state=hand_made.state, imported=True)
    assert not any(i.kind == "labels-changed" for i in report([desired("a")], [imported], [hand_made]).items)
    relabelled = job(1, "other")
    assert (OUT_OF_BAND, "labels-changed", "a") in kinds(report([desired("a")], [imported], [relabelled]))
