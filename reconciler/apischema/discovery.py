"""The pinned, trimmed snapshot of Google's `aiplatform v1` discovery document.

The full document (about 3 MB) ships inside the `google-api-python-client` wheel. We keep
only what the tool needs: the `projects.locations.tuningJobs` resource (with its
`operations`), the schemas reachable from the tuning-job API surface, and the document's
metadata (`revision`, `rootUrl`, global `parameters`, ...), so the snapshot is still a valid
discovery document that `googleapiclient.discovery.build_from_document` accepts.

`trim` is pure; reading the installed wheel and writing the snapshot are the I/O edges.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from reconciler import jsonio
from reconciler.errors import ConfigError

DOCUMENT_RESOURCE = "discovery_cache/documents/aiplatform.v1.json"
SNAPSHOT_NAME = "aiplatform.v1.tuning.json"

# The API surface the tool reads and writes; everything they reference comes along.
ROOT_SCHEMAS: tuple[str, ...] = (
    "GoogleCloudAiplatformV1TuningJob",
    "GoogleCloudAiplatformV1RebaseTunedModelRequest",
    "GoogleCloudAiplatformV1ListTuningJobsResponse",
    "GoogleLongrunningOperation",
)
RESOURCE_PATH: tuple[str, ...] = ("projects", "locations", "tuningJobs")
TUNING_JOB_SCHEMA = ROOT_SCHEMAS[0]


def schemas_dir() -> Path:
    """`schemas/` beside the package in a checkout or editable install; in a wheel the same
    files ship inside the package as `reconciler/schemas/` (see pyproject.toml)."""
    package = Path(__file__).resolve().parents[1]  # reconciler/
    checkout = package.parent / "schemas"
    if checkout.is_dir():
        return checkout
    return package / "schemas"


def snapshot_path() -> Path:
    return schemas_dir() / "discovery" / SNAPSHOT_NAME


def is_output_only(prop: dict[str, Any]) -> bool:
    """The one rule for "the service sets this field": `readOnly`, or "Output only." in its
    description (the schemas leave it out, normalising drops it, the emulator refuses it)."""
    return prop.get("readOnly") is True or "Output only." in prop.get("description", "")


def is_required(prop: dict[str, Any]) -> bool:
    return prop.get("description", "").lstrip().startswith("Required.")


@functools.cache
def snapshot_schemas() -> dict[str, dict[str, Any]]:
    """The pinned snapshot's `schemas`, read once per process. Do not mutate."""
    return load_snapshot()["schemas"]


def _refs(node: Any) -> Iterator[str]:
    """Every `$ref` name anywhere below `node`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def reachable_schemas(schemas: dict[str, Any], roots: Iterable[str]) -> set[str]:
    """The transitive closure of `$ref`s from `roots` (iterative: the graph has cycles)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in schemas:
            raise ConfigError(f"discovery document has no schema named {name!r}")
        seen.add(name)
        todo.extend(_refs(schemas[name]))
    return seen


def _resource(doc: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = doc
    for name in RESOURCE_PATH:
        try:
            node = node["resources"][name]
        except (KeyError, TypeError):
            raise ConfigError(
                "discovery document has no resource " + ".".join(RESOURCE_PATH)
            ) from None
    return node


def trim(doc: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Keep the tuningJobs resource and the schemas reachable from the tuning-job surface."""
    if "revision" not in doc or "schemas" not in doc:
        raise ConfigError("not a discovery document: it has no `revision` or `schemas`")
    resource = _resource(doc)
    schemas = doc["schemas"]
    # Method request/response bodies (e.g. CancelTuningJobRequest, Empty) come along too.
    names = reachable_schemas(schemas, [*ROOT_SCHEMAS, *_refs(resource)])
    trimmed: dict[str, Any] = {k: v for k, v in doc.items() if k not in ("schemas", "resources")}
    nested: dict[str, Any] = resource
    for name in reversed(RESOURCE_PATH):
        nested = {"resources": {name: nested}}
    trimmed["resources"] = nested["resources"]
    trimmed["schemas"] = {name: schemas[name] for name in sorted(names)}
    trimmed["x-reconciler-snapshot"] = {
        "roots": list(ROOT_SCHEMAS),
        "resource": ".".join(RESOURCE_PATH),
        "source": source or "unknown",
    }
    return trimmed


def dumps(doc: dict[str, Any]) -> str:
    """Stable text: sorted keys, fixed indent, trailing newline (so diffs stay small)."""
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def load_installed_document() -> tuple[dict[str, Any], str]:
    """The full document from the installed `google-api-python-client`, and where it came from."""
    import importlib.metadata
    import importlib.resources

    try:
        files = importlib.resources.files("googleapiclient")
        version = importlib.metadata.version("google-api-python-client")
    except (ModuleNotFoundError, importlib.metadata.PackageNotFoundError):
        raise ConfigError(
            "google-api-python-client is not installed; install the test extras "
            "(pip install -e '.[test]') to refresh the discovery snapshot"
        ) from None
    resource = files / DOCUMENT_RESOURCE
    try:
        doc = jsonio.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"google-api-python-client {version} does not ship {DOCUMENT_RESOURCE}"
        ) from None
    return doc, f"google-api-python-client {version}: googleapiclient/{DOCUMENT_RESOURCE}"


def load_snapshot(path: Path | None = None) -> dict[str, Any]:
    path = path or snapshot_path()
    try:
        return jsonio.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"discovery snapshot {path} is missing; run `reconciler schema refresh-discovery`"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"discovery snapshot {path} is not valid JSON: {exc}") from None
