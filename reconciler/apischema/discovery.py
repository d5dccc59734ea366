"""The pinned, trimmed snapshots of Google's `aiplatform` discovery documents, one per REST
version (`v1`, `v1beta1`; see `versions.py`).

The full documents (3-4 MB each) ship inside the `google-api-python-client` wheel. We keep
only what the tool needs: the `projects.locations.tuningJobs` resource (with its
`operations`), the schemas reachable from the tuning-job API surface, and the document's
metadata (`revision`, `rootUrl`, global `parameters`, ...), so each snapshot is still a valid
discovery document that `googleapiclient.discovery.build_from_document` accepts. Enum numbers
that differ from the discovery order are pinned beside them (`x-reconciler-enumNumbers`,
read from google-cloud-aiplatform's protos: see `proto_enums.py`).

`trim` is pure; reading the installed wheels and writing the snapshot are the I/O edges.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from reconciler import jsonio
from reconciler.apischema.versions import VERSIONS, surface
from reconciler.errors import ConfigError
from reconciler.model import V1

# v1's names, kept for callers that only ever meant v1.
DOCUMENT_RESOURCE = surface(V1).document_resource
SNAPSHOT_NAME = surface(V1).snapshot_name
# The API surface the tool reads and writes; everything they reference comes along.
ROOT_SCHEMAS: tuple[str, ...] = surface(V1).root_schemas
RESOURCE_PATH: tuple[str, ...] = ("projects", "locations", "tuningJobs")
TUNING_JOB_SCHEMA = surface(V1).tuning_job
ENUM_NUMBERS_KEY = "x-reconciler-enumNumbers"


def schemas_dir() -> Path:
    """`schemas/` beside the package in a checkout or editable install; in a wheel the same
    files ship inside the package as `reconciler/schemas/` (see pyproject.toml)."""
    package = Path(__file__).resolve().parents[1]  # reconciler/
    checkout = package.parent / "schemas"
    if checkout.is_dir():
        return checkout
    return package / "schemas"


def snapshot_path(version: str = V1) -> Path:
    return schemas_dir() / "discovery" / surface(version).snapshot_name


def is_output_only(prop: dict[str, Any]) -> bool:
    """The one rule for "the service sets this field": `readOnly`, or "Output only." in its
    description (the schemas leave it out, normalising drops it, the emulator refuses it)."""
    return prop.get("readOnly") is True or "Output only." in prop.get("description", "")


def is_required(prop: dict[str, Any]) -> bool:
    return prop.get("description", "").lstrip().startswith("Required.")


@functools.cache
def snapshot_schemas(version: str = V1) -> dict[str, dict[str, Any]]:
    """The pinned snapshot's `schemas`, read once per process. Do not mutate."""
    return _snapshot(version)["schemas"]


@functools.cache
def _snapshot(version: str) -> dict[str, Any]:
    return load_snapshot(version=version)


@functools.cache
def enum_numbers(version: str = V1) -> dict[str, dict[str, int]]:
    """`"Schema.field"` -> {value: proto number} where that differs from the discovery order."""
    return _snapshot(version).get(ENUM_NUMBERS_KEY, {})


def enum_table(version: str, schema: str, field: str, values: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Every value of one enum field with its proto number (the discovery order unless the
    snapshot pins another number)."""
    moved = enum_numbers(version).get(f"{schema}.{field}", {})
    return {value: moved.get(value, i) for i, value in enumerate(values)}


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


def trim(doc: dict[str, Any], source: str | None = None, version: str = V1,
         enum_numbers: dict[str, dict[str, int]] | None = None, enum_source: str | None = None) -> dict[str, Any]:
    """Keep the tuningJobs resource and the schemas reachable from the tuning-job surface;
    `enum_numbers` (see `proto_enums`) is pinned beside them, for those schemas only."""
    if "revision" not in doc or "schemas" not in doc:
        raise ConfigError("not a discovery document: it has no `revision` or `schemas`")
    resource = _resource(doc)
    schemas = doc["schemas"]
    roots = surface(version).root_schemas
    # Method request/response bodies (e.g. CancelTuningJobRequest, Empty) come along too.
    names = reachable_schemas(schemas, [*roots, *_refs(resource)])
    trimmed: dict[str, Any] = {k: v for k, v in doc.items() if k not in ("schemas", "resources")}
    nested: dict[str, Any] = resource
    for name in reversed(RESOURCE_PATH):
        nested = {"resources": {name: nested}}
    trimmed["resources"] = nested["resources"]
    trimmed["schemas"] = {name: schemas[name] for name in sorted(names)}
    trimmed["x-reconciler-snapshot"] = {
        "roots": list(roots),
        "resource": ".".join(RESOURCE_PATH),
        "source": source or "unknown",
    }
    if enum_numbers is not None:
        kept = {k: v for k, v in enum_numbers.items() if k.split(".", 1)[0] in names}
        trimmed[ENUM_NUMBERS_KEY] = {k: dict(sorted(kept[k].items())) for k in sorted(kept)}
        trimmed["x-reconciler-snapshot"]["enumNumbers"] = enum_source or "unknown"
    return trimmed


def dumps(doc: dict[str, Any]) -> str:
    """Stable text: sorted keys, fixed indent, trailing newline (so diffs stay small)."""
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def load_installed_document(version: str = V1) -> tuple[dict[str, Any], str]:
    """The full document from the installed `google-api-python-client`, and where it came from."""
    import importlib.metadata
    import importlib.resources

    try:
        files = importlib.resources.files("googleapiclient")
        package = importlib.metadata.version("google-api-python-client")
    except (ModuleNotFoundError, importlib.metadata.PackageNotFoundError):
        raise ConfigError(
            "google-api-python-client is not installed; install the test extras "
            "(pip install -e '.[test]') to refresh the discovery snapshot"
        ) from None
    document = surface(version).document_resource
    try:
        doc = jsonio.loads((files / document).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"google-api-python-client {package} does not ship {document}") from None
    return doc, f"google-api-python-client {package}: googleapiclient/{document}"


def refreshed_snapshot(version: str) -> tuple[dict[str, Any], str]:
    """The snapshot `schema refresh-discovery` writes for `version`, from the installed
    google-api-python-client (the document) and google-cloud-aiplatform (enum numbers)."""
    from reconciler.apischema.proto_enums import numbers_from_protos

    doc, source = load_installed_document(version)
    numbers, enum_source = numbers_from_protos(doc["schemas"], surface(version))
    return trim(doc, source, version, numbers, enum_source), source


def load_snapshot(path: Path | None = None, version: str = V1) -> dict[str, Any]:
    path = path or snapshot_path(version)
    try:
        return jsonio.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"discovery snapshot {path} is missing; run `reconciler schema refresh-discovery`"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"discovery snapshot {path} is not valid JSON: {exc}") from None


def load_snapshots() -> dict[str, dict[str, Any]]:
    """Every version's pinned snapshot, by version (what `schema generate` reads)."""
    return {version: load_snapshot(version=version) for version in VERSIONS}
