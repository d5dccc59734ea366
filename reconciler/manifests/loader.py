"""Find manifest files, read their YAML with positions, and turn them into `DesiredJob`s.

YAML is read from the parser's *event* stream (libyaml's C parser when PyYAML has it)
rather than through `yaml.compose`/`yaml.load`, because building values ourselves is where
the hostile cases are stopped before they cost anything:
- duplicate mapping keys are an error (PyYAML silently keeps the last one);
- aliases are counted at their expanded size, so a "billion laughs" document is refused
  after a bounded amount of work, and recursive aliases are refused;
- nesting deeper than `MAX_DEPTH` is refused (PyYAML's recursive composer would exhaust
  the stack; the C one crashes the process);
- files over `MAX_FILE_BYTES`, binary files and non-UTF-8 text are refused up front.
Each value's and each key's (line, column) is recorded by path for error messages.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
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

from reconciler.errors import ManifestError
from reconciler.model import DesiredJob, Lifecycle, SourcePos
from reconciler.manifests.validation import (
    Path,
    Problem,
    check_document,
    dotted,
    is_manifest,
    validator,
)

DEFAULT_PATH = "manifests"
SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
MAX_DOCUMENT_NODES = 100_000  # after alias expansion; a real job document has ~50
MAX_PROBLEMS_PER_FILE = 200
# Below this much YAML, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 1024 * 1024
MAX_WORKERS = 4
_TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels; refusing to read this file any further"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
LOCATION_ENV = "GOOGLE_CLOUD_LOCATION"

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_SCALARS = {
    "tag:yaml.org,2002:null": _Base.construct_yaml_null,
    "tag:yaml.org,2002:bool": _Base.construct_yaml_bool,
    "tag:yaml.org,2002:int": _Base.construct_yaml_int,
    "tag:yaml.org,2002:float": _Base.construct_yaml_float,
}


_KEY_KINDS = {"null": "null", "bool": "a boolean", "int": "an integer", "float": "a number"}
_RESOLVED: dict[str, str] = {}  # plain scalar text -> resolved tag
_ABORTED = object()  # a document whose problems are already reported
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
        construct = _SCALARS.get(tag)
        if construct is not None:
            return construct(self.loader, ScalarNode(tag, event.value))
        if tag in (_TIMESTAMP, _MERGE):
            return event.value  # JSON has no dates: keep the text, the schema checks it
        self._problem(pos, path, f"unsupported YAML tag `{event.tag}`; manifests use plain "
                                 "strings, numbers, booleans, lists and mappings")
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
                self._problem(pos, path, f"mapping key `{event.value}` in "
                                         f"`{dotted(path) or '.'}` is read by YAML as {kind}, "
                                         "not a string; quote it")
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
                self._problem(key_pos, path, f"mapping key `{key!r}` in `{dotted(path) or '.'}` "
                                             "is not a string; quote it")
                key = str(key)
            child = (*path, key)
            if key in result:
                first = keys[child]
                self._problem(key_pos, child, f"duplicate key `{key}` in `{dotted(path) or '.'}` "
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
                doc.data = _ABORTED
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


def read_text(path: str) -> tuple[str | None, Problem | None]:
    """The file's text, or the problem that stops us reading it."""
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            return None, Problem(path, 0, 0, "", f"file is {size / 1e6:.1f} MB; manifest files "
                                 f"over {MAX_FILE_BYTES // (1024 * 1024)} MB are refused")
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, Problem(path, 0, 0, "", f"cannot read file: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:  # grew while we looked
        return None, Problem(path, 0, 0, "", f"file is over {MAX_FILE_BYTES // (1024 * 1024)} "
                             "MB; manifest files that large are refused")
    if b"\x00" in data:
        return None, Problem(path, 0, 0, "", "binary file (contains NUL bytes), not YAML text")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Problem(path, line, column, "", f"not UTF-8 text: byte "
                             f"0x{data[exc.start]:02x} cannot be decoded; save the file as UTF-8")


def parse_file(path: str) -> ParsedFile:
    text, problem = read_text(path)
    if problem is not None or text is None:
        return ParsedFile(path, [], [problem] if problem else [])
    parsed = parse_text(text, path)
    if not parsed.documents and not parsed.problems:
        parsed.problems.append(_empty(path))
    return parsed


def _empty(path: str) -> Problem:
    return Problem(path, 0, 0, "", "no YAML documents in file (empty)")


def find_files(paths: Sequence[str] | None) -> tuple[list[str], list[Problem]]:
    """Manifest files under `paths` (default `manifests/`), recursively, in a stable order.
    Files named explicitly are taken whatever their suffix; hidden entries are skipped."""
    found: list[str] = []
    problems: list[Problem] = []
    seen: set[str] = set()

    def add(file: str) -> None:
        real = os.path.realpath(file)
        if real not in seen:
            seen.add(real)
            found.append(file)

    for given in paths or [DEFAULT_PATH]:
        target = FsPath(given)
        if target.is_dir():
            files = sorted(
                (p for p in target.rglob("*")
                 if p.suffix in SUFFIXES and p.is_file()
                 and not any(part.startswith(".") for part in p.relative_to(target).parts)),
                key=lambda p: p.relative_to(target).as_posix(),
            )
            if not files:
                problems.append(Problem(given, 0, 0, "", "no manifests here: no .yaml or .yml "
                                        "files in this directory or below it"))
            for file in files:
                add(str(file))
        elif target.is_file():
            add(given)
        elif target.exists():
            problems.append(Problem(given, 0, 0, "", "not a regular file or directory"))
        else:
            problems.append(Problem(given, 0, 0, "", "no such file or directory"))
    return found, problems


@dataclass
class CheckResult:
    """Everything `validate` reports; `jobs` holds the documents that passed."""

    files: list[str]
    documents: int
    jobs: list[DesiredJob]
    problems: list[Problem]

    @property
    def files_with_problems(self) -> int:
        """Manifest files with at least one problem (paths that are not files don't count)."""
        return len({p.file for p in self.problems} & set(self.files))


def _lifecycle(raw: Mapping[str, Any] | None) -> Lifecycle:
    raw = raw or {}
    default = Lifecycle()
    return Lifecycle(
        on_spec_change=raw.get("onSpecChange", default.on_spec_change),
        on_failure=raw.get("onFailure", default.on_failure),
        on_base_model_change=raw.get("onBaseModelChange", default.on_base_model_change),
        prevent_cancel=bool(raw.get("preventCancel", default.prevent_cancel)),
        ignore_drift=tuple(raw.get("ignoreDrift", default.ignore_drift)),
    )


def _target(doc: Document, field_name: str, flag: str, env_name: str, default: str | None,
            env: Mapping[str, str]) -> tuple[str | None, Problem | None]:
    metadata = doc.data["metadata"]
    value = metadata.get(field_name) or default or env.get(env_name) or None
    if value:
        return value, None
    line, column = doc.keys.get(("metadata",), doc.start)
    name = metadata.get("name", "?")
    return None, Problem(doc.file, line, column, f"metadata.{field_name}",
                         f"no {field_name} for `{name}`: set `metadata.{field_name}`, "
                         f"pass {flag}, or set ${env_name}")


def _desired(doc: Document, project: str, location: str) -> DesiredJob:
    data = doc.data
    spec = data["spec"]
    if doc.has_aliases:  # aliases share objects; give each job its own
        spec = copy.deepcopy(spec)
    line, column = doc.start
    return DesiredJob(key=data["metadata"]["name"], project=project, location=location,
                      spec=spec, lifecycle=_lifecycle(data.get("lifecycle")),
                      source=SourcePos(doc.file, line, column))


@dataclass
class FileCheck:
    """One file's findings: documents counted, jobs that passed, problems in file order."""

    documents: int
    jobs: list[DesiredJob]
    problems: list[Problem]


def check_file(path: str, default_project: str | None, default_location: str | None,
               env: Mapping[str, str]) -> FileCheck:
    """Parse and validate one file; project/location defaulted per document. Stops after
    `MAX_PROBLEMS_PER_FILE` problems so that a huge broken file cannot keep us busy."""
    text, problem = read_text(path)
    if problem is not None or text is None:
        return FileCheck(0, [], [problem] if problem else [])
    count = 0
    jobs: list[DesiredJob] = []
    problems: list[Problem] = []
    documents = iter_documents(text, path, problems)
    stopped = False
    try:
        for doc in documents:
            if doc.data is None:
                continue  # an empty document, e.g. after a trailing `---`
            count += 1
            if doc.data is not _ABORTED:
                job = _check_document(doc, default_project, default_location, env, problems)
                if job is not None:
                    jobs.append(job)
            if len(problems) >= MAX_PROBLEMS_PER_FILE:
                stopped = True
                break
    finally:
        documents.close()
    if not count and not problems:
        problems.append(_empty(path))
    problems.sort(key=lambda p: (p.line, p.column))
    if stopped:
        problems.append(Problem(path, 0, 0, "", f"{len(problems)} problems in this file; "
                                                "stopped reading it there"))
    return FileCheck(count, jobs, problems)


def _check_document(doc: Document, default_project: str | None, default_location: str | None,
                    env: Mapping[str, str], problems: list[Problem]) -> DesiredJob | None:
    """The job one document describes, or None after adding its problems to `problems`."""
    found = doc.problems + check_document(doc.data, doc.file, doc.values, doc.keys)
    project = location = None
    if is_manifest(doc.data) and isinstance(doc.data.get("metadata"), dict):
        project, p1 = _target(doc, "project", "--project", PROJECT_ENV, default_project, env)
        location, p2 = _target(doc, "location", "--location", LOCATION_ENV, default_location, env)
        found.extend(p for p in (p1, p2) if p)
    if found or not (project and location):
        problems.extend(found)
        return None
    return _desired(doc, project, location)


def _auto_workers(files: Sequence[str]) -> int:
    """Worker processes worth starting: only for large inputs, on a machine with spare CPUs,
    where `fork` is available and safe (no other threads in this process)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    if cpus < 2 or len(files) < 2 or threading.active_count() > 1:
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    total = 0
    for path in files:
        try:
            total += os.stat(path).st_size
        except OSError:
            pass
    return min(cpus, len(files), MAX_WORKERS) if total >= PARALLEL_MIN_BYTES else 1


def _check_files(files: Sequence[str], default_project: str | None,
                 default_location: str | None, env: Mapping[str, str],
                 workers: int | None) -> list[FileCheck]:
    """Each file on its own; in forked worker processes when that pays (results in order)."""
    workers = _auto_workers(files) if workers is None else min(workers, len(files))
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        validator()  # build it once here; forked workers inherit it
        args = (files, [default_project] * len(files), [default_location] * len(files),
                [env] * len(files))
        try:
            context = multiprocessing.get_context("fork")
            chunk = max(1, len(files) // (workers * 4))
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                return list(pool.map(check_file, *args, chunksize=chunk))
        except (OSError, BrokenProcessPool):
            pass  # no processes to be had here (sandbox, limits): do it ourselves
    return [check_file(path, default_project, default_location, env) for path in files]


def _unique_keys(jobs: Iterable[DesiredJob]) -> tuple[list[DesiredJob], list[Problem]]:
    """A key may appear once per project+location across all files."""
    first: dict[str, DesiredJob] = {}
    kept: list[DesiredJob] = []
    problems: list[Problem] = []
    for job in jobs:
        other = first.get(job.address)
        if other is None:
            first[job.address] = job
            kept.append(job)
            continue
        problems.append(Problem(job.source.file, job.source.line, job.source.column,
                                "metadata.name",
                                f"key `{job.key}` is defined twice for project `{job.project}`, "
                                f"location `{job.location}`: here and at {other.source}"))
    return kept, problems


def check(paths: Sequence[str] | None, default_project: str | None = None,
          default_location: str | None = None, env: Mapping[str, str] | None = None,
          workers: int | None = None) -> CheckResult:
    """Find, parse and validate every manifest; collect every problem (never raises for
    bad manifests). `workers`: processes to use (default: decided by input size)."""
    env = {k: v for k, v in (os.environ if env is None else env).items()
           if k in (PROJECT_ENV, LOCATION_ENV)}
    files, problems = find_files(paths)
    count = 0
    jobs: list[DesiredJob] = []
    for result in _check_files(files, default_project, default_location, env, workers):
        count += result.documents
        jobs.extend(result.jobs)
        problems.extend(result.problems)
    jobs, duplicates = _unique_keys(jobs)
    return CheckResult(files, count, jobs, problems + duplicates)


def load_desired(paths: list[str] | None, default_project: str | None = None,
                 default_location: str | None = None) -> list[DesiredJob]:
    """The desired jobs from the manifests under `paths` (default `manifests/`).

    Raises `ManifestError` listing every problem (`file:line:col: message` lines); its
    `.problems` holds them as `Problem`s."""
    result = check(paths, default_project, default_location)
    if result.problems:
        raise ManifestError(format_problems(result.problems), result.problems)
    return result.jobs


def format_problems(problems: Iterable[Problem]) -> str:
    problems = list(problems)
    head = f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the manifests:"
    return "\n".join([head, *(str(p) for p in problems)])
