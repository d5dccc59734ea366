"""Find manifest files, read them within limits, validate each document and turn it into a
`DesiredJob` (project and location defaulted): every problem as `file:line:col: message`.

Files over `MAX_FILE_BYTES`, binary files and non-UTF-8 text are refused before parsing; the
YAML itself is read by `yaml_reader`, checked by `validation`."""

from __future__ import annotations

import copy
import multiprocessing
import os
import stat
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from reconciler.apischema.normalize import normalize_spec, normalized_hash
from reconciler.defaults import DEFAULT_MANIFEST_PATH, LOCATION_ENV, PROJECT_ENV
from reconciler.errors import ManifestError
from reconciler.files import kind_of_file, read_regular
from reconciler.graph.graph import build_graph
from reconciler.graph.references import walk_strings
from reconciler.manifests.problems import FileCheck, Problem, Where, dotted
from reconciler.manifests.validation import check_document, fast_validator, is_manifest, rest_version

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from reconciler.manifests.cache import ManifestCache
from reconciler.manifests.yaml_reader import ABORTED, Document, iter_documents
from reconciler.model import Defaults, DesiredJob, Lifecycle, SourcePos

SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_PROBLEMS_PER_FILE = 200
# Below this much YAML, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 1024 * 1024
MAX_WORKERS = 4


def read_text(path: str) -> tuple[str | None, Problem | None]:
    """The file's text, or the problem that stops us reading it."""
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            return None, Problem(path, 0, 0, "", f"file is {size / 1e6:.1f} MB; manifest files "
                                 f"over {MAX_FILE_BYTES // (1024 * 1024)} MB are refused")
        data = read_regular(path, MAX_FILE_BYTES)  # never blocks on a FIFO; refused if it grew meanwhile
    except OSError as exc:
        return None, Problem(path, 0, 0, "", f"cannot read file: {exc.strerror or exc}")
    if b"\x00" in data:
        return None, Problem(path, 0, 0, "", "binary file (contains NUL bytes), not YAML text")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Problem(path, line, column, "", f"not UTF-8 text: byte "
                             f"0x{data[exc.start]:02x} cannot be decoded; save the file as UTF-8")


def _empty(path: str) -> Problem:
    return Problem(path, 0, 0, "", "no YAML documents in file (empty)")


def _unreadable(path: str) -> str | None:
    """Why an entry that looks like a manifest cannot be read as one (None: a regular file).
    Left out silently, its job would be planned as removed: cancelled."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if os.path.islink(path):
            return f"broken symbolic link (to {os.readlink(path)}): {exc.strerror or exc}"
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    return f"named like a manifest but not a regular file: it is {kind_of_file(mode)}"


def _walk(top: str, problems: list[Problem]) -> list[tuple[str, str]]:
    """(relative posix path, path) of every entry with a manifest suffix under `top`, hidden
    ones left out; a directory that cannot be listed is a problem, not silently skipped.
    Directory links are not followed (as before: a link cycle cannot loop)."""
    entries: list[tuple[str, str]] = []

    def failed(exc: OSError) -> None:
        problems.append(Problem(exc.filename or top, 0, 0, "", "cannot list this directory: "
                                f"{exc.strerror or exc}; its manifests would be left out"))

    for directory, subdirs, names in os.walk(top, onerror=failed):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        rel_dir = os.path.relpath(directory, top)
        for name in names:
            if name.startswith(".") or os.path.splitext(name)[1] not in SUFFIXES:
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            entries.append((FsPath(rel).as_posix(), str(FsPath(directory) / name)))
    return sorted(entries)


def find_files(paths: Sequence[str] | None) -> tuple[list[str], list[Problem]]:
    """Manifest files under `paths` (default `manifests/`), recursively, in a stable order.
    Files named explicitly are taken whatever their suffix; hidden entries are skipped. An
    entry named like a manifest that cannot be read (a broken link, a FIFO, no permission)
    is a problem with its path: plan and apply stop rather than cancel its job."""
    found: list[str] = []
    problems: list[Problem] = []
    seen: set[str] = set()

    def add(file: str) -> None:
        real = os.path.realpath(file)
        if real not in seen:
            seen.add(real)
            found.append(file)

    for given in paths or [DEFAULT_MANIFEST_PATH]:
        target = FsPath(given)
        if target.is_dir():
            entries = _walk(given, problems)
            files = []
            for _, path in entries:
                why = _unreadable(path)
                if why is None:
                    files.append(path)
                else:
                    problems.append(Problem(path, 0, 0, "", why))
            if not entries:
                problems.append(Problem(given, 0, 0, "", "no manifests here: no .yaml or .yml "
                                        "files in this directory or below it"))
            for file in files:
                add(str(file))
        elif target.is_file():
            add(given)
        elif target.exists() or os.path.islink(given):
            try:
                why = f"not a regular file or directory: it is {kind_of_file(os.stat(given).st_mode)}"
            except OSError:
                why = _unreadable(given) or "cannot read it"
            problems.append(Problem(given, 0, 0, "", why))
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
        on_upstream_change=raw.get("onUpstreamChange", default.on_upstream_change),
        on_missing=raw.get("onMissing", default.on_missing),
    )


def _target(doc: Document, field_name: str, flag: str, env_name: str,
            default: str | None) -> tuple[str | None, Problem | None]:
    metadata = doc.data["metadata"]
    value = metadata.get(field_name) or default or None
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
    # Compared once here (in the worker processes, and then kept in the manifest cache) rather
    # than by every plan; a spec with references is compared only once they are filled in.
    normalized = normalize_spec(spec) if not walk_strings(spec) else None
    return DesiredJob(key=data["metadata"]["name"], project=project, location=location,
                      spec=spec, lifecycle=_lifecycle(data.get("lifecycle")),
                      source=SourcePos(doc.file, line, column), api_version=rest_version(data),
                      normalized=normalized, spec_hash=normalized_hash(normalized) if normalized is not None else None)


def check_file(path: str, defaults: Defaults) -> FileCheck:
    """Parse and validate one file; project/location defaulted per document. Stops after
    `MAX_PROBLEMS_PER_FILE` problems so that a huge broken file cannot keep us busy."""
    text, problem = read_text(path)
    if problem is not None or text is None:
        return FileCheck(0, [], [problem] if problem else [])
    count = 0
    jobs: list[DesiredJob] = []
    problems: list[Problem] = []
    result = FileCheck(0, jobs, problems)
    documents = iter_documents(text, path, problems)
    stopped = False
    try:
        for doc in documents:
            if doc.data is None:
                continue  # an empty document, e.g. after a trailing `---`
            count += 1
            if doc.data is not ABORTED:
                job = _check_document(doc, defaults, problems)
                if job is not None:
                    jobs.append(job)
                    for where, _ in walk_strings(job.spec, ("spec",)):
                        result.positions[(job.address, where)] = doc.values.get(where, doc.start)
                elif isinstance(doc.data, dict) and isinstance(doc.data.get("metadata"), dict):
                    name = doc.data["metadata"].get("name")
                    if isinstance(name, str):
                        result.failed_keys.add(name)
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
    result.documents = count
    return result


def _check_document(doc: Document, defaults: Defaults, problems: list[Problem]) -> DesiredJob | None:
    """The job one document describes, or None after adding its problems to `problems`."""
    found = doc.problems + check_document(doc.data, doc.file, doc.values, doc.keys)
    project = location = None
    if is_manifest(doc.data) and isinstance(doc.data.get("metadata"), dict):
        project, p1 = _target(doc, "project", "--project", PROJECT_ENV, defaults.project)
        location, p2 = _target(doc, "location", "--location", LOCATION_ENV, defaults.location)
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


def _check_files(files: Sequence[str], defaults: Defaults, workers: int | None,
                 cache: ManifestCache | None = None) -> list[FileCheck]:
    """Each file on its own, in order: from the cache when the file is unchanged, else parsed,
    in forked worker processes when that pays."""
    results: list[FileCheck | None] = [None] * len(files)
    texts: dict[int, str] = {}
    if cache is not None:
        for i, path in enumerate(files):
            text, problem = read_text(path)
            if text is None:
                continue  # checked below, which reports why it cannot be read
            found = cache.get(path, text, defaults)
            if found is None:
                texts[i] = text
            else:
                results[i] = found
    todo = [i for i, r in enumerate(results) if r is None]
    for i, result in zip(todo, _parse_files([files[i] for i in todo], defaults, workers)):
        results[i] = result
        if cache is not None and i in texts:
            cache.put(files[i], texts[i], defaults, result)
    return results  # type: ignore[return-value]


def _parse_files(files: Sequence[str], defaults: Defaults, workers: int | None) -> list[FileCheck]:
    """Read and check each file; in forked worker processes when that pays (results in order)."""
    workers = _auto_workers(files) if workers is None else min(workers, len(files))
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        fast_validator()  # build it once here; forked workers inherit it
        try:
            context = multiprocessing.get_context("fork")
            chunk = max(1, len(files) // (workers * 4))
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                return list(pool.map(check_file, files, [defaults] * len(files), chunksize=chunk))
        except (OSError, BrokenProcessPool):
            pass  # no processes to be had here (sandbox, limits): do it ourselves
    return [check_file(path, defaults) for path in files]


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


def check(paths: Sequence[str] | None, defaults: Defaults = Defaults(), workers: int | None = None,
          cache: ManifestCache | None = None) -> CheckResult:
    """Find, parse and validate every manifest; collect every problem (never raises for
    bad manifests). `defaults`: project and location for documents that name none (already
    resolved from flags and the environment). `workers`: processes to use (default: decided
    by input size). `cache`: results of unchanged files (saved at the end)."""
    files, problems = find_files(paths)
    count = 0
    jobs: list[DesiredJob] = []
    positions: dict[Where, tuple[int, int]] = {}
    failed: set[str] = set()
    results = _check_files(files, defaults, workers, cache)
    if cache is not None:
        cache.save()
    for result in results:
        count += result.documents
        jobs.extend(result.jobs)
        problems.extend(result.problems)
        positions.update(result.positions)
        failed |= result.failed_keys
    jobs, duplicates = _unique_keys(jobs)
    return CheckResult(files, count, jobs, problems + duplicates + _graph_problems(jobs, positions, failed))


def _graph_problems(jobs: list[DesiredJob], positions: dict[Where, tuple[int, int]],
                    failed: set[str]) -> list[Problem]:
    """References across the manifests: unknown keys, outputs that are none, self-references
    and cycles, each at the string that holds the reference."""
    by_address = {j.address: j for j in jobs}
    out: list[Problem] = []
    for p in build_graph(jobs).problems:
        if p.unknown and p.unknown in failed:
            continue  # that document has its own problems; it is not missing
        job = by_address[p.address]
        line, column = positions.get((p.address, p.path), (job.source.line, job.source.column))
        out.append(Problem(job.source.file, line, column, dotted(p.path), p.message))
    return sorted(out, key=lambda q: (q.file, q.line, q.column))


def load_desired(paths: Sequence[str] | None, defaults: Defaults = Defaults(),
                 cache: ManifestCache | None = None) -> list[DesiredJob]:
    """The desired jobs from the manifests under `paths` (default `manifests/`).

    Raises `ManifestError` listing every problem (`file:line:col: message` lines); its
    `.problems` holds them as `Problem`s."""
    result = check(paths, defaults, cache=cache)
    if result.problems:
        raise ManifestError(format_problems(result.problems), result.problems)
    return result.jobs


def format_problems(problems: Iterable[Problem]) -> str:
    problems = list(problems)
    head = f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the manifests:"
    return "\n".join([head, *(str(p) for p in problems)])
