from reconciler.apischema.normalize import normalize_spec, spec_hash
from reconciler.plan.differ import ABSENT, diff_spec, only_base_model_changed

SPEC = {
    "baseModel": "gemini-2.5-flash",
    "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://b/train.jsonl",
        "hyperParameters": {"epochCount": "3", "adapterSize": "ADAPTER_SIZE_FOUR"},
    },
    "labels": {"team": "support"},
}


def live_of(spec: dict, **extra) -> dict:
    job = {
        "name": "projects/1/locations/us-central1/tuningJobs/9",
        "state": "JOB_STATE_SUCCEEDED",
        "createTime": "2026-01-01T00:00:00Z",
        "tunedModel": {"model": "projects/1/locations/us-central1/models/5@1"},
        **spec,
    }
    job["labels"] = {**spec.get("labels", {}), "managed-by": "tuning-reconciler", "reconciler-key": "k"}
    job.update(extra)
    return job


def test_identical_spec_has_no_changes_despite_output_only_fields_and_identity_labels():
    assert diff_spec(SPEC, live_of(SPEC)) == []


def test_int64_as_integer_and_enum_as_number_are_the_same_value():
    # 2 is ADAPTER_SIZE_FOUR by its proto number (ADAPTER_SIZE_TWO, listed before it, is 6)
    desired = {**SPEC, "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/train.jsonl",
                                                "hyperParameters": {"epochCount": 3, "adapterSize": 2}}}
    assert diff_spec(desired, live_of(SPEC)) == []
    assert spec_hash(desired) == spec_hash(SPEC)


def test_server_filled_hyperparameters_are_not_a_change():
    live = live_of(SPEC)
    live["supervisedTuningSpec"] = {**SPEC["supervisedTuningSpec"],
                                    "hyperParameters": {"epochCount": "3", "adapterSize": "ADAPTER_SIZE_FOUR",
                                                        "learningRateMultiplier": 1.0}}
    assert diff_spec(SPEC, live) == []


def test_one_hyperparameter_against_several_server_filled_ones_is_no_change():
    # Found by the apply-then-plan property test: DeepDiff by default calls an object that shares
    # under a third of its keys "replaced whole", which hid the server-defaulted rule.
    desired = {"baseModel": "gemini-2.5-flash", "preferenceOptimizationSpec": {
        "trainingDatasetUri": "gs://b/p.jsonl", "hyperParameters": {"beta": 1.0}}}
    live = live_of({"baseModel": "gemini-2.5-flash", "preferenceOptimizationSpec": {
        "trainingDatasetUri": "gs://b/p.jsonl", "hyperParameters": {
            "epochCount": "10", "learningRateMultiplier": 1.0, "adapterSize": "ADAPTER_SIZE_EIGHT", "beta": 1.0}}})
    assert diff_spec(desired, live) == []
    desired["preferenceOptimizationSpec"]["hyperParameters"]["beta"] = 0.5
    (change,) = diff_spec(desired, live)
    assert (change.path, change.before, change.after) == ("preferenceOptimizationSpec.hyperParameters.beta", 1.0, 0.5)


def test_changed_field_reports_dotted_path_and_values():
    desired = {**SPEC, "supervisedTuningSpec": {**SPEC["supervisedTuningSpec"],
                                                "hyperParameters": {"epochCount": 5, "adapterSize": "ADAPTER_SIZE_FOUR"}}}
    (change,) = diff_spec(desired, live_of(SPEC))
    assert change.path == "supervisedTuningSpec.hyperParameters.epochCount"
    assert change.describe() == "supervisedTuningSpec.hyperParameters.epochCount 3 -> 5"


def test_removed_user_field_and_added_label_are_changes():
    live = live_of({**SPEC, "description": "old"})
    desired = {**SPEC, "labels": {"team": "support", "tier": "gold"}}
    changes = {c.path: c for c in diff_spec(desired, live)}
    assert set(changes) == {"description", "labels.tier"}
    assert changes["description"].after is ABSENT and changes["description"].before == "old"
    assert changes["labels.tier"].before is ABSENT


def test_only_base_model_changed():
    changes = diff_spec({**SPEC, "baseModel": "gemini-3-flash"}, live_of(SPEC))
    assert only_base_model_changed(changes)
    more = diff_spec({**SPEC, "baseModel": "gemini-3-flash", "description": "x"}, live_of(SPEC))
    assert not only_base_model_changed(more)
    assert not only_base_model_changed([])


def test_normalize_drops_empty_objects_and_reserved_labels():
    assert normalize_spec({"baseModel": "m", "supervisedTuningSpec": {"trainingDatasetUri": "gs://a/b",
                                                                        "hyperParameters": {}},
                           "labels": {"managed-by": "tuning-reconciler"}}) == {
        "baseModel": "m", "supervisedTuningSpec": {"trainingDatasetUri": "gs://a/b"}}
    assert len(spec_hash(SPEC)) == 16


def test_whole_server_filled_object_absent_from_manifest_is_not_a_change():
    desired = {"baseModel": "m", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl"}}
    live = live_of({"baseModel": "m", "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://b/t.jsonl",
        "hyperParameters": {"epochCount": "10", "learningRateMultiplier": 1.0, "adapterSize": "ADAPTER_SIZE_EIGHT"}}})
    assert diff_spec(desired, live) == []


def test_added_object_is_reported_leaf_by_leaf():
    desired = {**SPEC, "encryptionSpec": {"kmsKeyName": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}}
    (change,) = diff_spec(desired, live_of(SPEC))
    assert change.path == "encryptionSpec.kmsKeyName" and change.before is ABSENT
