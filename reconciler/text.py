"""Text for terminals and logs: values from manifests or the API made safe to print, and the
few formats every renderer shares."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

# C0/C1 control characters (ESC included) would let a key or label rewrite the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """Printable form of a value from a manifest or the API (no escape sequences)."""
    return _CONTROL.sub("?", str(text))


def one_line(text: Any) -> str:
    """`clean`, and line breaks shown as `\\n`: one message stays on one line."""
    return clean(text).replace("\r", "\\r").replace("\n", "\\n")


# What one message may quote: a value from a manifest or a server is cut, a list of names is
# shortened to its first few (a location's 200,000 jobs once made one 14 MB line).
MAX_QUOTED_CHARS = 200
MAX_LISTED = 10
MAX_LINE_CHARS = 4_000
MAX_MESSAGE_LINES = 1_000


def shorten(text: Any, limit: int = MAX_QUOTED_CHARS) -> str:
    """`text` cut to `limit` characters, saying how many more there were."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def some(items: Iterable[Any], limit: int = MAX_LISTED, sep: str = ", ") -> str:
    """The first `limit` items joined, then `... and N more`; each item shortened."""
    items = list(items)
    shown = sep.join(shorten(i) for i in items[:limit])
    return shown + (f" ... and {len(items) - limit:,} more" if len(items) > limit else "")


def cap_message(message: str) -> str:
    """A last bound on one message at the output edge: long lines cut, and at most
    MAX_MESSAGE_LINES lines (whatever built the message forgot to bound)."""
    lines = message.split("\n")
    out = [shorten(line, MAX_LINE_CHARS) for line in lines[:MAX_MESSAGE_LINES]]
    if len(lines) > MAX_MESSAGE_LINES:
        out.append(f"... and {len(lines) - MAX_MESSAGE_LINES:,} more lines")
    return "\n".join(out)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def key_labels(items: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """Display label per address for (address, key, location) items: the key, or `key (location)`
    when the same key is in several locations, so progress lines stay unambiguous."""
    items = list(items)
    counts = Counter(key for _, key, _ in items)
    return {address: clean(key if counts[key] == 1 else f"{key} ({location})")
            for address, key, location in items}


def format_duration(seconds: float | None) -> str:
    """kubectl style: 45s, 3m12s, 2h5m, 3d4h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"
