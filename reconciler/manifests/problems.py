"""Findings in manifests: one `Problem`, placed by file, line and column (and field path), and
one file's `FileCheck` (what the loader found there, and what the cache keeps of it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model import DesiredJob
from reconciler.text import shorten

MAX_MESSAGE_CHARS = 2_000  # one problem, whatever it quotes (a 5 MB key made a 5 MB message)
MAX_PART_CHARS = 80  # one key of a field path

Path = tuple[str | int, ...]
Positions = Mapping[Path, tuple[int, int]]  # path -> (line, column), both 1-based


@dataclass(frozen=True)
class Problem:
    """One finding. `line`/`column` are 1-based; 0 means the file as a whole."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __post_init__(self) -> None:
        if len(self.message) > MAX_MESSAGE_CHARS:
            object.__setattr__(self, "message", shorten(self.message, MAX_MESSAGE_CHARS))
        if len(self.path) > MAX_MESSAGE_CHARS:
            object.__setattr__(self, "path", shorten(self.path, MAX_MESSAGE_CHARS))

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


def dotted(path: Path) -> str:
    """`('spec', 'labels', 'team')` -> `spec.labels.team`; list indices as `[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = shorten(part, MAX_PART_CHARS)
            out += f".{part}" if out else part
    return out


Where = tuple[str, tuple]  # (address, path in the document)


@dataclass
class FileCheck:
    """One file's findings: documents counted, jobs that passed, problems in file order.
    `positions`: where each string holding `${` stands, for the graph's problems;
    `failed_keys`: names of documents that failed (references to them are not "unknown")."""

    documents: int
    jobs: list[DesiredJob]
    problems: list[Problem]
    positions: dict[Where, tuple[int, int]] = field(default_factory=dict)
    failed_keys: set[str] = field(default_factory=set)
