"""`.reconcilerignore`: known, accepted drift. `parse_ignore` parses and matches (pure);
`load_ignore` reads the file.

One rule per line, `#` starts a comment:

    # a pattern alone ignores every category
    legacy-*
    # then categories, separated by commas or spaces
    experiment-?    out-of-band, orphan
    # a pattern with "/" matches project/location/key (an unmanaged job: project/location/<job id>)
    sandbox-project/*/*   unmanaged

Patterns are shell globs (`*`, `?`, `[a-z]`, `[!0-9]`); without "/" they match the key, or the
job id of an unmanaged job. Rules are tried in order; the first match wins (it is the one named
in the report).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.files import read_regular
from reconciler.model import DRIFT_CATEGORIES as CATEGORIES

ALL_WORDS = frozenset({"*", "all"})

# Keys, project ids, locations and job ids are lowercase letters, digits, "-", "_" and ".".
_PATTERN = re.compile(r"^[a-z0-9_.*?\[\]!/-]+$")
_TOKEN = re.compile(r"[^\s,]+|,")


class IgnoreFileError(ReconcilerError):
    """A line of an ignore file that cannot be understood: file:line:column: message."""


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    categories: frozenset[str]  # empty: every category
    source: str  # "path:line", shown in the report as what ignored an item

    def matches(self, category: str, key: str | None, address: str, job_id: str | None) -> bool:
        if self.categories and category not in self.categories:
            return False
        if "/" in self.pattern:
            return fnmatch.fnmatchcase(address, self.pattern)
        name = key if key is not None else job_id
        return name is not None and fnmatch.fnmatchcase(name, self.pattern)


@dataclass(frozen=True)
class IgnoreRules:
    rules: tuple[IgnoreRule, ...] = ()

    def match(self, category: str, key: str | None, address: str, job_id: str | None) -> IgnoreRule | None:
        for rule in self.rules:
            if rule.matches(category, key, address, job_id):
                return rule
        return None

    def __len__(self) -> int:
        return len(self.rules)


def _check_pattern(pattern: str, where: str) -> None:
    if not _PATTERN.match(pattern):
        bad = next(c for c in pattern if not _PATTERN.match(c))
        hint = " (keys are lowercase)" if bad.isupper() else ""
        raise IgnoreFileError(f"{where}: invalid character {bad!r} in pattern {pattern!r}{hint}")
    depth = 0
    for c in pattern:
        if c == "[":
            if depth:
                raise IgnoreFileError(f"{where}: nested '[' in pattern {pattern!r}")
            depth = 1
        elif c == "]":
            if not depth:
                raise IgnoreFileError(f"{where}: ']' without '[' in pattern {pattern!r}")
            depth = 0
    if depth:
        raise IgnoreFileError(f"{where}: '[' without ']' in pattern {pattern!r}")
    if pattern.count("/") not in (0, 2):
        raise IgnoreFileError(f"{where}: a pattern with '/' must have the form project/location/key, "
                              f"got {pattern!r}")


def parse_ignore(text: str, source: str) -> IgnoreRules:
    """Rules from the text of an ignore file; `source` names it in errors and in the report."""
    rules: list[IgnoreRule] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0]
        tokens = [(m.group(), m.start() + 1) for m in _TOKEN.finditer(content)]
        if not tokens:
            continue
        (pattern, col), rest = tokens[0], tokens[1:]
        if pattern == ",":
            raise IgnoreFileError(f"{source}:{number}:{col}: expected a key pattern, got ','")
        _check_pattern(pattern, f"{source}:{number}:{col}")
        categories: set[str] = set()
        expect_word = True
        for token, col in rest:
            if token == ",":
                if expect_word:
                    raise IgnoreFileError(f"{source}:{number}:{col}: empty category before ','")
                expect_word = True
                continue
            if token in ALL_WORDS:
                categories.update(CATEGORIES)
            elif token in CATEGORIES:
                categories.add(token)
            else:
                raise IgnoreFileError(f"{source}:{number}:{col}: unknown drift category {token!r} "
                                      f"(expected one of {', '.join(CATEGORIES)}, or all)")
            expect_word = False
        if rest and expect_word:
            raise IgnoreFileError(f"{source}:{number}:{rest[-1][1]}: a category must follow ','")
        every = categories >= set(CATEGORIES)
        rules.append(IgnoreRule(pattern, frozenset() if every else frozenset(categories), f"{source}:{number}"))
    return IgnoreRules(tuple(rules))


def load_ignore(path: str | None, required: bool) -> IgnoreRules:
    """The rules in `path`; a missing file is no rules unless the user named it (`required`)."""
    if path is None:
        return IgnoreRules()
    file = Path(path)
    try:
        text = read_regular(file, 16 * 1024 * 1024).decode("utf-8")
    except FileNotFoundError:
        if required:
            raise IgnoreFileError(f"{path}: no such ignore file") from None
        return IgnoreRules()
    except UnicodeDecodeError as exc:
        raise IgnoreFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise IgnoreFileError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_ignore(text, path)
