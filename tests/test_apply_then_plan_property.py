"""Property: for any valid spec, after `apply` (and after the job has run and the server has
filled in its defaults) the next `plan` shows no changes. Real HTTP to the emulator."""

from __future__ import annotations

import itertools
import json

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler.api.client import ClientOptions, TuningClient
from reconciler.cli import main
from reconciler.emulator.admin import EmulatorAdmin
from reconciler.manifests.validation import validator
from reconciler.plan.differ import diff_spec

ADAPTERS = ["ADAPTER_SIZE_ONE", "ADAPTER_SIZE_TWO", "ADAPTER_SIZE_FOUR", "ADAPTER_SIZE_EIGHT",
            "ADAPTER_SIZE_SIXTEEN"]
label_text = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)

hyper = st.fixed_dictionaries({}, optional={
    # int64 as a string or an integer; doubles as integers or floats: all the same to the API
    "epochCount": st.one_of(st.integers(1, 20), st.integers(1, 20).map(str)),
    "learningRateMultiplier": st.one_of(st.integers(1, 3), st.floats(0.1, 4.0, allow_nan=False).map(lambda f: round(f, 3))),
    "adapterSize": st.sampled_from(ADAPTERS),
})
uri = st.from_regex(r"gs://bucket/[a-z]{1,8}\.jsonl", fullmatch=True).filter(lambda u: "fail" not in u)
evaluation = st.fixed_dictionaries({"metrics": st.lists(st.one_of(
    st.fixed_dictionaries({"bleuSpec": st.fixed_dictionaries({}, optional={"useEffectiveOrder": st.booleans()})}),
    st.fixed_dictionaries({"aggregationMetrics": st.lists(st.sampled_from(["AVERAGE", "MODE", "STANDARD_DEVIATION"]),
                                                          min_size=1, max_size=2, unique=True),
                           "pointwiseMetricSpec": st.fixed_dictionaries({"metricPromptTemplate": st.just(
                               "Rate the fluency of {response} from 0 to 1.")})})), min_size=1, max_size=2),
    "outputConfig": st.just({"gcsDestination": {"outputUriPrefix": "gs://bucket/eval/"}})})
supervised = st.fixed_dictionaries({"trainingDatasetUri": uri}, optional={
    "validationDatasetUri": uri, "hyperParameters": hyper, "exportLastCheckpointOnly": st.booleans(),
    "evaluationConfig": evaluation})
preference = st.fixed_dictionaries({"trainingDatasetUri": uri}, optional={
    "validationDatasetUri": uri,
    "hyperParameters": st.fixed_dictionaries({}, optional={
        "epochCount": st.one_of(st.integers(1, 20), st.integers(1, 20).map(str)),
        "beta": st.floats(0.01, 1.0, allow_nan=False).map(lambda f: round(f, 3)),
        "adapterSize": st.sampled_from(ADAPTERS)})})
SEEDED_MODEL = "(the model of a job seeded SUCCEEDED)"  # the service tunes only a succeeded job's model further
# Every kind of job the API takes: supervised on a base model, preference optimization, and
# continuous tuning of an earlier tuned model (preTunedModel instead of baseModel).
source = st.one_of(
    st.fixed_dictionaries({"baseModel": st.sampled_from(["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"])}),
    st.fixed_dictionaries({"preTunedModel": st.fixed_dictionaries(
        {"tunedModelName": st.just(SEEDED_MODEL)},
        optional={"checkpointId": st.integers(1, 5).map(str)})}))
tuning = st.one_of(st.fixed_dictionaries({"supervisedTuningSpec": supervised}),
                   st.fixed_dictionaries({"preferenceOptimizationSpec": preference}))
optional_fields = st.fixed_dictionaries({}, optional={
    "tunedModelDisplayName": st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20),
    "description": st.text(max_size=30).filter(lambda t: "\x00" not in t),
    "labels": st.dictionaries(label_text.filter(lambda k: not k.startswith("reconciler") and k != "managed-by"),
                              label_text, max_size=4),
    "encryptionSpec": st.just({"kmsKeyName": "projects/prop/locations/us-central1/keyRings/r/cryptoKeys/k"}),
    "serviceAccount": st.just("tuner@prop.iam.gserviceaccount.com"),
})
spec = st.builds(lambda a, b, c: {**a, **b, **c}, source, tuning, optional_fields)

counter = itertools.count()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from reconciler.emulator.server import EmulatorConfig, start_emulator

    with start_emulator(EmulatorConfig(token="prop-token", virtual_clock=True)) as emulator:
        with EmulatorAdmin(emulator.url, emulator.token) as admin:
            (seeded,) = admin.seed("projects/prop/locations/us-central1", state="JOB_STATE_SUCCEEDED")
            model = emulator.backend.get(seeded)["tunedModel"]["model"]
            yield tmp_path_factory.mktemp("prop"), emulator, admin, model


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=spec)
def test_apply_then_plan_has_no_changes(world, body, monkeypatch, capsys):
    root, emulator, admin, model = world
    if "preTunedModel" in body:
        body = {**body, "preTunedModel": {**body["preTunedModel"], "tunedModelName": model}}
    doc = {"apiVersion": "tuning.reconciler/v1", "kind": "TuningJob",
           "metadata": {"name": f"job-{next(counter)}", "project": "prop", "location": "us-central1"},
           "spec": body}
    assume(not list(validator().iter_errors(doc)))
    n = next(counter)
    manifests = root / f"m{n}"
    manifests.mkdir()
    (manifests / "job.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    monkeypatch.setenv("RECONCILER_ENDPOINT", emulator.url)
    monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", emulator.token)
    common = [str(manifests), "--state", str(root / f"s{n}.json"), "--no-color"]
    assert main(["apply", *common, "--auto-approve"]) == 0, capsys.readouterr().err
    assert main(["plan", *common, "--detailed-exitcode"]) == 0, capsys.readouterr().out
    admin.advance(60)  # the job runs to the end; the server fills in the hyperparameters it chose
    capsys.readouterr()
    code = main(["plan", *common, "--detailed-exitcode", "--json"])
    out = capsys.readouterr().out
    assert code == 0, json.dumps(json.loads(out)["changes"], indent=1)
    # The spec-hash label makes that plan cheap; the full differ must agree on the real job too.
    job_name = json.loads((root / f"s{n}.json").read_text())["entries"][f"prop/us-central1/{doc['metadata']['name']}"]["job_name"]
    with TuningClient(ClientOptions(endpoint=emulator.url, access_token=emulator.token)) as client:
        live = client.get_job(job_name)
    assert live["state"] == "JOB_STATE_SUCCEEDED"
    assert diff_spec(body, live) == []
