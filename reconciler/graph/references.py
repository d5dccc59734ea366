"""`${jobs.KEY.OUTPUT}` inside any string of a spec: Terraform's interpolation syntax in a YAML
string. KEY is a job's key or its full `project/location/key` address; `$${` writes a literal
`${`. A string may hold several references and text around them.

Pure: parsing strings into `Template`s, finding them in a spec, substituting values. Which job a
key names is `graph.py`'s business."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Union

from reconciler.model import KEY_PATTERN

PREFIX = "jobs."
# What a job produces that another may use. `name` is known once the job exists, the others
# once it has SUCCEEDED; the graph waits for SUCCEEDED in every case (a job's name alone is
# rarely worth starting for, and one rule is easier to reason about).
OUTPUTS: tuple[str, ...] = ("tunedModel.model", "tunedModel.endpoint", "name")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,98}[a-z0-9]$")
_LOCATION = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_OPEN = re.compile(r"\$\$\{|\$\{")

SpecPath = tuple[Union[str, int], ...]


class ReferenceSyntaxError(ValueError):
    """A `${` that is not a valid reference; the message says how to write one."""


@dataclass(frozen=True)
class Reference:
    """One `${jobs.KEY.OUTPUT}`. `key` as written: a bare key or `project/location/key`."""

    key: str
    output: str

    @property
    def text(self) -> str:
        return f"{PREFIX}{self.key}.{self.output}"

    def __str__(self) -> str:
        return "${" + self.text + "}"


Part = Union[str, Reference]


def _escape(text: str) -> str:
    return text.replace("${", "$${")


@dataclass(frozen=True)
class Template:
    """A string as literal text and references, in order."""

    parts: tuple[Part, ...]

    @cached_property
    def refs(self) -> tuple[Reference, ...]:
        return tuple(p for p in self.parts if isinstance(p, Reference))

    def substitute(self, value: Callable[[Reference], Part]) -> Template:
        """Each reference replaced by what `value` gives for it: its value (a string) or a
        reference (the same one, or the same one spelled in full)."""
        out: list[Part] = []
        for part in self.parts:
            new = value(part) if isinstance(part, Reference) else part
            if isinstance(new, str) and out and isinstance(out[-1], str):
                out[-1] += new
            elif new != "":
                out.append(new)
        return Template(tuple(out))

    def text(self) -> str:
        """The plain string once no reference is left; else the template, written back with
        `$${` escapes so that it parses to the same parts again."""
        if not self.refs:
            return "".join(p for p in self.parts if isinstance(p, str))
        return "".join(str(p) if isinstance(p, Reference) else _escape(p) for p in self.parts)


def _reference(expression: str) -> Reference:
    shown = "${" + expression + "}"
    body = expression.strip()
    if not body.startswith(PREFIX):
        raise ReferenceSyntaxError(
            f"`{shown}` is not a reference: write `${{jobs.KEY.OUTPUT}}` to use another job's "
            "output, or `$${` for a literal `${`")
    rest = body[len(PREFIX):]
    head, slash, tail = rest.rpartition("/")
    key, _, output = tail.partition(".")
    if slash:
        project, _, location = head.partition("/")
        if not (_PROJECT.match(project) and _LOCATION.match(location)):
            raise ReferenceSyntaxError(f"`{shown}`: `{head}/{key}` is not a project/location/key address")
    if not KEY_PATTERN.match(key):
        raise ReferenceSyntaxError(f"`{shown}`: `{key or '(empty)'}` is not a job key")
    if output not in OUTPUTS:
        listed = ", ".join(f"`{o}`" for o in OUTPUTS)
        raise ReferenceSyntaxError(
            f"`{shown}`: `{output or '(nothing)'}` is not an output of a job (outputs: {listed})")
    return Reference(f"{head}/{key}" if slash else key, output)


def parse(text: str) -> Template:
    """The template a string spells; ReferenceSyntaxError for a malformed `${`."""
    parts: list[Part] = []
    literal: list[str] = []
    pos = 0
    while True:
        match = _OPEN.search(text, pos)
        if match is None:
            literal.append(text[pos:])
            break
        literal.append(text[pos:match.start()])
        if match.group() == "$${":
            literal.append("${")
            pos = match.end()
            continue
        close = text.find("}", match.end())
        if close < 0:
            raise ReferenceSyntaxError("`${` is not closed by `}` (write `$${` for a literal `${`)")
        if literal:
            joined = "".join(literal)
            if joined:
                parts.append(joined)
            literal = []
        parts.append(_reference(text[match.end():close]))
        pos = close + 1
    joined = "".join(literal)
    if joined:
        parts.append(joined)
    return Template(tuple(parts))


def walk_strings(value: Any, path: SpecPath = ()) -> list[tuple[SpecPath, str]]:
    """Every string inside `value` with `${` in it (so escapes too), with its path. Map keys
    are not fields and are left alone. Most specs hold none: `repr` (C code) finds that out
    without a walk in Python, which planning tens of thousands of jobs notices."""
    if isinstance(value, str):
        return [(path, value)] if "${" in value else []
    found: list[tuple[SpecPath, str]] = []
    if "${" in repr(value):
        _collect(value, path, found)
    return found


def _collect(value: Any, path: SpecPath, found: list[tuple[SpecPath, str]]) -> None:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        if isinstance(v, str):
            if "${" in v:
                found.append(((*path, k), v))
        elif isinstance(v, (dict, list)):
            _collect(v, (*path, k), found)


def templates(spec: Any) -> tuple[list[tuple[SpecPath, Template]], list[tuple[SpecPath, str]]]:
    """(path, template) of every string of `spec` with a reference or an escape, and
    (path, message) for each malformed one."""
    found: list[tuple[SpecPath, Template]] = []
    errors: list[tuple[SpecPath, str]] = []
    for path, text in walk_strings(spec):
        try:
            found.append((path, parse(text)))
        except ReferenceSyntaxError as exc:
            errors.append((path, str(exc)))
    return found, errors


def dotted(path: SpecPath) -> str:
    """`('preTunedModel', 'tunedModelName')` -> `preTunedModel.tunedModelName`; `[0]` for lists."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def get_path(value: Any, path: SpecPath) -> Any:
    """The value at `path`, or None."""
    for part in path:
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and 0 <= part < len(value) else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def set_paths(spec: dict, values: dict[SpecPath, str]) -> dict:
    """A copy of `spec` with the strings at `values`' paths replaced (only the containers on
    those paths are copied; the rest is shared, as specs are never changed in place)."""
    if not values:
        return spec

    def put(node: Any, path: SpecPath, new: str) -> Any:
        if not path:
            return new
        head, rest = path[0], path[1:]
        if isinstance(node, dict):
            return {**node, head: put(node[head], rest, new)}
        copy = list(node)
        copy[head] = put(node[head], rest, new)  # type: ignore[index]
        return copy

    out: Any = spec
    for path, new in values.items():
        out = put(out, path, new)
    return out
