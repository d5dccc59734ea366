"""A finding in a manifest, placed by file, line and column (and field path)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
