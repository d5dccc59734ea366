"""The hardened YAML reader: a file's text to documents of plain values, with the (line,
column) of every value and key by path. Never raises for bad input.

YAML is read from the parser's *event* stream (libyaml's C parser when PyYAML has it)
rather than through `yaml.compose`/`yaml.load`, because building values ourselves is where
the hostile cases are stopped before they cost anything:
- duplicate mapping keys are an error (PyYAML silently keeps the last one);
- aliases are counted at their expanded size, so a "billion laughs" document is refused
  after a bounded amount of work, and recursive aliases are refused;
- nesting deeper than `MAX_DEPTH` is refused (PyYAML's recursive composer would exhaust
  the stack; the C one crashes the process);
- explicit tags are honoured only where JSON has the type (`!!str`, `!!int` ...), and only
  with a value of that type (`!!int abc` is a problem, not a ValueError); any other tag, on a
  scalar, a key, a mapping (`!!set`, `!!python/object:...`) or a list (`!!omap`), is a problem.
Files are read (size, binary and encoding checks) by `loader.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from reconciler.manifests.problems import Path, Problem, dotted
from reconciler.text import shorten

MAX_DEPTH = 64
MAX_DOCUMENT_NODES = 100_000  # after alias expansion; a real job document has ~50
_TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels; refusing to read this file any further"

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CORE = "tag:yaml.org,2002:"
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# The tags a mapping or a list may carry (None and "!" are "no tag").
_COLLECTION_TAGS = {MappingStartEvent: (None, "!", "tag:yaml.org,2002:map"),
                    SequenceStartEvent: (None, "!", "tag:yaml.org,2002:seq")}
# What an explicitly tagged scalar's text must be (for the message when it is not).
_TAG_VALUES = {_NULL: "null (`~`, `null` or nothing)", "tag:yaml.org,2002:bool": "a boolean (`true` or `false`)",
               "tag:yaml.org,2002:int": "an integer", "tag:yaml.org,2002:float": "a number",
               _TIMESTAMP: "a timestamp"}
_UNSUPPORTED = "manifests use plain strings, numbers, booleans, lists and mappings"
_SCALARS = {
    "tag:yaml.org,2002:null": _Base.construct_yaml_null,
    "tag:yaml.org,2002:bool": _Base.construct_yaml_bool,
    "tag:yaml.org,2002:int": _Base.construct_yaml_int,
    "tag:yaml.org,2002:float": _Base.construct_yaml_float,
}


_KEY_KINDS = {"null": "null", "bool": "a boolean", "int": "an integer", "float": "a number"}
_RESOLVED: dict[str, str] = {}  # plain scalar text -> resolved tag
ABORTED = object()  # a document whose problems are already reported
_DUPLICATE = "\0duplicate"  # scratch path for the value of a duplicate key


class ManifestLoader(_Base):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader, used only for its event stream and scalar resolution."""


@dataclass
class Document:
    """One YAML document with the positions of its values and keys, by path."""

    file: str
    index: int
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    has_aliases: bool = False
    problems: list[Problem] = field(default_factory=list)  # found while reading it

    @property
    def start(self) -> tuple[int, int]:
        return self.values.get((), (1, 1))


@dataclass
class ParsedFile:
    path: str
    documents: list[Document]
    problems: list[Problem]


class _Abort(Exception):
    """A document past a limit: reported once, the rest of the document skipped."""

    def __init__(self, line: int, column: int, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message
        self.fatal = fatal  # stop reading the file: even skipping the rest could be slow


def _tag_name(tag: str) -> str:
    """`tag:yaml.org,2002:int` -> `!!int`, as it is written."""
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


def _pos(event: Any) -> tuple[int, int]:
    mark = event.start_mark
    return mark.line + 1, mark.column + 1


class _DocumentBuilder:
    """Builds one document's values from events, recording positions and enforcing limits.

    Each method takes the event that starts its node (already read), so every event is
    read exactly once: this loop is most of the cost of reading YAML."""

    def __init__(self, loader: ManifestLoader, doc: Document) -> None:
        self.next_event = loader.get_event
        self.loader, self.doc = loader, doc
        self.values = doc.values
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, expanded size)
        self.open_anchors: set[str] = set()
        self.size = 0

    def _problem(self, pos: tuple[int, int], path: Path, message: str) -> None:
        self.doc.problems.append(Problem(self.doc.file, pos[0], pos[1], dotted(path), message))

    def _grow(self, by: int, pos: tuple[int, int]) -> None:
        self.size += by
        if self.size > MAX_DOCUMENT_NODES:
            why = ("through aliases, a \"billion laughs\"?" if self.doc.has_aliases
                   else "a tuning job has about 50")
            raise _Abort(*pos, f"document has more than {MAX_DOCUMENT_NODES:,} values ({why}); "
                               "refusing to read this file any further", fatal=True)

    def node(self, event: Any, path: Path, depth: int) -> Any:
        mark = event.start_mark
        pos = (mark.line + 1, mark.column + 1)
        self.values[path] = pos
        kind = type(event)
        if kind is ScalarEvent:
            self.size += 1
            if self.size > MAX_DOCUMENT_NODES:
                self._grow(0, pos)
            value = self._scalar(event, path, pos)
            if event.anchor:
                self.anchors[event.anchor] = (value, 1)
            return value
        if kind is AliasEvent:
            return self._alias(event, pos)
        if kind is MappingStartEvent or kind is SequenceStartEvent:
            if depth >= MAX_DEPTH:
                # libyaml slows down quadratically with depth: stop reading at once.
                raise _Abort(*pos, _TOO_DEEP, fatal=True)
            if event.tag not in _COLLECTION_TAGS[kind]:
                # `!!set`, `!!omap`, `!!python/object:...`: nothing the schema could mean.
                what = "mapping" if kind is MappingStartEvent else "list"
                self._problem(pos, path, f"unsupported YAML tag `{shorten(_tag_name(event.tag), 80)}` on a "
                                         f"{what}; {_UNSUPPORTED}")
            if event.anchor:
                self.open_anchors.add(event.anchor)
            before = self.size
            self._grow(1, pos)
            if kind is MappingStartEvent:
                value = self._mapping(path, depth)
            else:
                value = self._sequence(path, depth)
            if event.anchor:
                self.open_anchors.discard(event.anchor)
                self.anchors[event.anchor] = (value, self.size - before)
            return value
        # The parser emits nothing else inside a document.
        raise _Abort(*pos, f"unexpected YAML event {kind.__name__}")  # pragma: no cover

    def _alias(self, event: AliasEvent, pos: tuple[int, int]) -> Any:
        name = event.anchor
        if name in self.open_anchors:
            raise _Abort(*pos, f"alias `*{name}` refers to its own enclosing node (recursive)")
        if name not in self.anchors:
            raise _Abort(*pos, f"alias `*{name}` has no anchor `&{name}` before it")
        value, size = self.anchors[name]
        self.doc.has_aliases = True
        self._grow(size, pos)
        return value

    def _resolve(self, event: ScalarEvent) -> str:
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return _STR  # quoted: always a string
            # Plain scalars repeat a lot (keys, enum values): resolve each text once.
            tag = _RESOLVED.get(event.value)
            if tag is None:
                tag = self.loader.resolve(ScalarNode, event.value, event.implicit)
                if len(_RESOLVED) < 50_000:
                    _RESOLVED[event.value] = tag
        return tag

    def _scalar(self, event: ScalarEvent, path: Path, pos: tuple[int, int]) -> Any:
        tag = self._resolve(event)
        if tag == _STR:
            return event.value
        explicit = event.tag not in (None, "!")
        construct = _SCALARS.get(tag)
        if construct is not None:
            if explicit and tag == _NULL and self._implicit_tag(event.value) != _NULL:
                return self._bad_value(event, tag, path, pos)  # `!!null abc` would quietly drop `abc`
            try:
                return construct(self.loader, ScalarNode(tag, event.value))
            except (ValueError, IndexError, KeyError, TypeError, OverflowError):
                # `!!int abc`, `!!int ""`, `!!bool maybe`, `!!float x`: PyYAML's constructors
                # trust the resolver and fail on text it would never have given them.
                return self._bad_value(event, tag, path, pos)
        if tag == _TIMESTAMP:
            if explicit and self._implicit_tag(event.value) != _TIMESTAMP:
                return self._bad_value(event, tag, path, pos)
            return event.value  # JSON has no dates: keep the text, the schema checks it
        if tag == _MERGE and not explicit:
            return event.value  # a plain `<<` as a value: just text
        self._problem(pos, path, f"unsupported YAML tag `{shorten(_tag_name(event.tag or tag), 80)}`; "
                                 f"{_UNSUPPORTED}")
        return event.value

    def _implicit_tag(self, text: str) -> str:
        """The tag YAML gives `text` written plain, untagged."""
        return self.loader.resolve(ScalarNode, text, (True, False))

    def _bad_value(self, event: ScalarEvent, tag: str, path: Path, pos: tuple[int, int]) -> str:
        shown = shorten(event.value, 60) if event.value else '""'
        self._problem(pos, path, f"`{_tag_name(event.tag or tag)} {shown}`: the value is not "
                                 f"{_TAG_VALUES[tag]}; remove the tag or fix the value")
        return event.value

    def _sequence(self, path: Path, depth: int) -> list[Any]:
        items: list[Any] = []
        while True:
            event = self.next_event()
            if type(event) is SequenceEndEvent:
                return items
            items.append(self.node(event, (*path, len(items)), depth + 1))

    def _key(self, event: Any, path: Path) -> tuple[Any, tuple[int, int], bool]:
        """(key, position, is merge key `<<`) for the key starting with `event`."""
        pos = _pos(event)
        if type(event) is ScalarEvent:
            tag = self._resolve(event)
            if tag == _STR:
                return event.value, pos, False
            if tag == _MERGE:
                return "<<", pos, True
            if tag in _SCALARS:  # `on:`, `1:`, `null:` ... YAML reads these as non-strings
                kind = _KEY_KINDS[tag.rsplit(":", 1)[-1]]
                self._problem(pos, path, f"mapping key `{shorten(event.value, 80)}` in "
                                         f"`{dotted(path) or '.'}` is read by YAML as {kind}, "
                                         "not a string; quote it")
            elif event.tag not in (None, "!"):  # `!foo key:`, `!!binary key:` ...
                self._problem(pos, path, f"unsupported YAML tag `{shorten(_tag_name(event.tag), 80)}` on "
                                         f"mapping key `{shorten(event.value, 80)}`; {_UNSUPPORTED}")
            return event.value, pos, False
        if type(event) is AliasEvent:
            return self._alias(event, pos), pos, False
        raise _Abort(*pos, f"a list or mapping used as a mapping key in `{dotted(path) or '.'}` "
                           "is not supported")

    def _mapping(self, path: Path, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: list[dict[str, Any]] = []
        keys = self.doc.keys
        while True:
            event = self.next_event()
            if type(event) is MappingEndEvent:
                break
            key, key_pos, is_merge = self._key(event, path)
            if is_merge:
                merged.extend(self._merge_sources(path, depth))
                continue
            if not isinstance(key, str):  # an alias to a non-string scalar
                self._problem(key_pos, path, f"mapping key `{shorten(repr(key), 80)}` in `{dotted(path) or '.'}` "
                                             "is not a string; quote it")
                key = str(key)
            child = (*path, key)
            if key in result:
                first = keys[child]
                self._problem(key_pos, child, f"duplicate key `{shorten(key, 80)}` in `{dotted(path) or '.'}` "
                                              f"(first set at line {first[0]}, column {first[1]})")
                # Read and drop: the first one stands.
                self.node(self.next_event(), (*path, _DUPLICATE), depth + 1)
                continue
            keys[child] = key_pos
            result[key] = self.node(self.next_event(), child, depth + 1)
        for source in merged:  # explicit keys win over merged ones (YAML merge semantics)
            for key, value in source.items():
                result.setdefault(key, value)
        return result

    def _merge_sources(self, path: Path, depth: int) -> list[dict[str, Any]]:
        event = self.next_event()
        value = self.node(event, (*path, "<<"), depth + 1)
        self.values.pop((*path, "<<"), None)
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(s, dict) for s in sources):
            raise _Abort(*_pos(event), "a merge key `<<` needs a mapping or a list of mappings")
        self.doc.has_aliases = True  # merged values are shared, like aliases
        return list(sources)  # in order: with setdefault, earlier sources win, as YAML says


def _yaml_problem(file: str, text: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    if mark is not None:
        lines = text.split("\n")
        if mark.line < len(lines) and lines[mark.line][mark.column:mark.column + 1] == "\t":
            return Problem(file, line, column, "", "tab character in indentation or before a "
                           "value: YAML indents with spaces only")
    what = getattr(exc, "problem", None) or str(exc)
    if "maximum nesting depth" in what:
        # Newer libyaml stops deep flow nesting itself, while scanning ahead of our limit:
        # report it in the same words as `MAX_DEPTH`.
        return Problem(file, line, column, "", _TOO_DEEP)
    context = getattr(exc, "context", None)
    return Problem(file, line, column, "", f"invalid YAML: {what}"
                   + (f" ({context})" if context else ""))


def iter_documents(text: str, file: str, problems: list[Problem]) -> Iterator[Document]:
    """The documents of one file's text, lazily (so a caller can stop early). Problems that
    are not about one document (YAML syntax, limits) are appended to `problems`. Never
    raises for bad input. Empty documents come out with `data` None."""
    loader = ManifestLoader(text)
    index = 0
    try:
        loader.get_event()  # StreamStart
        while not loader.check_event(StreamEndEvent):
            loader.get_event()  # DocumentStart
            doc = Document(file, index, None)
            index += 1
            try:
                if not loader.check_event(DocumentEndEvent):
                    doc.data = _DocumentBuilder(loader, doc).node(loader.get_event(), (), 0)
            except _Abort as abort:
                problems.append(Problem(file, abort.line, abort.column, "", abort.message))
                doc.data = ABORTED
                if abort.fatal:
                    yield doc
                    return
                while not loader.check_event(DocumentEndEvent):
                    loader.get_event()
            loader.get_event()  # DocumentEnd
            yield doc
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(file, text, exc))
    finally:
        loader.dispose()


def parse_text(text: str, file: str) -> ParsedFile:
    """All non-empty documents of one file's text, and the file-level problems."""
    problems: list[Problem] = []
    documents = [d for d in iter_documents(text, file, problems) if d.data is not None]
    return ParsedFile(file, documents, problems)
