"""The graph the references make across the manifests: which job each reference names, the
edges (downstream -> upstream), cycles, and a topological order. Pure.

A bare key names the job with that key in the referencing job's own project and location, or
else the one job with that key elsewhere; a full `project/location/key` names exactly that job.
Problems (an unknown or ambiguous key, a self-reference, a cycle) come with the address and the
spec path of the reference, so that `validate` can place them at `file:line:col`."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from reconciler.graph.references import Reference, SpecPath, Template, dotted, templates
from reconciler.model import DesiredJob, address_of


@dataclass(frozen=True)
class Field:
    """A string of a job's spec that holds references (or only `$${` escapes)."""

    path: SpecPath
    template: Template  # as written
    canonical: Template  # every reference spelled as the full address it names
    upstreams: tuple[str, ...] = ()  # the addresses it names, once each
    text: str = ""  # `canonical` written out

    @property
    def dotted(self) -> str:
        return dotted(self.path)


@dataclass(frozen=True)
class Edge:
    downstream: str
    upstream: str
    path: str  # the downstream's spec field
    output: str  # what of the upstream it uses


@dataclass(frozen=True)
class GraphProblem:
    address: str
    path: SpecPath  # in the spec; () for the job as a whole
    message: str
    unknown: str = ""  # the key no manifest declares (validate drops these for documents that failed)


@dataclass
class JobGraph:
    fields: dict[str, tuple[Field, ...]] = field(default_factory=dict)  # jobs with templates only
    upstreams: dict[str, tuple[str, ...]] = field(default_factory=dict)
    downstreams: dict[str, tuple[str, ...]] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # every node, upstream first, ties by address
    problems: list[GraphProblem] = field(default_factory=list)

    @property
    def has_edges(self) -> bool:
        return bool(self.edges)

    def transitive_upstreams(self, addresses: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(addresses)
        while todo:
            for up in self.upstreams.get(todo.pop(), ()):
                if up not in seen:
                    seen.add(up)
                    todo.append(up)
        return seen

    def transitive_downstreams(self, addresses: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(addresses)
        while todo:
            for down in self.downstreams.get(todo.pop(), ()):
                if down not in seen:
                    seen.add(down)
                    todo.append(down)
        return seen


class _Keys:
    def __init__(self, jobs: Sequence[DesiredJob]) -> None:
        self.addresses: set[str] = set()
        self.by_key: dict[str, list[str]] = {}
        for d in jobs:
            address = address_of(d.project, d.location, d.key)
            self.addresses.add(address)
            self.by_key.setdefault(d.key, []).append(address)

    def resolve(self, ref: Reference, job: DesiredJob) -> tuple[str | None, str | None]:
        """(address, None), or (None, why not)."""
        if "/" in ref.key:
            if ref.key in self.addresses:
                return ref.key, None
            return None, f"`{ref}`: no manifest declares the job `{ref.key}`"
        here = address_of(job.project, job.location, ref.key)
        if here in self.addresses:
            return here, None
        elsewhere = sorted(self.by_key.get(ref.key, []))
        if len(elsewhere) == 1:
            return elsewhere[0], None
        if elsewhere:
            return None, (f"`{ref}`: no job `{ref.key}` in {job.project}/{job.location}, and several elsewhere "
                          f"({', '.join(elsewhere)}): write the address in full, "
                          f"`${{jobs.PROJECT/LOCATION/{ref.key}.{ref.output}}}`")
        return None, (f"`{ref}`: no manifest declares a job `{ref.key}` (a job that others reference "
                      "cannot leave the manifests: remove the references to it first)")


_last: tuple[tuple[DesiredJob, ...], JobGraph] | None = None  # see build_graph


def build_graph(jobs: Sequence[DesiredJob], also: Iterable[str] = ()) -> JobGraph:
    """The graph of `jobs`' references. `also`: more nodes without edges (keys only state
    knows), placed in `order` by address like every job nothing links.

    `validate` builds the graph of the manifests and `plan` builds it again for the same jobs;
    the last graph is kept for the very same job objects (DesiredJobs are immutable), so a
    plan of tens of thousands of jobs pays for it once."""
    global _last
    also = set(also)
    cached = _last
    if cached is not None and len(cached[0]) == len(jobs) and all(a is b for a, b in zip(cached[0], jobs)):
        graph = cached[1]
    else:
        graph = _build(jobs)
        _last = (tuple(jobs), graph)
    nodes = graph.order if not also - set(graph.order) else sorted(set(graph.order) | also)
    if nodes is graph.order:
        return graph
    return replace(graph, order=_topological(nodes, graph.upstreams, graph.downstreams))


def _build(jobs: Sequence[DesiredJob]) -> JobGraph:
    keys = _Keys(jobs)
    graph = JobGraph()
    ups: dict[str, dict[str, None]] = {}
    first_field: dict[tuple[str, str], SpecPath] = {}
    for job in jobs:
        found, errors = templates(job.spec)
        if not found and not errors:
            continue
        address = job.address
        for path, message in errors:  # validate reports these first; plans from elsewhere meet them here
            graph.problems.append(GraphProblem(address, ("spec", *path), message))
        fields: list[Field] = []
        for path, template in found:
            parts: list = []
            bad = False
            for part in template.parts:
                if isinstance(part, str):
                    parts.append(part)
                    continue
                target, why = keys.resolve(part, job)
                if target is None or target == address:
                    if target is None:
                        missing = part.key.rsplit("/", 1)[-1]
                        graph.problems.append(GraphProblem(address, ("spec", *path), why or "",
                                                           missing if not keys.by_key.get(missing) else ""))
                    else:
                        graph.problems.append(GraphProblem(address, ("spec", *path), (
                            f"`{part}`: a job cannot use its own outputs (they exist only once it has run)")))
                    bad = True
                    continue
                parts.append(Reference(target, part.output))
            if bad:
                continue
            canonical = Template(tuple(parts))
            upstreams = tuple(dict.fromkeys(r.key for r in canonical.refs))
            f = Field(path, template, canonical, upstreams, canonical.text())
            fields.append(f)
            for ref in canonical.refs:
                ups.setdefault(address, {})[ref.key] = None
                first_field.setdefault((address, ref.key), ("spec", *path))
                graph.edges.append(Edge(address, ref.key, f.dotted, ref.output))
        if fields:
            graph.fields[address] = tuple(fields)
    graph.upstreams = {a: tuple(sorted(u)) for a, u in ups.items()}
    downs: dict[str, list[str]] = {}
    for a, us in graph.upstreams.items():
        for u in us:
            downs.setdefault(u, []).append(a)
    graph.downstreams = {u: tuple(sorted(d)) for u, d in downs.items()}
    nodes = sorted(keys.addresses)
    for component in _cycles(nodes, graph.upstreams):
        graph.problems.extend(_cycle_problems(component, graph.upstreams, first_field, keys))
    graph.order = _topological(nodes, graph.upstreams, graph.downstreams)
    return graph


def _cycles(nodes: list[str], ups: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """Strongly connected components of more than one job (Tarjan's, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index or root not in ups:
            continue
        work = [(root, iter(ups.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(ups.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _cycle_path(component: list[str], ups: dict[str, tuple[str, ...]]) -> list[str]:
    """A shortest cycle through the component's first member (breadth first)."""
    members = set(component)
    start = component[0]
    came: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for up in ups.get(node, ()):
                if up == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came[path[-1]])
                    return [start, *reversed(path[:-1])]
                if up in members and up not in came:
                    came[up] = node
                    nxt.append(up)
        frontier = nxt
    return list(component)  # not reached: a component has a cycle through each member


def _cycle_problems(component: list[str], ups: dict[str, tuple[str, ...]],
                    first_field: dict[tuple[str, str], SpecPath], keys: _Keys) -> list[GraphProblem]:
    cycle = _cycle_path(component, ups)
    names = {a: _short(a, keys) for a in component}
    shown = " -> ".join(names[a] for a in [*cycle, cycle[0]])
    rest = [names[a] for a in component if a not in cycle]
    message = (f"reference cycle: {shown} (each uses the next one's output, so none of them can ever start)"
               + (f"; also on it: {', '.join(rest)}" if rest else ""))
    problems = []
    members = set(component)
    for address in component:
        nxt = cycle[(cycle.index(address) + 1) % len(cycle)] if address in cycle else None
        target = nxt if nxt is not None else next(u for u in ups[address] if u in members)
        problems.append(GraphProblem(address, first_field[(address, target)], message))
    return problems


def _short(address: str, keys: _Keys) -> str:
    key = address.rsplit("/", 1)[-1]
    return key if len(keys.by_key.get(key, [])) <= 1 else address


def _topological(nodes: list[str], ups: dict[str, tuple[str, ...]], downs: dict[str, tuple[str, ...]]) -> list[str]:
    """Kahn's algorithm, ties by address (jobs nothing links stay in address order); jobs on a
    cycle, which never become ready, come last."""
    waiting = {a: len(ups.get(a, ())) for a in nodes}
    ready = [a for a in nodes if not waiting[a]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for down in downs.get(node, ()):
            if down in waiting:
                waiting[down] -= 1
                if not waiting[down]:
                    heapq.heappush(ready, down)
    if len(order) < len(nodes):
        done = set(order)
        order += [a for a in nodes if a not in done]
    return order
