"""A subset of AIP-160 list filters, compiled to predicates over tuning jobs.

Supported: `labels.k="v"` (`*` wildcards in the value), `labels.k!="v"`, `labels.k:*`
(presence), `labels:k`, `state=JOB_STATE_X` / `!=`, `create_time|update_time|start_time|
end_time <op> "RFC3339"` (`=`, `!=`, `<`, `<=`, `>`, `>=`), `base_model="..."`,
`tuned_model_display_name="..."`, `AND`, `OR`, `NOT`/`-`, parentheses and implicit AND by
juxtaposition. As in AIP-160, OR binds tighter than AND. Anything else is a ValueError with
a message that says what is wrong; the HTTP layer turns it into 400 INVALID_ARGUMENT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Protocol

from reconciler.emulator.clock import parse_rfc3339

JOB_STATES = (
    "JOB_STATE_UNSPECIFIED",
    "JOB_STATE_QUEUED",
    "JOB_STATE_PENDING",
    "JOB_STATE_RUNNING",
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLING",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_PAUSED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_UPDATING",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
)
_TIME_FIELDS = {
    "create_time": "create_time",
    "createTime": "create_time",
    "update_time": "update_time",
    "updateTime": "update_time",
    "start_time": "start_time",
    "startTime": "start_time",
    "end_time": "end_time",
    "endTime": "end_time",
}
_STRING_FIELDS = {
    "base_model": "base_model",
    "baseModel": "base_model",
    "tuned_model_display_name": "tuned_model_display_name",
    "tunedModelDisplayName": "tuned_model_display_name",
    "display_name": "tuned_model_display_name",
}


class Subject(Protocol):
    """What a filter can look at on a job."""

    labels: dict[str, str]
    state: str
    create_time: float
    update_time: float
    start_time: float | None
    end_time: float | None
    base_model: str
    tuned_model_display_name: str


Predicate = Callable[[Subject], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\()|(?P<rparen>\))|
        (?P<op><=|>=|!=|=|<|>|:)|
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|
        (?P<word>[A-Za-z0-9_*][A-Za-z0-9_.*\-]*)|
        (?P<minus>-)|
        (?P<bad>\S)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # lparen rparen op string word minus and or not end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            break  # only trailing whitespace is left
        kind = match.lastgroup or "bad"
        value = match.group(kind)
        start = match.start(kind)
        if kind == "bad":
            raise ValueError(f"unexpected character {value!r} at position {start + 1}")
        if kind == "string":
            value = _unquote(value)
        elif kind == "word" and value in ("AND", "OR", "NOT"):
            kind = value.lower()
        tokens.append(Token(kind, value, start))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])


# --- the syntax tree --------------------------------------------------------------------


@dataclass(frozen=True)
class Restriction:
    field: str  # e.g. "labels.team", "labels", "state", "create_time"
    op: str  # one of = != < <= > >= :
    value: str
    quoted: bool


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Restriction | And | Or | Not


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, token: Token, expected: str) -> ValueError:
        found = "end of filter" if token.kind == "end" else repr(token.text)
        return ValueError(f"expected {expected} at position {token.pos + 1}, found {found}")

    def parse(self) -> Node:
        node = self.expression()
        if self.peek().kind != "end":
            raise self.fail(self.peek(), "AND, OR or end of filter")
        return node

    def expression(self) -> Node:
        parts = [self.sequence()]
        while self.peek().kind == "and":
            self.take()
            parts.append(self.sequence())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def sequence(self) -> Node:
        parts = [self.factor()]
        while self.peek().kind in ("word", "string", "lparen", "not", "minus"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def factor(self) -> Node:
        parts = [self.term()]
        while self.peek().kind == "or":
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def term(self) -> Node:
        if self.peek().kind in ("not", "minus"):
            self.take()
            return Not(self.simple())
        return self.simple()

    def simple(self) -> Node:
        token = self.peek()
        if token.kind == "lparen":
            self.take()
            node = self.expression()
            if self.peek().kind != "rparen":
                raise self.fail(self.peek(), "')'")
            self.take()
            return node
        if token.kind != "word":
            raise self.fail(token, "a field name or '('")
        self.take()
        op = self.peek()
        if op.kind != "op":
            raise ValueError(
                f"bare value {token.text!r} at position {token.pos + 1} is not supported; "
                "use a restriction such as labels.key=\"value\""
            )
        self.take()
        arg = self.peek()
        if arg.kind not in ("word", "string"):
            raise self.fail(arg, "a value")
        self.take()
        return Restriction(token.text, op.text, arg.text, arg.kind == "string")


def parse(text: str) -> Node | None:
    """The syntax tree of a filter, or None for an empty one."""
    if not text.strip():
        return None
    return _Parser(text).parse()


# --- compilation ------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _string_matcher(value: str) -> Callable[[str | None], bool]:
    if "*" not in value:
        return lambda actual: actual == value
    pattern = re.compile("^" + ".*".join(re.escape(p) for p in value.split("*")) + "$", re.DOTALL)
    return lambda actual: actual is not None and pattern.match(actual) is not None


def _label(r: Restriction) -> Predicate:
    if r.field == "labels":  # labels:key  -> the map has the key
        if r.op != ":":
            raise ValueError("the labels map supports only ':' (labels:key); use labels.key=\"value\"")
        key = r.value
        return lambda job: key in job.labels
    key = r.field[len("labels.") :]
    if not key:
        raise ValueError("missing label key after 'labels.'")
    if r.op == ":" and r.value == "*" and not r.quoted:
        return lambda job: key in job.labels
    if r.op in ("=", ":"):
        match = _string_matcher(r.value)
        return lambda job: match(job.labels.get(key))
    if r.op == "!=":
        match = _string_matcher(r.value)
        return lambda job: not match(job.labels.get(key))
    raise ValueError(f"operator {r.op!r} is not supported for labels")


def _state(r: Restriction) -> Predicate:
    if r.value not in JOB_STATES:
        raise ValueError(f"unknown state {r.value!r}; expected one of {', '.join(JOB_STATES)}")
    value = r.value
    if r.op in ("=", ":"):
        return lambda job: job.state == value
    if r.op == "!=":
        return lambda job: job.state != value
    raise ValueError(f"operator {r.op!r} is not supported for state")


def _time(r: Restriction, attr: str) -> Predicate:
    try:
        bound = parse_rfc3339(r.value)
    except ValueError:
        raise ValueError(f"{r.field} needs an RFC 3339 timestamp such as \"2024-01-01T00:00:00Z\", got {r.value!r}")
    if r.op not in _COMPARE:
        raise ValueError(f"operator {r.op!r} is not supported for {r.field}")
    compare = _COMPARE[r.op]

    def check(job: Subject) -> bool:
        actual = getattr(job, attr)
        # Micro-second precision is what the service shows; compare at that precision.
        return actual is not None and compare(round(actual, 6), round(bound, 6))

    return check


def _string_field(r: Restriction, attr: str) -> Predicate:
    match = _string_matcher(r.value)
    if r.op in ("=", ":"):
        return lambda job: match(getattr(job, attr))
    if r.op == "!=":
        return lambda job: not match(getattr(job, attr))
    raise ValueError(f"operator {r.op!r} is not supported for {r.field}")


def compile_node(node: Node) -> Predicate:
    if isinstance(node, And):
        parts = [compile_node(p) for p in node.parts]
        return lambda job: all(p(job) for p in parts)
    if isinstance(node, Or):
        parts = [compile_node(p) for p in node.parts]
        return lambda job: any(p(job) for p in parts)
    if isinstance(node, Not):
        inner = compile_node(node.part)
        return lambda job: not inner(job)
    if node.field == "labels" or node.field.startswith("labels."):
        return _label(node)
    if node.field == "state":
        return _state(node)
    if node.field in _TIME_FIELDS:
        return _time(node, _TIME_FIELDS[node.field])
    if node.field in _STRING_FIELDS:
        return _string_field(node, _STRING_FIELDS[node.field])
    raise ValueError(f"unsupported filter field {node.field!r}")


def label_hint(node: Node | None) -> tuple[str, str] | None:
    """A `labels.k="v"` equality every match must satisfy, so the caller can use an index."""
    if node is None:
        return None
    if isinstance(node, Restriction):
        if node.field.startswith("labels.") and node.op in ("=", ":") and "*" not in node.value:
            return node.field[len("labels.") :], node.value
        return None
    if isinstance(node, And):
        for part in node.parts:
            hint = label_hint(part)
            if hint is not None:
                return hint
    return None


@dataclass(frozen=True)
class Filter:
    text: str
    predicate: Predicate
    hint: tuple[str, str] | None


def compile_filter(text: str) -> Filter:
    """Parse and compile; ValueError with a readable reason for a bad filter."""
    node = parse(text)
    if node is None:
        return Filter(text, lambda job: True, None)
    return Filter(text, compile_node(node), label_hint(node))
