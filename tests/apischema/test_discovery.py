"""The pinned discovery snapshot: trimmed right, self-contained, usable by Google's client."""

from __future__ import annotations

import json

import pytest

from reconciler.apischema import discovery
from reconciler.apischema.versions import VERSIONS, surface, twin
from reconciler.errors import ConfigError

BOTH = pytest.mark.parametrize("version", VERSIONS)


@pytest.fixture(scope="module")
def snapshots() -> dict[str, dict]:
    return discovery.load_snapshots()


@pytest.fixture(scope="module")
def snapshot(snapshots: dict[str, dict]) -> dict:
    return snapshots["v1"]


@BOTH
def test_snapshot_records_revision_and_roots(snapshots: dict, version: str) -> None:
    snapshot = snapshots[version]
    assert snapshot["revision"] == "20261106"
    assert snapshot["name"] == "aiplatform" and snapshot["version"] == version
    for root in surface(version).root_schemas:
        assert root in snapshot["schemas"]
    assert snapshot["x-reconciler-snapshot"]["roots"] == list(surface(version).root_schemas)
    assert "google-cloud-aiplatform" in snapshot["x-reconciler-snapshot"]["enumNumbers"]


@BOTH
def test_snapshot_is_trimmed_to_the_tuning_surface(snapshots: dict, version: str) -> None:
    snapshot = snapshots[version]
    prefix = surface(version).prefix
    assert list(snapshot["resources"]) == ["projects"]
    locations = snapshot["resources"]["projects"]["resources"]["locations"]
    assert list(locations["resources"]) == ["tuningJobs"]
    jobs = locations["resources"]["tuningJobs"]
    assert {"cancel", "create", "get", "list", "rebaseTunedModel"} <= set(jobs["methods"])
    assert {"get", "cancel"} <= set(jobs["resources"]["operations"]["methods"])
    # A small part of the document's ~1,800 schemas, and nothing unrelated.
    assert 90 <= len(snapshot["schemas"]) <= 220
    assert prefix + "Endpoint" not in snapshot["schemas"]
    assert prefix + "CustomJob" not in snapshot["schemas"]


def test_v1beta1_snapshot_has_the_v1beta1_tuning_surface(snapshots: dict) -> None:
    job = snapshots["v1beta1"]["schemas"]["GoogleCloudAiplatformV1beta1TuningJob"]["properties"]
    for field in surface("v1beta1").tuning_specs + ("customBaseModel", "outputUri", "tuningJobState"):
        assert field in job
    methods = snapshots["v1beta1"]["resources"]["projects"]["resources"]["locations"]["resources"]["tuningJobs"]
    assert "list" not in methods["resources"]["operations"]["methods"]  # v1beta1 has no operations.list


def test_v1beta1_is_a_superset_of_v1_with_the_same_types(snapshots: dict) -> None:
    """What normalisation relies on: one comparable form serves both versions."""
    def signature(prop: dict) -> tuple:
        items = prop.get("items", {})
        return (prop.get("type"), prop.get("format"), twin(prop.get("$ref", ""), "v1"), tuple(prop.get("enum", ())),
                discovery.is_output_only(prop), items.get("type"), twin(items.get("$ref", ""), "v1"))
    old, new = snapshots["v1"]["schemas"], snapshots["v1beta1"]["schemas"]
    for name in discovery.reachable_schemas(old, [surface("v1").tuning_job, surface("v1").schema("Context")]):
        schema = old[name]
        other = new.get(twin(name, "v1beta1"))
        assert other is not None, name
        for field, prop in schema.get("properties", {}).items():
            assert signature(prop) == signature(other["properties"][field]), (name, field)


@BOTH
def test_enum_numbers_follow_the_protos(version: str) -> None:
    """`ADAPTER_SIZE_TWO` was added out of order: number 6, listed second (so 2 means FOUR)."""
    name = surface(version).schema("SupervisedHyperParameters")
    values = discovery.snapshot_schemas(version)[name]["properties"]["adapterSize"]["enum"]
    table = discovery.enum_table(version, name, "adapterSize", values)
    assert table["ADAPTER_SIZE_TWO"] == 6 and table["ADAPTER_SIZE_FOUR"] == 2
    assert table["ADAPTER_SIZE_UNSPECIFIED"] == 0 and table["ADAPTER_SIZE_ONE"] == 1
    job = surface(version).tuning_job
    states = discovery.snapshot_schemas(version)[job]["properties"]["state"]["enum"]
    assert discovery.enum_table(version, job, "state", states) == {s: i for i, s in enumerate(states)}


def test_enum_numbers_match_the_protos_of_the_installed_aiplatform() -> None:
    aiplatform = pytest.importorskip("google.cloud.aiplatform_v1beta1")
    name = "GoogleCloudAiplatformV1beta1VeoHyperParameters"
    values = discovery.snapshot_schemas("v1beta1")[name]["properties"]["adapterSize"]["enum"]
    table = discovery.enum_table("v1beta1", name, "adapterSize", values)
    proto = aiplatform.VeoHyperParameters.AdapterSize
    assert table == {v: proto[v].value for v in values}


@BOTH
def test_every_ref_in_the_snapshot_resolves_inside_it(snapshots: dict, version: str) -> None:
    snapshot = snapshots[version]
    refs = set(discovery._refs(snapshot["schemas"])) | set(discovery._refs(snapshot["resources"]))
    assert refs, "expected $refs"
    assert refs <= set(snapshot["schemas"])
    # And the closure from the roots is exactly what is kept.
    closure = discovery.reachable_schemas(
        snapshot["schemas"], [*surface(version).root_schemas, *discovery._refs(snapshot["resources"])])
    assert closure == set(snapshot["schemas"])


@BOTH
def test_snapshot_file_is_stable_text(version: str) -> None:
    text = discovery.snapshot_path(version).read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert discovery.dumps(json.loads(text)) == text


@BOTH
def test_google_client_builds_from_the_snapshot(snapshots: dict, version: str) -> None:
    """The trimmed document is still a discovery document Google's client accepts."""
    snapshot = snapshots[version]
    httplib2 = pytest.importorskip("httplib2")
    googleapiclient = pytest.importorskip("googleapiclient.discovery")
    service = googleapiclient.build_from_document(snapshot, http=httplib2.Http())
    jobs = service.projects().locations().tuningJobs()
    create = jobs.create(parent="projects/p/locations/us-central1", body={"baseModel": "m"})
    assert create.method == "POST"
    assert create.uri.endswith(f"/{version}/projects/p/locations/us-central1/tuningJobs?alt=json")
    rebase = jobs.rebaseTunedModel(parent="projects/p/locations/l", body={})
    assert "/tuningJobs:rebaseTunedModel" in rebase.uri
    op = jobs.operations().get(name="projects/p/locations/l/tuningJobs/1/operations/2")
    assert op.method == "GET" and op.uri.split("?")[0].endswith("/tuningJobs/1/operations/2")


@BOTH
def test_trim_of_the_installed_document(version: str) -> None:
    doc, source = discovery.load_installed_document(version)
    trimmed = discovery.trim(doc, source, version)
    assert trimmed["revision"] == doc["revision"]
    assert set(trimmed["schemas"]) < set(doc["schemas"])
    assert trimmed["rootUrl"] == doc["rootUrl"] and trimmed["parameters"] == doc["parameters"]
    assert "google-api-python-client" in source


@BOTH
def test_snapshot_matches_the_installed_document_when_versions_agree(snapshots: dict, version: str) -> None:
    refreshed, source = discovery.refreshed_snapshot(version)
    pinned = snapshots[version]["x-reconciler-snapshot"]
    if source != pinned["source"] or refreshed["x-reconciler-snapshot"]["enumNumbers"] != pinned["enumNumbers"]:
        pytest.skip(f"installed {source} differs from the pinned snapshot's source")
    text = discovery.snapshot_path(version).read_text(encoding="utf-8")
    assert discovery.dumps(refreshed) == text


def test_trim_rejects_what_is_not_a_discovery_document() -> None:
    with pytest.raises(ConfigError, match="not a discovery document"):
        discovery.trim({"foo": 1})
    with pytest.raises(ConfigError, match="no resource projects.locations.tuningJobs"):
        discovery.trim({"revision": "1", "schemas": {}, "resources": {}})


def test_missing_schema_reference_is_reported() -> None:
    with pytest.raises(ConfigError, match="no schema named 'Missing'"):
        discovery.reachable_schemas({"A": {"$ref": "Missing"}}, ["A"])


def test_load_snapshot_errors_are_clear(tmp_path) -> None:
    with pytest.raises(ConfigError, match="refresh-discovery"):
        discovery.load_snapshot(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        discovery.load_snapshot(bad)
