"""normalize_spec: the compiled normaliser gives exactly what a plain schema walk gives.

The schema walk below is the straightforward reading of one version's discovery snapshot
(one property look-up per value); the module compiles v1beta1's (the superset) per schema for
speed. Random bodies, shaped by the real TuningJob schema of v1 or v1beta1 and full of the
awkward cases (numbers for int64 strings, enum numbers, wrong types, empty objects, nulls,
unknown and output-only fields), must normalise identically both ways: so v1 jobs keep their
comparable form (and hash) whichever version's tables read them.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from reconciler.apischema.discovery import enum_table, is_output_only
from reconciler.apischema.discovery import snapshot_schemas as discovery_schemas
from reconciler.apischema.normalize import (
    normalize_spec,
    normalized_hash,
    spec_hash,
    visible_in,
)
from reconciler.apischema.versions import surface
from reconciler.model import RESERVED_LABELS

TUNING_JOB_SCHEMA = surface("v1").tuning_job

# --------------------------------------------------------------------------- the oracle


def _scalar(value: Any, prop: dict, where: tuple[str, str, str]) -> Any:
    kind, fmt = prop.get("type"), prop.get("format")
    try:
        if kind == "string" and fmt in ("int64", "uint64"):
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and float(value).is_integer():
                return str(int(value))
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return str(int(value))
        elif kind == "number" and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return float(value)
        elif kind == "integer" and isinstance(value, (int, str)) and not isinstance(value, bool):
            return int(value)
        elif kind == "string" and "enum" in prop and isinstance(value, int) and not isinstance(value, bool):
            names = {n: v for v, n in enum_table(*where, prop["enum"]).items()}  # proto numbers
            return names.get(value, value)
    except (ValueError, OverflowError):
        pass
    return value


def _walk(value: Any, prop: dict, schemas: dict, where: tuple[str, str, str]) -> Any:
    ref = prop.get("$ref")
    if ref is not None:
        schema = schemas.get(ref, {})
        if isinstance(value, dict) and "properties" in schema:
            return _walk_object(value, ref, schemas, where[0])
        return value
    if prop.get("type") == "array" and isinstance(value, list):
        return [_walk(v, prop.get("items", {}), schemas, where) for v in value]
    if prop.get("type") == "object" and isinstance(value, dict):
        out = {k: _walk(v, prop.get("additionalProperties", {}), schemas, where) for k, v in value.items()}
        return {k: v for k, v in out.items() if not (v is None or v == {})}
    return _scalar(value, prop, where)


def _walk_object(obj: dict, name: str, schemas: dict, version: str) -> dict:
    props = schemas[name].get("properties", {})
    out: dict[str, Any] = {}
    for field, value in obj.items():
        prop = props.get(field)
        if prop is None:
            out[field] = value
            continue
        if is_output_only(prop):
            continue
        norm = _walk(value, prop, schemas, (version, name, field))
        if not (norm is None or norm == {}):
            out[field] = norm
    return out


def reference_normalize(spec: dict, version: str = "v1") -> dict:
    schemas = discovery_schemas(version)
    out = _walk_object(spec, surface(version).tuning_job, schemas, version)
    labels = {k: v for k, v in out.get("labels", {}).items() if k not in RESERVED_LABELS}
    if labels:
        out["labels"] = labels
    else:
        out.pop("labels", None)
    return out


# --------------------------------------------------------------------------- random bodies

ODD_VALUES: list[Any] = [None, {}, [], True, False, 0, -1, 3, 2.5, 1e300, float("inf"), "", "7", " 8",
                         "-9", "x", "1.5", 10**30, {"unexpected": 1}]


def _value(prop: dict, schemas: dict, rng: random.Random, depth: int) -> Any:
    if rng.random() < 0.15:
        return rng.choice(ODD_VALUES)
    ref = prop.get("$ref")
    if ref is not None:
        return _body(schemas.get(ref, {}), schemas, rng, depth + 1)
    kind = prop.get("type")
    if kind == "array":
        return [_value(prop.get("items", {}), schemas, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "object":
        inner = prop.get("additionalProperties", {"type": "string"})
        return {f"k{i}": _value(inner, schemas, rng, depth + 1) for i in range(rng.randint(0, 3))}
    if kind == "string" and prop.get("format") in ("int64", "uint64"):
        return rng.choice([rng.randint(-5, 50), str(rng.randint(0, 50)), float(rng.randint(0, 9)), 2.5])
    if kind == "number":
        return rng.choice([rng.random(), rng.randint(0, 9), str(rng.randint(0, 9)), "nan-ish"])
    if kind == "integer":
        return rng.choice([rng.randint(-3, 9), str(rng.randint(0, 9)), "12x"])
    if kind == "string" and "enum" in prop:
        return rng.choice([rng.choice(prop["enum"]), rng.randint(-1, len(prop["enum"]) + 1)])
    if kind == "boolean":
        return rng.random() < 0.5
    return rng.choice(["a", "gs://b/c.jsonl", "gemini-2.5-flash"])


def _body(schema: dict, schemas: dict, rng: random.Random, depth: int) -> dict:
    props = schema.get("properties", {})
    if depth > 4 or not props:
        return {}
    names = rng.sample(sorted(props), k=min(len(props), rng.randint(0, 6)))
    body = {name: _value(props[name], schemas, rng, depth) for name in names}
    if rng.random() < 0.2:
        body["notInTheSnapshot"] = rng.choice(ODD_VALUES)
    return body


def random_job(rng: random.Random, version: str = "v1") -> dict:
    schemas = discovery_schemas(version)
    job = _body(schemas[surface(version).tuning_job], schemas, rng, 0)
    if rng.random() < 0.5 or not isinstance(job.get("labels", {}), dict):
        # labels are always a map once validated (both sides assume it)
        job["labels"] = {"team": "a", "managed-by": "tuning-reconciler", "reconciler-spec": "0" * 16}
    return job


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_compiled_normaliser_matches_the_schema_walk(seed: int, version: str) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        job = random_job(rng, version)
        assert normalize_spec(job) == reference_normalize(job, version), job


def test_enum_numbers_are_proto_numbers() -> None:
    """The GAPIC client's `enum-encoding=int` numbers: 2 is ADAPTER_SIZE_FOUR, 6 ADAPTER_SIZE_TWO."""
    spec = {"supervisedTuningSpec": {"hyperParameters": {"adapterSize": 2}, "tuningMode": 1}}
    assert normalize_spec(spec)["supervisedTuningSpec"] == {
        "hyperParameters": {"adapterSize": "ADAPTER_SIZE_FOUR"}, "tuningMode": "TUNING_MODE_FULL"}
    veo = {"veoTuningSpec": {"hyperParameters": {"adapterSize": 16}}}
    assert normalize_spec(veo)["veoTuningSpec"]["hyperParameters"]["adapterSize"] == "ADAPTER_SIZE_SIXTEEN"


def test_a_v1_spec_hashes_the_same_under_either_version() -> None:
    """Moving a manifest from v1 to v1beta1 with the same fields is not a change."""
    rng = random.Random(3)
    for _ in range(200):
        job = random_job(rng, "v1")
        assert normalize_spec(job) == reference_normalize(job, "v1beta1")


def test_visible_in_drops_what_a_version_cannot_show() -> None:
    spec = normalize_spec({
        "baseModel": "m", "outputUri": "gs://b/o", "customBaseModel": "gs://b/w",
        "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/t.jsonl", "tuningMode": "TUNING_MODE_FULL",
                                 "hyperParameters": {"epochCount": 2, "batchSize": 8, "learningRate": 0.1}},
        "distillationSpec": {"promptDatasetUri": "gs://b/p.jsonl"}, "labels": {"a": "b"}})
    assert visible_in(spec, "v1") == {"baseModel": "m", "labels": {"a": "b"}, "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://b/t.jsonl", "hyperParameters": {"epochCount": "2"}}}
    assert visible_in(spec, "v1beta1") == spec
    only_beta = normalize_spec({"baseModel": "m", "veoTuningSpec": {"trainingDatasetUri": "gs://b/v.jsonl"}})
    assert visible_in(only_beta, "v1") == {"baseModel": "m"}


def test_known_cases() -> None:
    job = {
        "baseModel": "gemini-2.5-flash",
        "name": "projects/1/locations/l/tuningJobs/2",  # output-only: dropped
        "state": "JOB_STATE_RUNNING",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/t.jsonl",
            "hyperParameters": {"epochCount": 3, "learningRateMultiplier": "1", "adapterSize": 1},
        },
        "labels": {"team": "x", "managed-by": "tuning-reconciler"},
        "encryptionSpec": {},
    }
    assert normalize_spec(job) == {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": "gs://b/t.jsonl",
            "hyperParameters": {"epochCount": "3", "learningRateMultiplier": 1.0,
                                "adapterSize": "ADAPTER_SIZE_ONE"},
        },
        "labels": {"team": "x"},
    }


def test_normalized_hash_is_spec_hash_of_the_raw_spec() -> None:
    rng = random.Random(7)
    for _ in range(100):
        job = random_job(rng)
        assert normalized_hash(normalize_spec(job)) == spec_hash(job)
    assert spec_hash({"baseModel": "m", "labels": {"managed-by": "x"}}) != spec_hash({"baseModel": "n"})


def test_normalising_does_not_alias_the_input_lists() -> None:
    job = {"labels": {"a": "b"}, "baseModel": "m", "supervisedTuningSpec": {"trainingDatasetUri": "gs://x.jsonl"}}
    schemas = discovery_schemas()
    lists = [n for n, p in schemas[TUNING_JOB_SCHEMA]["properties"].items() if p.get("type") == "array"]
    for name in lists:
        job[name] = ["v"]
    out = normalize_spec(job)
    for name in lists:
        if name in out:
            assert out[name] == job[name] and out[name] is not job[name]
