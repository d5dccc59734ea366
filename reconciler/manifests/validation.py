"""Check one parsed manifest document against the generated schema; explain each failure.

Validity is decided by `jsonschema-rs` (compiled, about 50x faster than `jsonschema` here);
only an invalid document pays for `jsonschema`'s `iter_errors`, whose errors we explain. Each
error becomes a `Problem` placed with the YAML node positions that
`yaml_reader` recorded, with a message that names the field path and, where the schema
knows better (output-only fields, near-miss field names, one-of groups), says so.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterator
from typing import Any

from reconciler.manifests.problems import Path, Positions, Problem, dotted

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import jsonschema_rs
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError
from reconciler.model import KIND, REST_VERSIONS

_DEFS = "#/$defs/"
_ANNOTATIONS = frozenset({"description", "title", "deprecated", "default", "examples"})
_LITERALS = frozenset({"enum", "const", "default", "examples", "x-messages"})


def _def_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS):
            yield ref[len(_DEFS):]
        for value in node.values():
            yield from _def_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _def_refs(value)


def _recursive_defs(defs: dict[str, Any]) -> set[str]:
    edges = {name: set(_def_refs(schema)) for name, schema in defs.items()}
    recursive = set()
    for name in defs:
        seen, todo = set(), list(edges[name])
        while todo:
            ref = todo.pop()
            if ref == name:
                recursive.add(name)
                break
            if ref not in seen and ref in edges:
                seen.add(ref)
                todo.extend(edges[ref])
    return recursive


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema with each `$ref` to a non-recursive `$defs` entry replaced by the
    definition itself. Same meaning (2020-12 `$ref` applies alongside its siblings), but
    jsonschema no longer looks a reference up on every visit: about 30% faster here."""
    defs = schema.get("$defs", {})
    keep = _recursive_defs(defs)
    done: dict[str, dict[str, Any]] = {}

    def target(name: str) -> dict[str, Any]:
        if name not in done:
            done[name] = walk(defs[name])
        return done[name]

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: (v if k in _LITERALS else walk(v)) for k, v in node.items() if k != "$defs"}
        ref = out.get("$ref")
        if not (isinstance(ref, str) and ref.startswith(_DEFS)) or ref[len(_DEFS):] in keep:
            return out
        body = target(ref[len(_DEFS):])
        rest = {k: v for k, v in out.items() if k != "$ref"}
        if (set(rest) - _ANNOTATIONS) & set(body):  # both constrain the same keyword
            return {**rest, "allOf": [body, *rest.get("allOf", [])]}
        return {**body, **rest}

    inlined = walk(schema)
    if "$defs" in schema:
        inlined["$defs"] = schema["$defs"]  # recursive definitions are still referenced
    return inlined


@functools.cache
def validator() -> Draft202012Validator:
    """Built once per process from the generated schema (the test suite checks that schema
    against the meta-schema; doing it here would cost every run ~0.1 s)."""
    from jsonschema import Draft202012Validator

    from reconciler.apischema.generated import manifest_schema

    return Draft202012Validator(inline_refs(manifest_schema()))


@functools.cache
def fast_validator() -> jsonschema_rs.Validator:
    """The same schema compiled by jsonschema-rs: formats are annotations (as in `validator`),
    and nothing is ever fetched."""
    import jsonschema_rs

    from reconciler.apischema.generated import manifest_schema

    return jsonschema_rs.validator_for(manifest_schema(), validate_formats=False, offline=True)


def _is_valid(data: Any) -> bool:
    try:
        return fast_validator().is_valid(data)
    except (ValueError, OverflowError, TypeError):  # a value JSON cannot hold (an integer past 64 bits)
        return validator().is_valid(data)


def _strict_only(data: Any, loc: _Locator) -> list[Problem]:
    """Errors only jsonschema-rs finds: ECMA-262 `$` is the end of the text, while Python's
    `re` also matches before a final newline (`team\n` is no label value for the API)."""
    return [loc.problem(tuple(error.instance_path), f"`{dotted(tuple(error.instance_path)) or '.'}`: "
                                                     f"{_show(error.message, 300)}")
            for error in fast_validator().iter_errors(data)]


class _Locator:
    """Places a path at the nearest recorded YAML position (aliases hide their insides)."""

    def __init__(self, file: str, values: Positions, keys: Positions) -> None:
        self.file, self.values, self.keys = file, values, keys

    def at(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    def last(self, path: Path, names: list[str]) -> str:
        """Of the fields `names` of the mapping at `path`, the one written last."""
        return max(names, key=lambda name: self.at((*path, name), key=True))

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        line, column = self.at(path, key=key)
        return Problem(self.file, line, column, dotted(path), message)


def _kind_name(value: Any) -> str:
    if value is None:
        return "null (empty)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "object": "a mapping", "array": "a list",
               "null": "null"}


def _show(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _closest(word: str, options: list[str]) -> str | None:
    """The option `word` most likely meant (ignoring case), if any is close enough."""
    if len(word) > 100:
        return None  # no field name is that long (and difflib would index all of it)
    lowered = {o.lower(): o for o in options}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def _suggest(word: str, options: list[str]) -> str:
    match = _closest(word, options)
    return f"; did you mean `{match}`?" if match else ""


def _required_group(schema: Any) -> list[str] | None:
    """`[a, b]` when `schema` is `oneOf: [{required: [a]}, {required: [b]}]`."""
    branches = schema if isinstance(schema, list) else []
    names = []
    for branch in branches:
        if not (isinstance(branch, dict) and list(branch) == ["required"]
                and len(branch["required"]) == 1):
            return None
        names.append(branch["required"][0])
    return names or None


def _suggestions(error: ValidationError) -> set[tuple[Path, str]]:
    """(mapping path, field) pairs that an unknown field in `error` probably meant."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return set()
    known = list(error.schema.get("properties", {}))
    path: Path = tuple(error.absolute_path)
    matches = (_closest(str(name), known) for name in error.instance if name not in known)
    return {(path, match) for match in matches if match}


def _explain(error: ValidationError, loc: _Locator, suggested: set[tuple[Path, str]],
             newer: dict[str, str] | None = None) -> list[Problem]:
    """`newer`: top-level spec fields this document's apiVersion lacks -> the apiVersion that has them."""
    path: Path = tuple(error.absolute_path)
    where = f"`{dotted(path)}`" if path else "the document"
    keyword, value = error.validator, error.validator_value
    schema, instance = error.schema, error.instance
    custom = schema.get("x-messages", {}).get(keyword) if isinstance(schema, dict) else None

    if "propertyNames" in error.relative_schema_path:
        # The failing instance is a key of the mapping at `path`.
        key_path = (*path, instance)
        text = custom.format(instance=_show(instance)) if custom else (
            f"invalid key `{_show(instance)}` in {where}: {error.message}")
        return [loc.problem(key_path, text, key=True)]
    # Errors about a whole mapping or list point at its key, about a scalar at the value.
    container = isinstance(instance, (dict, list))
    if keyword == "dependentRequired" and isinstance(value, dict) and isinstance(instance, dict):
        # Placed at the field that needs the others; the schema may say why.
        return [loc.problem((*path, field), custom or (
                    f"`{dotted((*path, field))}` needs " + " and ".join(f"`{dotted((*path, n))}`" for n in needs)),
                            key=True)
                for field, needs in value.items() if field in instance and any(n not in instance for n in needs)]
    if custom:
        return [loc.problem(path, custom.format(instance=_show(instance)), key=container)]

    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        output_only = set(schema.get("x-outputOnly", ()))
        found = []
        for name in instance:
            if name in known:
                continue
            field = dotted((*path, name))
            if name in output_only:
                text = f"`{field}` is output-only: the service sets it; remove it from the manifest"
            elif path == ("spec",) and newer and name in newer:
                text = f"unknown field `{field}`: it is a field of `apiVersion: {newer[name]}`; set that to use it"
            else:
                hint = _suggest(str(name), known)
                if not hint and len(known) <= 12:
                    hint = "; expected one of: " + ", ".join(f"`{k}`" for k in known)
                text = f"unknown field `{field}`{hint}"
            found.append(loc.problem((*path, name), text, key=True))
        return found
    # A misspelt field is reported once, as unknown with a suggestion, not also as missing.
    if keyword == "required" and isinstance(instance, dict):
        return [loc.problem(path, f"missing required field `{dotted((*path, name))}`", key=True)
                for name in value if name not in instance and (path, name) not in suggested]
    if keyword == "oneOf" and (group := _required_group(value)) and isinstance(instance, dict):
        present = [name for name in group if name in instance]
        options = ", ".join(f"`{name}`" for name in group)
        if not present and any((path, name) in suggested for name in group):
            return []
        if not present:
            return [loc.problem(path, f"{where} needs exactly one of {options}; none is set",
                                key=True)]
        chosen = " and ".join(f"`{name}`" for name in present)
        return [loc.problem((*path, loc.last(path, present)),
                            f"{where} may set only one of {options}, but sets {chosen}", key=True)]
    if keyword == "not" and isinstance(value, dict) and list(value) == ["required"]:
        names = value["required"]
        both = " and ".join(f"`{dotted((*path, n))}`" for n in names)
        return [loc.problem((*path, loc.last(path, names)), f"{both} are mutually exclusive; "
                                                            "set only one",
                            key=True)]
    if keyword == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
        hint = ""
        if "string" in wanted and isinstance(instance, (bool, int, float)):
            hint = " (YAML read it as such; quote it to make it a string)"
        return [loc.problem(path, f"{where} must be {words}, not {_kind_name(instance)}{hint}",
                            key=container)]
    if keyword == "enum":
        options = [str(o) for o in value]
        hint = _suggest(str(instance), options)
        listed = ", ".join(f"`{o}`" for o in options)
        return [loc.problem(path, f"`{_show(instance)}` is not a valid value for {where}{hint} "
                                  f"(expected one of {listed})")]
    if keyword == "pattern":
        return [loc.problem(path, f"{where}: `{_show(instance)}` does not match `{value}`")]
    return [loc.problem(path, f"{where}: {error.message}", key=container)]


def is_manifest(data: Any) -> bool:
    """A mapping with one of our apiVersions and our kind (whatever else is wrong with it)."""
    return isinstance(data, dict) and isinstance(data.get("apiVersion"), str) \
        and data["apiVersion"] in REST_VERSIONS and data.get("kind") == KIND


def rest_version(data: dict[str, Any]) -> str:
    """The REST version a valid manifest's apiVersion selects (`v1`, `v1beta1`)."""
    return REST_VERSIONS[data["apiVersion"]]


@functools.cache
def _newer_fields(api_version: str) -> dict[str, str]:
    """Top-level TuningJob fields other apiVersions have and `api_version` lacks (for the hint
    "it is a field of apiVersion ..."), read off the generated manifest schema."""
    from reconciler.apischema.generated import manifest_schema

    schema = manifest_schema()
    fields: dict[str, set[str]] = {}
    for branch in schema.get("allOf", ()):
        version = branch.get("if", {}).get("properties", {}).get("apiVersion", {}).get("const")
        root = schema["$defs"].get(branch.get("then", {}).get("properties", {}).get("spec", {})
                                   .get("$ref", "").removeprefix(_DEFS), {})
        job = schema["$defs"].get(root.get("$ref", "").removeprefix(_DEFS), {})
        if version:
            fields[version] = set(job.get("properties", {}))
    own = fields.get(api_version, set())
    return {name: other for other, names in fields.items() if other != api_version
            for name in sorted(names - own)}


def _envelope(data: dict[str, Any], loc: _Locator) -> list[Problem]:
    """apiVersion/kind first: the rest of the schema means nothing for another kind."""
    problems = []
    versions = list(REST_VERSIONS)
    for field, expected in (("apiVersion", versions), ("kind", [KIND])):
        options = " or ".join(f"`{field}: {e}`" for e in expected)
        if field not in data:
            problems.append(loc.problem((), f"missing `{field}` (expected {options})"))
        elif not isinstance(data[field], str) or data[field] not in expected:
            hint = _suggest(str(data[field]), expected) if len(expected) > 1 else ""
            listed = " or ".join(f"`{e}`" for e in expected)
            problems.append(loc.problem((field,), f"unknown {field} `{_show(data[field])}`: "
                                                  f"expected {listed}{hint}"))
    return problems


def check_document(data: Any, file: str, values: Positions, keys: Positions) -> list[Problem]:
    """Every problem with one manifest document, in file order."""
    loc = _Locator(file, values, keys)
    if not isinstance(data, dict):
        return [loc.problem((), "a manifest document must be a mapping with apiVersion, kind, "
                                f"metadata and spec; this one is {_kind_name(data)}")]
    problems = _envelope(data, loc)
    if problems:
        return problems
    if _is_valid(data):
        return []
    errors = list(validator().iter_errors(data))
    if not errors:
        return sorted(set(_strict_only(data, loc)), key=lambda p: (p.line, p.column, p.message))
    suggested = set().union(*map(_suggestions, errors))
    newer = _newer_fields(data["apiVersion"])
    for error in errors:
        problems.extend(_explain(error, loc, suggested, newer))
    return sorted(set(problems), key=lambda p: (p.line, p.column, p.message))
