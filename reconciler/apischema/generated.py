"""The generated schema files under `schemas/`, each read once per process (do not mutate)."""

from __future__ import annotations

import functools
from typing import Any

from reconciler import jsonio
from reconciler.apischema.discovery import schemas_dir
from reconciler.apischema.versions import surface
from reconciler.errors import ConfigError
from reconciler.model import V1

SPEC_SCHEMA_FILE = surface(V1).spec_schema_file  # tuningjob.v1.schema.json
MANIFEST_SCHEMA_FILE = "manifest.schema.json"
PLAN_SCHEMA_FILE = "plan.schema.json"


@functools.cache
def load(name: str) -> dict[str, Any]:
    path = schemas_dir() / name
    try:
        return jsonio.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing; run `reconciler schema generate`") from None


def spec_schema(version: str = V1) -> dict[str, Any]:
    """`tuningjob.VERSION.schema.json`: a TuningJob as written in a manifest's `spec`."""
    return load(surface(version).spec_schema_file)


def manifest_schema() -> dict[str, Any]:
    """`manifest.schema.json`: one whole manifest document (self-contained)."""
    return load(MANIFEST_SCHEMA_FILE)


def plan_schema() -> dict[str, Any]:
    """`plan.schema.json`: a saved plan (written by hand, not generated: checked on load)."""
    return load(PLAN_SCHEMA_FILE)
