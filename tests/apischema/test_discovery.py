"""The pinned discovery snapshot: trimmed right, self-contained, usable by Google's client."""

from __future__ import annotations

import json

import pytest

from reconciler.apischema import discovery
from reconciler.errors import ConfigError


@pytest.fixture(scope="module")
def snapshot() -> dict:
    return discovery.load_snapshot()


def test_snapshot_records_revision_and_roots(snapshot: dict) -> None:
    assert snapshot["revision"] == "20261106"
    assert snapshot["name"] == "aiplatform" and snapshot["version"] == "v1"
    for root in discovery.ROOT_SCHEMAS:
        assert root in snapshot["schemas"]
    assert snapshot["x-reconciler-snapshot"]["roots"] == list(discovery.ROOT_SCHEMAS)


def test_snapshot_is_trimmed_to_the_tuning_surface(snapshot: dict) -> None:
    assert list(snapshot["resources"]) == ["projects"]
    locations = snapshot["resources"]["projects"]["resources"]["locations"]
    assert list(locations["resources"]) == ["tuningJobs"]
    jobs = locations["resources"]["tuningJobs"]
    assert set(jobs["methods"]) == {"cancel", "create", "get", "list", "rebaseTunedModel"}
    assert {"get", "list", "cancel"} <= set(jobs["resources"]["operations"]["methods"])
    # About 100 of the document's ~1,800 schemas, and nothing unrelated.
    assert 90 <= len(snapshot["schemas"]) <= 130
    assert "GoogleCloudAiplatformV1Endpoint" not in snapshot["schemas"]
    assert "GoogleCloudAiplatformV1CustomJob" not in snapshot["schemas"]


def test_every_ref_in_the_snapshot_resolves_inside_it(snapshot: dict) -> None:
    refs = set(discovery._refs(snapshot["schemas"])) | set(discovery._refs(snapshot["resources"]))
    assert refs, "expected $refs"
    assert refs <= set(snapshot["schemas"])
    # And the closure from the roots is exactly what is kept.
    closure = discovery.reachable_schemas(
        snapshot["schemas"], [*discovery.ROOT_SCHEMAS, *discovery._refs(snapshot["resources"])])
    assert closure == set(snapshot["schemas"])


def test_snapshot_file_is_stable_text() -> None:
    text = discovery.snapshot_path().read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert discovery.dumps(json.loads(text)) == text


def test_google_client_builds_from_the_snapshot(snapshot: dict) -> None:
    """The trimmed document is still a discovery document Google's client accepts."""
    httplib2 = pytest.importorskip("httplib2")
    googleapiclient = pytest.importorskip("googleapiclient.discovery")
    service = googleapiclient.build_from_document(snapshot, http=httplib2.Http())
    jobs = service.projects().locations().tuningJobs()
    create = jobs.create(parent="projects/p/locations/us-central1", body={"baseModel": "m"})
    assert create.method == "POST"
    assert create.uri.endswith("/v1/projects/p/locations/us-central1/tuningJobs?alt=json")
    rebase = jobs.rebaseTunedModel(parent="projects/p/locations/l", body={})
    assert "/tuningJobs:rebaseTunedModel" in rebase.uri
    op = jobs.operations().get(name="projects/p/locations/l/tuningJobs/1/operations/2")
    assert op.method == "GET" and op.uri.split("?")[0].endswith("/tuningJobs/1/operations/2")


def test_trim_of_the_installed_document() -> None:
    doc, source = discovery.load_installed_document()
    trimmed = discovery.trim(doc, source)
    assert trimmed["revision"] == doc["revision"]
    assert set(trimmed["schemas"]) < set(doc["schemas"])
    assert trimmed["rootUrl"] == doc["rootUrl"] and trimmed["parameters"] == doc["parameters"]
    assert "google-api-python-client" in source


def test_snapshot_matches_the_installed_document_when_versions_agree(snapshot: dict) -> None:
    doc, source = discovery.load_installed_document()
    if source != snapshot["x-reconciler-snapshot"]["source"]:
        pytest.skip(f"installed {source} differs from the pinned snapshot's source")
    text = discovery.snapshot_path().read_text(encoding="utf-8")
    assert discovery.dumps(discovery.trim(doc, source)) == text


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
