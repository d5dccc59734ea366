"""jsonschema-rs decides validity, jsonschema explains: on random documents shaped like
manifests, both must agree (except where ECMA-262 and Python's `re` differ on purpose)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifests.validation import check_document, fast_validator, validator

VALID: dict[str, Any] = {
    "apiVersion": "tuning.reconciler/v1", "kind": "TuningJob",
    "metadata": {"name": "alpha", "project": "my-project", "location": "us-central1"},
    "spec": {"baseModel": "gemini-2.5-flash", "tunedModelDisplayName": "x",
             "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/train.jsonl",
                                      "hyperParameters": {"epochCount": "3", "adapterSize": "ADAPTER_SIZE_FOUR",
                                                          "learningRateMultiplier": 1.0}},
             "labels": {"team": "nlp"}},
    "lifecycle": {"onSpecChange": "replace", "ignoreDrift": ["labels.team"]},
}
PATHS = [("metadata", "name"), ("metadata", "project"), ("spec", "baseModel"), ("spec", "labels"),
         ("spec", "labels", "team"), ("spec", "supervisedTuningSpec", "hyperParameters", "epochCount"),
         ("spec", "supervisedTuningSpec", "hyperParameters", "adapterSize"),
         ("spec", "supervisedTuningSpec", "hyperParameters", "learningRateMultiplier"),
         ("spec", "supervisedTuningSpec", "trainingDatasetUri"), ("spec", "preTunedModel"),
         ("spec", "encryptionSpec"), ("spec", "createTime"), ("lifecycle", "onFailure"),
         ("lifecycle", "ignoreDrift"), ("lifecycle", "preventCancel"), ("spec", "unknownField")]
# No newlines: there the two differ by design (see the test below).
text = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                    text, st.sampled_from(["3", "-1", "ADAPTER_SIZE_EIGHT", "gs://b/x.jsonl", "nlp", "out-of-band"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(text, inner, max_size=3)), max_leaves=8)


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), values), max_size=3))
def test_both_validators_agree_on_mutated_manifests(mutations) -> None:
    doc = VALID
    for path, value in mutations:
        doc = _set(doc, path, value)
    assert fast_validator().is_valid(doc) == validator().is_valid(doc)


def test_the_untouched_manifest_is_valid_for_both() -> None:
    assert fast_validator().is_valid(VALID) and validator().is_valid(VALID)


def test_a_trailing_newline_in_a_pattern_field_is_an_error_python_re_would_miss() -> None:
    doc = _set(VALID, ("spec", "labels", "team"), "nlp\n")
    assert validator().is_valid(doc)  # Python's `$` matches before a final newline
    (problem,) = check_document(doc, "m.yaml", {("spec", "labels", "team"): (9, 11)}, {})
    assert (problem.line, problem.column, problem.path) == (9, 11, "spec.labels.team")
    assert "does not match" in problem.message


def test_integers_past_64_bits_are_judged_too() -> None:
    doc = _set(VALID, ("spec", "supervisedTuningSpec", "hyperParameters", "epochCount"), 2**70)
    (problem,) = check_document(doc, "m.yaml", {}, {})
    assert "epochCount" in problem.path
