"""The job graph as text, Mermaid and dot, and the Mermaid graph in the Markdown plan."""

from __future__ import annotations

from reconciler.graph.graph import build_graph
from reconciler.model import DesiredJob
from reconciler.plan.live import LiveView
from reconciler.plan.planner import plan
from reconciler.render.graph import render_dot, render_mermaid, render_text
from reconciler.render.plan_markdown import render_plan_markdown
from reconciler.state.model import State


def job(key: str, *uses: str, location: str = "l1") -> DesiredJob:
    spec: dict = {"supervisedTuningSpec": {"trainingDatasetUri": f"gs://b/{key}.jsonl"}}
    if uses:
        spec["preTunedModel"] = {"tunedModelName": "${jobs." + uses[0] + ".tunedModel.model}"}
        if len(uses) > 1:
            spec["description"] = " ".join("${jobs." + u + ".name}" for u in uses[1:])
    else:
        spec["baseModel"] = "m"
    return DesiredJob(key, "p1", location, spec)


DIAMOND = [job("base"), job("left", "base"), job("right", "base"), job("join", "left", "right"), job("solo")]


def test_text_lists_stages():
    text = render_text(build_graph(DIAMOND))
    assert text.splitlines() == [
        "Job graph: 5 jobs, 4 references, 3 stage(s).",
        "  stage 1  base",
        "  stage 1  solo",
        "  stage 2  left   uses base.tunedModel.model -> preTunedModel.tunedModelName",
        "  stage 2  right  uses base.tunedModel.model -> preTunedModel.tunedModelName",
        "  stage 3  join   uses left.tunedModel.model -> preTunedModel.tunedModelName; right.name -> description",
    ]


def test_mermaid_and_dot_draw_every_job_and_each_dependency_once():
    g = build_graph(DIAMOND + [job("base", location="l2")])
    mermaid = render_mermaid(g).splitlines()
    assert mermaid[0] == "flowchart LR"
    assert '  n0["p1/l1/base"]' in mermaid and '["p1/l2/base"]' in render_mermaid(g)  # a key in two places
    assert sum("-->" in line for line in mermaid) == 4
    assert any(line.endswith('-->|"name"| n3') or '"name"' in line for line in mermaid)
    dot = render_dot(g)
    assert dot.startswith("digraph jobs {") and dot.rstrip().endswith("}")
    assert '"p1/l1/left" -> "p1/l1/join" [label="tunedModel.model"];' in dot
    assert '"p1/l1/right" -> "p1/l1/join" [label="name"];' in dot


def test_markdown_plan_draws_the_changes_graph_only_when_there_are_dependencies():
    with_deps = render_plan_markdown(plan(DIAMOND, State(), LiveView()))
    assert "#### Job graph" in with_deps and "```mermaid\nflowchart LR" in with_deps
    assert '["join: create (waits)"]' in with_deps and '["base: create"]' in with_deps
    assert "(known after left succeeds)" in with_deps
    without = render_plan_markdown(plan([job("solo"), job("other")], State(), LiveView()))
    assert "mermaid" not in without


def test_labels_in_drawings_are_inert():
    # Keys are restricted, but a description could hold anything: it never reaches a drawing.
    from reconciler.render.graph import mermaid_lines

    lines = mermaid_lines([("a", 'x"]; click n0 "javascript:alert(1)'), ("b", "<img src=x>")], [("a", "b", "a|b")])
    import re

    assert all(re.fullmatch(r'  n\d+\["[^"<>\[\];]*"\]', line) for line in lines[1:3]), lines
    assert re.fullmatch(r'  n0 -->\|"[^"|]*"\| n1', lines[3]), lines
