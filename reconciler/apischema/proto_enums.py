"""Enum numbers, which discovery documents do not carry.

A client asking for `$alt=json;enum-encoding=int` (the GAPIC REST transport of
google-cloud-aiplatform, which the Vertex AI SDK uses) sends and reads enums as their *proto
numbers*, and those are not always the discovery order: `ADAPTER_SIZE_TWO` is listed second
but numbered 6, so `2` means `ADAPTER_SIZE_FOUR`. `reconciler schema refresh-discovery` reads
the numbers from the protos bundled with the installed google-cloud-aiplatform and pins the
ones that differ from the discovery order in the snapshot (`x-reconciler-enumNumbers`).

How an enum of the document is matched to a proto enum, in order:
1. the field of the same message (`GoogleCloudAiplatformV1beta1SupervisedHyperParameters` ->
   `google.cloud.aiplatform.v1beta1.SupervisedHyperParameters.adapter_size`);
2. else (the bundled protos can be older than the document) the one proto enum of the
   package with exactly the same value names, when all such enums agree on the numbers;
3. else none: the discovery order stands (it is the declaration order, which numbers follow
   unless a value was added out of order).

`numbers_from_protos` is the I/O edge (it imports google-cloud-aiplatform); `enum_numbers` is
pure, given a way to look messages and enums up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from reconciler.apischema.versions import Surface
from reconciler.errors import ConfigError

# (message name relative to the package, e.g. "SupervisedHyperParameters") -> field -> {value: number}
ProtoFields = Callable[[str], dict[str, dict[str, int]] | None]

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def _enum_props(schema: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    for field, prop in schema.get("properties", {}).items():
        values = prop.get("enum") or prop.get("items", {}).get("enum")
        if values:
            yield field, list(values)


def enum_numbers(schemas: dict[str, Any], surface: Surface, proto_fields: ProtoFields,
                 proto_enums: Iterable[dict[str, int]]) -> dict[str, dict[str, int]]:
    """`"Schema.field"` -> {value: number} for every enum of `schemas` whose proto numbers are
    known and differ from the discovery order (only the values that differ)."""
    by_names: dict[frozenset[str], list[dict[str, int]]] = {}
    for numbers in proto_enums:
        by_names.setdefault(frozenset(numbers), []).append(numbers)
    out: dict[str, dict[str, int]] = {}
    for name in sorted(schemas):
        if not name.startswith(surface.prefix):
            continue
        fields = proto_fields(name[len(surface.prefix):]) or {}
        for field, values in _enum_props(schemas[name]):
            numbers = fields.get(_snake(field))
            if numbers is None:
                candidates = {tuple(sorted(n.items())) for n in by_names.get(frozenset(values), [])}
                numbers = dict(next(iter(candidates))) if len(candidates) == 1 else None
            if numbers is None:
                continue
            moved = {v: numbers[v] for i, v in enumerate(values) if v in numbers and numbers[v] != i}
            if moved:
                out[f"{name}.{field}"] = moved
    return out


def numbers_from_protos(schemas: dict[str, Any], surface: Surface) -> tuple[dict[str, dict[str, int]], str]:
    """The enum numbers from the installed google-cloud-aiplatform, and where they came from."""
    import importlib
    import importlib.metadata

    try:
        types = importlib.import_module(f"google.cloud.aiplatform_{surface.version}.types")
        version = importlib.metadata.version("google-cloud-aiplatform")
    except (ImportError, importlib.metadata.PackageNotFoundError):
        raise ConfigError(
            "google-cloud-aiplatform is not installed; install the test extras "
            "(pip install -e '.[test]') to refresh the discovery snapshot (it reads enum numbers "
            "from its protos)"
        ) from None
    roots = [cls.pb().DESCRIPTOR.file for cls in map(lambda n: getattr(types, n), getattr(types, "__all__", ()))
             if callable(getattr(cls, "pb", None))]
    files = _files(roots, surface.proto_package)
    messages: dict[str, Any] = {}
    enums: list[dict[str, int]] = []
    for file in files:
        for message in file.message_types_by_name.values():
            _collect(message, "", messages, enums)
        enums.extend({v.name: v.number for v in e.values} for e in file.enum_types_by_name.values())

    def proto_fields(short: str) -> dict[str, dict[str, int]] | None:
        message = messages.get(short)
        if message is None:
            return None
        return {f.name: {v.name: v.number for v in f.enum_type.values}
                for f in message.fields if f.enum_type is not None}

    numbers = enum_numbers(schemas, surface, proto_fields, enums)
    return numbers, f"google-cloud-aiplatform {version}: {surface.proto_package} protos"


def _files(roots: list[Any], package: str) -> list[Any]:
    """`roots` and every file of `package` they import, directly or not."""
    seen: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        file = todo.pop()
        if file.name in seen or file.package != package:
            continue
        seen[file.name] = file
        todo.extend(file.dependencies)
    return list(seen.values())


def _collect(message: Any, outer: str, messages: dict[str, Any], enums: list[dict[str, int]]) -> None:
    """Messages by their discovery-style flattened name (`GenerationConfigThinkingConfig`)."""
    flat = outer + message.name
    messages[flat] = message
    enums.extend({v.name: v.number for v in e.values} for e in message.enum_types)
    for nested in message.nested_types:
        if not nested.GetOptions().map_entry:
            _collect(nested, flat, messages, enums)
