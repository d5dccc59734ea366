"""A finding in a manifest, placed by file, line and column (and field path)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
            out += f".{part}" if out else str(part)
    return out
