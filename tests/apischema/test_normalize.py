"""normalize_spec: the compiled normaliser gives exactly what a plain schema walk gives.

The schema walk below is the straightforward reading of the discovery snapshot (one
property look-up per value); the module compiles it per schema for speed. Random bodies,
shaped by the real TuningJob schema and full of the awkward cases (numbers for int64
strings, enum numbers, wrong types, empty objects, nulls, unknown and output-only fields),
must normalise identically both ways.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from reconciler.apischema.discovery import TUNING_JOB_SCHEMA, is_output_only
from reconciler.apischema.discovery import snapshot_schemas as discovery_schemas
from reconciler.apischema.normalize import (
    normalize_spec,
    normalized_hash,
    spec_hash,
)
from reconciler.model import RESERVED_LABELS

# --------------------------------------------------------------------------- the oracle


def _scalar(value: Any, prop: dict) -> Any:
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
            enum = prop["enum"]
            return enum[value] if 0 <= value < len(enum) else value
    except (ValueError, OverflowError):
        pass
    return value


def _walk(value: Any, prop: dict, schemas: dict) -> Any:
    ref = prop.get("$ref")
    if ref is not None:
        schema = schemas.get(ref, {})
        if isinstance(value, dict) and "properties" in schema:
            return _walk_object(value, schema, schemas)
        return value
    if prop.get("type") == "array" and isinstance(value, list):
        return [_walk(v, prop.get("items", {}), schemas) for v in value]
    if prop.get("type") == "object" and isinstance(value, dict):
        out = {k: _walk(v, prop.get("additionalProperties", {}), schemas) for k, v in value.items()}
        return {k: v for k, v in out.items() if not (v is None or v == {})}
    return _scalar(value, prop)


def _walk_object(obj: dict, schema: dict, schemas: dict) -> dict:
    props = schema.get("properties", {})
    out: dict[str, Any] = {}
    for name, value in obj.items():
        prop = props.get(name)
        if prop is None:
            out[name] = value
            continue
        if is_output_only(prop):
            continue
        norm = _walk(value, prop, schemas)
        if not (norm is None or norm == {}):
            out[name] = norm
    return out


def reference_normalize(spec: dict) -> dict:
    schemas = discovery_schemas()
    out = _walk_object(spec, schemas[TUNING_JOB_SCHEMA], schemas)
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


def random_job(rng: random.Random) -> dict:
    schemas = discovery_schemas()
    job = _body(schemas[TUNING_JOB_SCHEMA], schemas, rng, 0)
    if rng.random() < 0.5 or not isinstance(job.get("labels", {}), dict):
        # labels are always a map once validated (both sides assume it)
        job["labels"] = {"team": "a", "managed-by": "tuning-reconciler", "reconciler-spec": "0" * 16}
    return job


@pytest.mark.parametrize("seed", range(40))
def test_compiled_normaliser_matches_the_schema_walk(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        job = random_job(rng)
        assert normalize_spec(job) == reference_normalize(job), job


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
