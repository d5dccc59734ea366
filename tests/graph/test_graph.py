"""The job graph: resolving keys, edges, cycles (every job on them), topological order."""

from __future__ import annotations

from reconciler.graph.graph import build_graph
from reconciler.model import DesiredJob


def job(key: str, uses: str | None = None, project: str = "p1", location: str = "l1", **extra) -> DesiredJob:
    spec: dict = {"supervisedTuningSpec": {"trainingDatasetUri": f"gs://b/{key}.jsonl"}, **extra}
    if uses:
        spec["preTunedModel"] = {"tunedModelName": "${jobs." + uses + ".tunedModel.model}"}
    else:
        spec["baseModel"] = "m"
    return DesiredJob(key, project, location, spec)


def test_chain_is_ordered_upstream_first_and_independent_jobs_by_address():
    g = build_graph([job("c", "b"), job("z"), job("b", "a"), job("a")])
    assert g.problems == []
    assert g.order == ["p1/l1/a", "p1/l1/b", "p1/l1/c", "p1/l1/z"]
    assert g.upstreams == {"p1/l1/b": ("p1/l1/a",), "p1/l1/c": ("p1/l1/b",)}
    assert g.downstreams == {"p1/l1/a": ("p1/l1/b",), "p1/l1/b": ("p1/l1/c",)}
    assert [(e.upstream, e.downstream, e.path, e.output) for e in g.edges] == [
        ("p1/l1/b", "p1/l1/c", "preTunedModel.tunedModelName", "tunedModel.model"),
        ("p1/l1/a", "p1/l1/b", "preTunedModel.tunedModelName", "tunedModel.model")]
    assert g.transitive_upstreams(["p1/l1/c"]) == {"p1/l1/a", "p1/l1/b"}
    assert g.transitive_downstreams(["p1/l1/a"]) == {"p1/l1/b", "p1/l1/c"}
    (f,) = g.fields["p1/l1/c"]
    assert f.canonical.text() == "${jobs.p1/l1/b.tunedModel.model}" and f.upstreams == ("p1/l1/b",)


def test_no_references_keeps_address_order_and_extra_nodes():
    g = build_graph([job("b"), job("a")], also=["p0/l/x"])
    assert g.order == ["p0/l/x", "p1/l1/a", "p1/l1/b"] and not g.has_edges and g.fields == {}


def test_diamond_join_comes_after_both_sides():
    g = build_graph([job("join", "left", description="vs ${jobs.right.tunedModel.endpoint}"),
                     job("right", "base"), job("left", "base"), job("base")])
    assert g.problems == []
    assert g.order.index("p1/l1/join") > max(g.order.index("p1/l1/left"), g.order.index("p1/l1/right"))
    assert g.order[0] == "p1/l1/base"
    assert g.upstreams["p1/l1/join"] == ("p1/l1/left", "p1/l1/right")


def test_cycle_names_every_job_on_it_at_each_of_them():
    g = build_graph([job("a", "c"), job("b", "a"), job("c", "b"), job("free")])
    assert sorted(p.address for p in g.problems) == ["p1/l1/a", "p1/l1/b", "p1/l1/c"]
    messages = {p.message for p in g.problems}
    assert messages == {"reference cycle: a -> c -> b -> a (each uses the next one's output, so none of "
                        "them can ever start)"}
    assert all(p.path == ("spec", "preTunedModel", "tunedModelName") for p in g.problems)
    assert g.order[0] == "p1/l1/free" and set(g.order[1:]) == {"p1/l1/a", "p1/l1/b", "p1/l1/c"}


def test_a_component_bigger_than_its_shortest_cycle_names_the_others_too():
    # a <-> b, and c on a longer loop through them: a -> b -> c -> a
    g = build_graph([job("a", "b"), job("b", "a", description="${jobs.c.name}"), job("c", "a")])
    (message,) = {p.message for p in g.problems}
    assert message.startswith("reference cycle: a -> b -> a") and message.endswith("also on it: c")
    assert sorted(p.address for p in g.problems) == ["p1/l1/a", "p1/l1/b", "p1/l1/c"]


def test_self_reference_unknown_and_ambiguous_keys():
    g = build_graph([job("me", "me"), job("lost", "nobody"), job("x", project="p2"), job("x", project="p3"),
                     job("who", "x")])
    by = {p.address: p for p in g.problems}
    assert "a job cannot use its own outputs" in by["p1/l1/me"].message
    assert "no manifest declares a job `nobody`" in by["p1/l1/lost"].message and by["p1/l1/lost"].unknown == "nobody"
    assert ("no job `x` in p1/l1, and several elsewhere (p2/l1/x, p3/l1/x): write the address in full"
            in by["p1/l1/who"].message)
    assert g.edges == []


def test_bare_key_prefers_its_own_project_and_location_else_the_one_elsewhere():
    g = build_graph([job("base"), job("base", location="l2"), job("here", "base"), job("also", "base", location="l2"),
                     job("solo", location="l4"), job("there", "solo", location="l3")])
    assert g.problems == []
    assert g.upstreams["p1/l1/here"] == ("p1/l1/base",) and g.upstreams["p1/l2/also"] == ("p1/l2/base",)
    assert g.upstreams["p1/l3/there"] == ("p1/l4/solo",)
    ambiguous = build_graph([job("base"), job("base", location="l2"), job("far", "base", location="l3")])
    (p,) = ambiguous.problems
    assert "several elsewhere" in p.message and p.unknown == ""  # known, only ambiguous


def test_full_address_names_exactly_that_job():
    g = build_graph([job("base", location="l2"), job("use", "p1/l2/base"), job("bad", "p1/l9/base")])
    assert g.upstreams["p1/l1/use"] == ("p1/l2/base",)
    (p,) = g.problems
    assert p.address == "p1/l1/bad" and "no manifest declares the job `p1/l9/base`" in p.message


def test_malformed_references_are_problems_at_their_path():
    g = build_graph([job("a", description="${jobs.a.nope}")])
    (p,) = g.problems
    assert p.path == ("spec", "description") and "not an output" in p.message
