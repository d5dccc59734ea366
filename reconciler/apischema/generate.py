"""Generate JSON Schema 2020-12 from the discovery snapshots. `generate` is a pure function of
the documents (one per REST version); `write_schemas` and `stale_files` are its I/O edge
(`schema generate [--check]`). Each version gets its spec schema (`tuningjob.VERSION.schema.json`);
the one manifest schema branches on `apiVersion` (`if`/`then`) to the spec of that version, so
one `$schema` line or `yaml.schemas` glob serves manifests of every version.

Rules, all read off the document rather than listed field by field:
- an output-only field (`readOnly`, or "Output only." in its description) is left out of
  `properties`; its name goes into our `x-outputOnly` annotation on the object so that
  `validate` can say "output-only" instead of "unknown field";
- a field whose description starts with "Required." is `required`;
- enums are kept, with their descriptions as `enumDescriptions` (VS Code / yaml-language-server
  show them in completion);
- `int64`/`uint64` (JSON strings on the wire) accept a decimal string or an integer;
  `int32`/`uint32` an integer in range; `double`/`float` a number; `google-datetime` an
  RFC 3339 string; `google-duration` a string like `3.5s`; `byte` base64;
- every object rejects unknown fields (`additionalProperties: false`), maps excepted;
- "mutually exclusive with `x`" in a description becomes `not: {required: [this, x]}`
  (when `x` is a field of the same message);
- each discovery schema is one `$defs` entry; `$ref`s point there.
The overlay (`schema_overlay`) adds the few rules the document cannot express.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from reconciler.apischema import overlay as schema_overlay
from reconciler.apischema.discovery import is_output_only, is_required
from reconciler.apischema.generated import MANIFEST_SCHEMA_FILE, SPEC_SCHEMA_FILE
from reconciler.apischema.versions import VERSIONS, Surface, surface
from reconciler.errors import ConfigError
from reconciler.model import DRIFT_CATEGORIES, KEY_PATTERN, KIND, V1, Lifecycle

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SPEC_ROOT_DEF = "TuningJobManifestSpec"  # v1's; other versions append their name (…V1beta1)
# Request bodies the tool sends besides a TuningJob: kept in `$defs` for callers to use.
EXTRA_DEFS = ("RebaseTunedModelRequest",)

INT64 = {"type": ["integer", "string"], "pattern": r"^-?[0-9]{1,19}$",
         "minimum": -(2**63), "maximum": 2**63 - 1}
UINT64 = {"type": ["integer", "string"], "pattern": r"^[0-9]{1,20}$",
          "minimum": 0, "maximum": 2**64 - 1}
RFC3339 = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
           r"([Zz]|[+-][0-9]{2}:[0-9]{2})$")
FORMATS: dict[tuple[str, str], dict[str, Any]] = {
    ("string", "int64"): INT64,
    ("string", "uint64"): UINT64,
    ("integer", "int32"): {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    ("integer", "uint32"): {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    ("number", "double"): {"type": "number"},
    ("number", "float"): {"type": "number"},
    ("string", "google-datetime"): {"type": "string", "format": "date-time", "pattern": RFC3339},
    ("string", "google-duration"): {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    ("string", "byte"): {"type": "string", "contentEncoding": "base64",
                         "pattern": r"^[A-Za-z0-9+/_-]*={0,2}$"},
}
# `labels.team`, `supervisedTuningSpec.hyperParameters.epochCount`, `x.items[0]`
_FIELD_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+|\[[0-9]+\])*$"
_MUTUALLY_EXCLUSIVE = re.compile(r"mutually exclusive with ([^.]*)", re.IGNORECASE)
_BACKTICKED = re.compile(r"`([A-Za-z0-9_]+)`")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _exclusions(name: str, prop: dict[str, Any], fields: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for clause in _MUTUALLY_EXCLUSIVE.findall(prop.get("description", "")):
        for other in map(camel, _BACKTICKED.findall(clause)):
            if other in fields and other != name:  # the document names fields absent in v1
                pairs.append(tuple(sorted((name, other))))
    return pairs  # type: ignore[return-value]


class _Generator:
    """Walks the discovery schemas from the roots, collecting `$defs`."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas
        self.defs: dict[str, dict[str, Any]] = {}

    def ref(self, name: str) -> dict[str, Any]:
        if name not in self.defs:
            if name not in self.schemas:
                raise ConfigError(f"discovery snapshot has no schema {name!r}")
            self.defs[name] = {}  # placeholder first: schemas refer to themselves
            self.defs[name] = self.message(self.schemas[name])
        return {"$ref": f"#/$defs/{name}"}

    def message(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "properties" not in schema:
            return self.field(schema)
        fields = schema["properties"]
        out: dict[str, Any] = {"type": "object", "additionalProperties": False}
        if schema.get("description"):
            out["description"] = schema["description"]
        props: dict[str, Any] = {}
        required: list[str] = []
        output_only: list[str] = []
        exclusive: set[tuple[str, str]] = set()
        for name in sorted(fields):
            prop = fields[name]
            if is_output_only(prop):
                output_only.append(name)
                continue
            props[name] = self.field(prop)
            if is_required(prop):
                required.append(name)
            exclusive.update(_exclusions(name, prop, fields))
        out["properties"] = props
        if required:
            out["required"] = required
        if output_only:
            out["x-outputOnly"] = output_only
        if exclusive:
            out["allOf"] = [{"not": {"required": list(pair)}} for pair in sorted(exclusive)]
        return out

    def field(self, prop: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if prop.get("description"):
            out["description"] = prop["description"]
        if prop.get("deprecated"):
            out["deprecated"] = True
        if "$ref" in prop:
            return {**out, **self.ref(prop["$ref"])}
        kind, fmt = prop.get("type"), prop.get("format")
        if kind == "any" or kind is None:
            return out
        if "properties" in prop:  # an inline message
            return {**self.message(prop), **out}
        out.update(FORMATS.get((kind, fmt)) or {"type": kind})
        if kind == "array":
            out["items"] = self.field(prop.get("items", {}))
        elif kind == "object" and "additionalProperties" in prop:
            out["additionalProperties"] = self.field(prop["additionalProperties"])
        if "enum" in prop:
            out["enum"] = list(prop["enum"])
            if "enumDescriptions" in prop:
                out["enumDescriptions"] = list(prop["enumDescriptions"])
        return out


def _output_only_paths(defs: dict[str, Any], name: str, prefix: str, stack: tuple[str, ...],
                       found: set[str]) -> None:
    """Dotted paths (`[]` for list items) of output-only fields below the `name` message."""
    schema = defs[name]
    for field in schema.get("x-outputOnly", ()):
        found.add(prefix + field)
    for field, sub in schema.get("properties", {}).items():
        path = prefix + field
        while sub.get("type") == "array":
            sub, path = sub.get("items", {}), path + "[]"
        ref = sub.get("$ref", "")
        child = ref.removeprefix("#/$defs/")
        if ref and child not in stack:  # recursive messages (e.g. Schema) end here
            _output_only_paths(defs, child, path + ".", (*stack, child), found)


def _lifecycle_schema() -> dict[str, Any]:
    default = Lifecycle()
    def choice(default_value: str, options: dict[str, str], what: str) -> dict[str, Any]:
        return {"type": "string", "enum": list(options), "enumDescriptions": list(options.values()),
                "default": default_value, "description": what}
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "How plan/apply treat this job over its life. All optional.",
        "properties": {
            "onSpecChange": choice(default.on_spec_change, {
                "replace": "Cancel the active job (if any) and create a new one.",
                "wait": "Wait until the running job ends, then create the new one.",
                "fail": "Make the plan fail instead.",
            }, "What to do when the spec of an existing job changes."),
            "onFailure": choice(default.on_failure, {
                "report": "Report the failed job and do nothing.",
                "recreate": "Create the job again.",
            }, "What to do with a FAILED, EXPIRED or out-of-band CANCELLED job."),
            "onMissing": choice(default.on_missing, {
                "report": "Report the job in plan and drift and do nothing (no second bill).",
                "recreate": "Create the job again.",
            }, "What to do when the service no longer returns the job state tracks "
               "(deleted, or its history expired)."),
            "onBaseModelChange": choice(default.on_base_model_change, {
                "retune": "Tune again from scratch on the new base model.",
                "rebase": "Rebase the SUCCEEDED tuned model onto the new base model.",
            }, "What to do when only `baseModel` changes on a SUCCEEDED job."),
            "onUpstreamChange": choice(default.on_upstream_change, {
                "retune": "Tune this job again once a job it references (`${jobs.KEY.OUTPUT}`) "
                          "was re-tuned and has succeeded.",
                "keep": "Keep this job as it was built; a re-tuned upstream job does not replace it.",
            }, "What to do when a job this one references was re-tuned, so that its output changed."),
            "preventCancel": {"type": "boolean", "default": default.prevent_cancel,
                              "description": "Make the plan fail instead of cancelling this job."},
            "ignoreDrift": {"type": "array", "uniqueItems": True,
                            "default": list(default.ignore_drift),
                            "items": {"anyOf": [
                                {"enum": list(DRIFT_CATEGORIES),
                                 "description": "A drift category: its items are counted as "
                                                "ignored in `reconciler drift`, not reported."},
                                {"type": "string", "pattern": _FIELD_PATH,
                                 "description": "A spec field path (e.g. `labels.team`): "
                                                "pending changes only in fields under it "
                                                "are ignored."}],
                                      "x-messages": {"anyOf": (
                                          "`{instance}` in `lifecycle.ignoreDrift` is neither a "
                                          "drift category ("
                                          + ", ".join(f"`{c}`" for c in DRIFT_CATEGORIES)
                                          + ") nor a spec field path such as `labels.team`")}},
                            "description": "Drift that `reconciler drift` counts as ignored "
                                           "for this job: categories ("
                                           + ", ".join(f"`{c}`" for c in DRIFT_CATEGORIES)
                                           + ") or spec field paths."},
        },
    }


def _metadata_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": KEY_PATTERN.pattern,
                     "description": "The job's key: unique per project and location.",
                     "x-messages": {"pattern": "`{instance}` is not a valid name: 1-63 characters "
                                               "of lowercase letters, digits and `-`, starting "
                                               "with a letter and not ending with `-`"}},
            "project": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.:-]{0,98}[a-z0-9]$",
                        "description": "Project id or number (else --project or "
                                       "$GOOGLE_CLOUD_PROJECT).",
                        "x-messages": {"pattern": "`{instance}` is not a project id or number"}},
            "location": {"type": "string", "pattern": r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$",
                         "description": "Region, e.g. `us-central1` (else --location or "
                                        "$GOOGLE_CLOUD_LOCATION).",
                         "x-messages": {"pattern": "`{instance}` is not a location such "
                                                   "as `us-central1`"}},
        },
    }


def spec_root_def(version: str) -> str:
    return SPEC_ROOT_DEF if version == V1 else SPEC_ROOT_DEF + version[:1].upper() + version[1:]


def _version_schemas(discovery: dict[str, Any], api: Surface) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the spec schema file of one version, the spec root the manifest refers to)."""
    gen = _Generator(discovery["schemas"])
    gen.ref(api.tuning_job)
    for name in EXTRA_DEFS:
        gen.ref(api.schema(name))
    defs = gen.defs
    schema_overlay.apply_api_rules(defs, api)
    schema_overlay.accept_references(defs)
    paths: set[str] = set()
    _output_only_paths(defs, api.tuning_job, "", (api.tuning_job,), paths)
    revision = discovery.get("revision", "unknown")
    spec_root = {"$ref": f"#/$defs/{api.tuning_job}", **schema_overlay.manifest_spec_rules(api, defs)}
    spec = {
        "$schema": DIALECT,
        "title": f"Vertex AI TuningJob ({api.version}) as written in a tuning-reconciler manifest",
        "description": f"Generated by `reconciler schema generate` from the aiplatform {api.version} "
                       f"discovery document, revision {revision}. Do not edit.",
        **spec_root,
        "$defs": defs,
        "x-discoveryRevision": revision,
        "x-outputOnlyPaths": sorted(paths),
    }
    return spec, spec_root


def _api_version_schema(versions: list[str]) -> dict[str, Any]:
    names = [surface(v).manifest_api_version for v in versions]
    return {"enum": names,
            "enumDescriptions": [f"The Vertex AI `{v}` API and its TuningJob fields." for v in versions],
            "description": "Which Vertex AI API the job is created through and validated against: "
                           + ", ".join(f"`{n}`" for n in names) + "."}


def generate(snapshots: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """File name -> schema, for everything under `schemas/` (the snapshots excepted).
    `snapshots`: the discovery snapshot of each REST version (`discovery.load_snapshots()`)."""
    versions = [v for v in VERSIONS if v in snapshots]
    if not versions:
        raise ConfigError("no discovery snapshot to generate schemas from")
    files: dict[str, dict[str, Any]] = {}
    all_defs: dict[str, Any] = {}
    branches = []
    for version in versions:
        api = surface(version)
        spec, spec_root = _version_schemas(snapshots[version], api)
        files[SPEC_SCHEMA_FILE if version == V1 else api.spec_schema_file] = spec
        all_defs.update(spec["$defs"])  # the versions' names never collide (V1… / V1beta1…)
        all_defs[spec_root_def(version)] = spec_root
        branches.append({
            "if": {"properties": {"apiVersion": {"const": api.manifest_api_version}}, "required": ["apiVersion"]},
            "then": {"properties": {"spec": {"$ref": f"#/$defs/{spec_root_def(version)}"}}},
        })
    revisions = sorted({str(snapshots[v].get("revision", "unknown")) for v in versions})
    revision = ", ".join(revisions)
    manifest = {
        "$schema": DIALECT,
        "title": "tuning-reconciler manifest",
        "description": f"One TuningJob document. Generated by `reconciler schema generate` from the "
                       f"aiplatform {', '.join(versions)} discovery documents, revision {revision}. Do not edit.",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": _api_version_schema(versions),
            "kind": {"const": KIND, "description": "Always `" + KIND + "`."},
            "metadata": _metadata_schema(),
            "spec": {"type": "object",
                     "description": "The TuningJob body as the API of `apiVersion` takes it; output-only "
                                    "fields are rejected. A string field may use another job's output: "
                                    "`${jobs.KEY.tunedModel.model}` (or `.tunedModel.endpoint`, "
                                    "`.name`; KEY or project/location/KEY); `$${` is a literal `${`."},
            "lifecycle": _lifecycle_schema(),
        },
        # The spec's schema follows apiVersion.
        "allOf": branches,
        # Self-contained (no cross-file $ref) so every editor and validator resolves it alone.
        "$defs": all_defs,
        "x-discoveryRevision": revision,
    }
    files[MANIFEST_SCHEMA_FILE] = manifest
    return files


def render(schema: dict[str, Any]) -> str:
    """Stable text so that `schema generate --check` compares exactly."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered(snapshots: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: render(schema) for name, schema in generate(snapshots).items()}


def stale_files(out_dir: Path, snapshots: dict[str, dict[str, Any]]) -> list[str]:
    """Names of generated files that are missing or differ from what `generate` writes."""
    stale = []
    for name, text in rendered(snapshots).items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write_schemas(out_dir: Path, snapshots: dict[str, dict[str, Any]]) -> list[str]:
    """Write the generated files; returns the names that changed."""
    changed = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered(snapshots).items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed
