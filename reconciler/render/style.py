"""Terminal colour: only on a terminal, never with --no-color or $NO_COLOR."""

from __future__ import annotations

import os
from typing import TextIO


def use_color(stream: TextIO, no_color: bool = False) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self("1", text)
