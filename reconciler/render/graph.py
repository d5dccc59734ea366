"""The job graph as text (stages), Mermaid (GitHub renders it in Markdown) or Graphviz dot;
and the Mermaid graph of a plan's changes for the pull-request comment."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from reconciler.graph.graph import JobGraph
from reconciler.text import clean, key_labels

_UNSAFE = re.compile(r"[^A-Za-z0-9 ,._:/@()-]")
MAX_PLAN_NODES = 60  # a bigger graph is unreadable in a comment: the plan points at `reconciler graph`


def _safe(text: str) -> str:
    """Labels inside Mermaid and dot: keys, addresses and output names only need these."""
    return _UNSAFE.sub("_", clean(text))


def labels_for(addresses: Iterable[str]) -> dict[str, str]:
    """The key, or project/location/key where a key is in several places."""
    items = [(a, a.rsplit("/", 1)[-1], a) for a in addresses]
    counts: dict[str, int] = {}
    for _, key, _ in items:
        counts[key] = counts.get(key, 0) + 1
    return {a: (key if counts[key] == 1 else a) for a, key, _ in items}


def _edge_labels(graph: JobGraph) -> dict[tuple[str, str], list[str]]:
    """(upstream, downstream) -> the outputs used, in order, once each."""
    out: dict[tuple[str, str], list[str]] = {}
    for e in graph.edges:
        used = out.setdefault((e.upstream, e.downstream), [])
        if e.output not in used:
            used.append(e.output)
    return out


def stages(graph: JobGraph) -> dict[str, int]:
    """1 for a job that uses no other job's output, else one more than its deepest upstream."""
    depth: dict[str, int] = {}
    for address in graph.order:
        depth[address] = 1 + max((depth.get(u, 0) for u in graph.upstreams.get(address, ())), default=0)
    return depth


def render_text(graph: JobGraph) -> str:
    names = labels_for(graph.order)
    depth = stages(graph)
    width = max((len(names[a]) for a in graph.order), default=0)
    uses: dict[str, list[str]] = {}
    for e in graph.edges:
        uses.setdefault(e.downstream, []).append(f"{names[e.upstream]}.{e.output} -> {e.path}")
    count = len(graph.order)
    head = (f"Job graph: {count} job{'s' if count != 1 else ''}, {len(graph.edges)} reference"
            f"{'s' if len(graph.edges) != 1 else ''}, {max(depth.values(), default=0)} stage(s).")
    lines = [head]
    position = {a: n for n, a in enumerate(graph.order)}
    for address in sorted(graph.order, key=lambda a: (depth[a], position[a])):
        line = f"  stage {depth[address]}  {clean(names[address]).ljust(width)}"
        if address in uses:
            line += "  uses " + "; ".join(clean(u) for u in uses[address])
        lines.append(line.rstrip())
    return "\n".join(lines) + "\n"


def mermaid_lines(nodes: Sequence[tuple[str, str]], edges: Iterable[tuple[str, str, str]]) -> list[str]:
    """`flowchart LR` with nodes (address, label) and edges (from, to, label)."""
    ids = {address: f"n{i}" for i, (address, _) in enumerate(nodes)}
    lines = ["flowchart LR"]
    lines += [f'  {ids[a]}["{_safe(label)}"]' for a, label in nodes]
    lines += [f'  {ids[a]} -->' + (f'|"{_safe(label)}"|' if label else "") + f" {ids[b]}"
              for a, b, label in edges if a in ids and b in ids]
    return lines


def render_mermaid(graph: JobGraph) -> str:
    names = labels_for(graph.order)
    edges = [(u, d, ", ".join(outs)) for (u, d), outs in _edge_labels(graph).items()]
    return "\n".join(mermaid_lines([(a, names[a]) for a in graph.order], edges)) + "\n"


def _dot_string(text: str) -> str:
    return '"' + clean(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(graph: JobGraph) -> str:
    names = labels_for(graph.order)
    lines = ["digraph jobs {", "  rankdir=LR;", "  node [shape=box];"]
    lines += [f"  {_dot_string(a)} [label={_dot_string(names[a])}];" for a in graph.order]
    lines += [f"  {_dot_string(u)} -> {_dot_string(d)} [label={_dot_string(', '.join(outs))}];"
              for (u, d), outs in _edge_labels(graph).items()]
    return "\n".join(lines + ["}"]) + "\n"


def plan_mermaid(changes: Sequence) -> list[str] | None:
    """A Mermaid graph of the changes that use other jobs' outputs and the jobs they use, for
    the pull-request comment; None when there are no such dependencies or too many jobs."""
    by_address = {c.address: c for c in changes}
    edges: dict[tuple[str, str], None] = {}
    for c in changes:
        if not c.action.changes_anything and not c.waits_for:
            continue
        for i in c.inputs:
            for up in i.upstreams:
                edges[(up, c.address)] = None
    for c in changes:  # what a change re-tunes downstream is part of the picture too
        for i in c.inputs:
            for up in i.upstreams:
                if up in by_address and by_address[up].action.changes_anything:
                    edges[(up, c.address)] = None
    if not edges:
        return None
    involved = list(dict.fromkeys(a for pair in edges for a in pair))
    if len(involved) > MAX_PLAN_NODES:
        return None
    order = {c.address: n for n, c in enumerate(changes)}
    involved.sort(key=lambda a: order.get(a, len(order)))
    names = key_labels((a, a.rsplit("/", 1)[-1], a.split("/")[1] if a.count("/") == 2 else "") for a in involved)
    nodes = []
    for a in involved:
        c = by_address.get(a)
        what = (c.action.value + (" (waits)" if c.waiting else "")) if c is not None else "not in this plan"
        nodes.append((a, f"{names[a]}: {what}"))
    return mermaid_lines(nodes, [(u, d, "") for u, d in edges])
