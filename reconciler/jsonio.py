"""The one JSON reader for everything the tool did not write itself in this process: API
answers and error bodies, the state file, its journal and lock, saved plans, credentials
files, emulator requests and data. Nesting is bounded: the C decoder recurses once per level
(`[[[[...]]]]` 100,000 deep ends in RecursionError), and so do the functions that walk
parsed values afterwards (normalisation, diffs, schema validation, rendering)."""

from __future__ import annotations

import json
from typing import Any

# Deeper than any document the tool reads (a spec nests about 10 levels; manifests refuse
# more than 64) and far below the interpreter's recursion limit.
MAX_DEPTH = 128


class JsonError(ValueError):
    """Text that is not JSON, or nests deeper than MAX_DEPTH. `str()` says why (and where)."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.line, self.column = line, column


_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def loads(data: str | bytes | bytearray) -> Any:
    """`json.loads`, but every failure is a JsonError and nesting is at most MAX_DEPTH."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JsonError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(data)
    except RecursionError:
        raise JsonError(_TOO_DEEP) from None
    except json.JSONDecodeError as exc:
        raise JsonError(f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                        exc.lineno, exc.colno) from None
    if (isinstance(value, (dict, list)) and data.count("[") + data.count("{") > MAX_DEPTH
            and not _within_depth(value)):
        raise JsonError(_TOO_DEEP)
    return value


def _within_depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether no container in `value` lies more than `limit` levels deep (no recursion)."""
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > limit:
            return False
        children = node.values() if type(node) is dict else node
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                push((child, depth + 1))
    return True
