"""Benchmark planning a job graph: 10,000 jobs as 2,500 continuous-tuning chains of four
(`preTunedModel.tunedModelName: ${jobs.PREV.tunedModel.model}`) against the same 10,000 jobs
written independently (each later stage naming its upstream's model literally), in the same
run against the same emulator (its own process, 20 ms added latency).

Every job exists (SUCCEEDED, seeded with the tool's identity labels, each later stage created
from its upstream's model) and state tracks it, so both plans are "No changes." and both read
the same jobs: the difference is exactly what references cost (building and checking the
graph, resolving 7,500 references against their upstream's live result, planning in graph
order). Goal: the chains cost at most 1.2x the independent jobs. `plan` runs end to end as a
child process, the two kinds taking turns, best of 3 each.

    python bench/graph_bench.py              # 2,500 chains of 4 vs 10,000 independent jobs
    python bench/graph_bench.py --quick      # 50 chains of 4 vs 200 jobs (smoke test)
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
import refresh_plan_bench as rp  # noqa: E402

GOAL_RATIO = 1.2
STAGES = 4
CHAIN_PROJECT = "bench-chains"
CHAIN_PARENT = f"projects/{CHAIN_PROJECT}/locations/{h.LOCATION}"


def stage_spec(source: str | None) -> dict[str, Any]:
    """Stage 1 tunes the base model; later stages continue from `source` (a model or a reference)."""
    spec = copy.deepcopy(h.SPEC)
    if source is not None:
        del spec["baseModel"], spec["tunedModelDisplayName"]  # a new version of the upstream's model
        spec = {"preTunedModel": {"tunedModelName": source}, **spec}
    return spec


def chain_key(chain: int, stage: int) -> str:
    return f"chain-{chain}-{stage}"


def _write(directory: Path, project: str, specs: dict[str, dict[str, Any]], per_file: int = 100) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    keys = list(specs)
    for i in range(0, len(keys), per_file):
        docs = []
        for key in keys[i:i + per_file]:
            doc = {"apiVersion": "tuning.reconciler/v1", "kind": "TuningJob",
                   "metadata": {"name": key, "project": project, "location": h.LOCATION}, "spec": specs[key],
                   "lifecycle": {"onSpecChange": "replace", "onFailure": "report"}}
            docs.append(h._block(doc, 0))
        (directory / f"jobs-{i // per_file:04d}.yaml").write_text("---\n".join(docs), encoding="utf-8")


def _state(path: Path, project: str, jobs: dict[str, tuple[str, str, dict[str, str]]]) -> None:
    """key -> (job name, spec hash, inputs)."""
    from reconciler.state.model import State, StateEntry, state_to_json

    state = State(serial=1)
    for key, (name, digest, inputs) in jobs.items():
        entry = StateEntry(key=key, project=project, location=h.LOCATION, job_name=name, spec_hash=digest,
                           job_state="JOB_STATE_SUCCEEDED", inputs=inputs)
        state.entries[entry.address] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(state_to_json(state), encoding="utf-8")


def prepare(admin, url: str, workdir: Path, chains: int) -> dict[str, tuple[Path, Path]]:
    """Seed the chains stage by stage, each job created from its upstream's model; write the
    manifests twice (with references, and with the models they resolve to) and state."""
    from reconciler.apischema.normalize import spec_hash
    from reconciler.model import KEY_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SPEC_LABEL

    tracked: dict[str, tuple[str, str, dict[str, str]]] = {}
    desired: dict[str, dict[str, Any]] = {}
    literal: dict[str, dict[str, Any]] = {}
    models: dict[str, str] = {}
    for stage in range(1, STAGES + 1):
        seeded = []
        for c in range(chains):
            upstream = models.get(chain_key(c, stage - 1))
            spec = stage_spec(upstream)
            labels = {**spec.get("labels", {}), SPEC_LABEL: spec_hash(spec)}
            seeded.append({**spec, "labels": labels})
            literal[chain_key(c, stage)] = spec
            desired[chain_key(c, stage)] = stage_spec(
                "${jobs." + chain_key(c, stage - 1) + ".tunedModel.model}" if stage > 1 else None)
        names = admin.seed(CHAIN_PARENT, specs=seeded, state="JOB_STATE_SUCCEEDED",
                           labels={MANAGED_BY_LABEL: MANAGED_BY_VALUE, KEY_LABEL: f"chain-{{n}}-{stage}"})
        with h.tuning_client(url) as client:
            listed = {j["name"]: j for j in client.list_jobs(CHAIN_PARENT, page_size=1000,
                                                             fields="nextPageToken,tuningJobs(name,tunedModel(model))")}
        for c, name in enumerate(names):
            key = chain_key(c, stage)
            models[key] = listed[name]["tunedModel"]["model"]
            inputs = {"preTunedModel.tunedModelName": models[chain_key(c, stage - 1)]} if stage > 1 else {}
            tracked[key] = (name, seeded[c]["labels"][SPEC_LABEL], inputs)
    order = [chain_key(c, s) for c in range(chains) for s in range(1, STAGES + 1)]
    _write(workdir / "chains", CHAIN_PROJECT, {k: desired[k] for k in order})
    _write(workdir / "independent", CHAIN_PROJECT, {k: literal[k] for k in order})
    states = {kind: workdir / "state" / f"{kind}.json" for kind in ("independent", "chains")}
    _state(states["chains"], CHAIN_PROJECT, tracked)
    _state(states["independent"], CHAIN_PROJECT, {k: (n, d, {}) for k, (n, d, _) in tracked.items()})
    return {kind: (workdir / kind, states[kind]) for kind in ("independent", "chains")}


def summary_of(run) -> str:
    return next((line.strip() for line in run.stdout.splitlines()
                 if line.startswith(("Plan:", "No changes."))), run.stderr.strip()[-300:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, default=2_500)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3, help="plan runs of each kind (best is kept)")
    h.add_output_args(parser, "small run for smoke tests (50 chains of 4)")
    args = parser.parse_args(argv)
    if args.quick:
        args.chains, args.repeats = 50, 1
    readme = h.readme_for(args)
    jobs = args.chains * STAGES

    runs: dict[str, list] = {"independent": [], "chains": []}
    requests: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="graph-bench-") as tmp, h.emulator(0.0) as emu, emu.admin() as admin:
        workdir = Path(tmp)
        inputs = prepare(admin, emu.url, workdir, args.chains)
        admin.faults(latency_ms=args.latency_ms)  # seeded without it; planned with it
        for i in range(args.repeats):
            for kind, (manifests, state) in inputs.items():  # taking turns: drift in the machine hits both
                before = admin.stats()
                run = rp.run_plan(emu.url, manifests, state, workdir / f"cache-{kind}-{i}")  # nothing cached
                requests[kind] = rp.requests_between(before, admin.stats())
                runs[kind].append(run)
    best = {k: min(v, key=lambda r: r.seconds) for k, v in runs.items()}
    ratio = round(best["chains"].seconds / best["independent"].seconds, 3)  # one value for JSON and text
    summaries = {k: summary_of(r) for k, r in best.items()}
    correct = all(r.returncode == 0 and summaries[k] == "No changes." for k, r in best.items())
    met = ratio <= GOAL_RATIO
    figures = {
        "jobs": jobs, "chains": args.chains, "stages": STAGES, "latency_ms": args.latency_ms, "repeats": args.repeats,
        "independent_plan_seconds": round(best["independent"].seconds, 3),
        "chains_plan_seconds": round(best["chains"].seconds, 3),
        "independent_peak_rss_mb": round(best["independent"].peak_rss_mb, 1),
        "chains_peak_rss_mb": round(best["chains"].peak_rss_mb, 1),
        "all_runs_seconds": {k: [round(r.seconds, 3) for r in v] for k, v in runs.items()},
        "requests": requests, "plan_summaries": summaries,
        "ratio": ratio, "goal_ratio": GOAL_RATIO, "goal_met": met, "correct": correct,
    }
    text = "\n".join([
        f"plan (CLI, end to end), {jobs:,} jobs, {args.latency_ms:g} ms latency per request, best of {args.repeats}",
        f"  {jobs:,} independent jobs:              {best['independent'].seconds:6.2f} s  "
        f"RSS {best['independent'].peak_rss_mb:6.1f} MB  {summaries['independent']}",
        f"  {args.chains:,} chains of {STAGES} ({jobs - args.chains:,} references): {best['chains'].seconds:6.2f} s  "
        f"RSS {best['chains'].peak_rss_mb:6.1f} MB  {summaries['chains']}",
        f"  chains / independent: {ratio:.2f}x (goal <= {GOAL_RATIO}x): {h.verdict(met)}",
    ])
    h.emit(figures, args.json, text)
    h.update_readme("graph", "\n".join([
        f"`plan` end to end (CLI child process), {jobs:,} jobs all SUCCEEDED and tracked, {args.latency_ms:g} ms "
        f"latency per request, the two kinds taking turns, best of {args.repeats} ({h.machine_line()}).",
        "",
        h.table([
            [f"{jobs:,} independent jobs (the same, each naming its upstream's model literally)",
             f"{best['independent'].seconds:.2f} s",
             f"{best['independent'].peak_rss_mb:.0f} MB", sum(requests['independent'].values()), ""],
            [f"{args.chains:,} chains of {STAGES} ({jobs - args.chains:,} `${{jobs...}}` references)",
             f"{best['chains'].seconds:.2f} s", f"{best['chains'].peak_rss_mb:.0f} MB",
             sum(requests['chains'].values()), f"<= {GOAL_RATIO}x the independent jobs: {ratio:.2f}x, {h.verdict(met)}"],
        ], ["plan of", "time", "peak RSS", "HTTP requests", "goal"]),
        "",
        f"Both plans: `{summaries['chains']}`",
    ]), readme)
    return 0 if correct else 1


if __name__ == "__main__":
    raise SystemExit(main())
