"""Benchmark refresh and `plan` with N managed jobs, side by side with the naive refresh.

Seeds N jobs with the tool's identity labels into an emulator (its own process, added
latency per request), writes manifests and a state file for them, then measures in one run:
- `reconciler plan` end to end as a child process: wall time, peak RSS, and the HTTP
  requests it made (from the emulator's counters), first with nothing cached, then again with
  the manifests unchanged (from the manifest cache);
- the refresh alone, in-process (one label-filtered paginated list);
- the naive refresh, one GET per job as Terraform refreshes resources, at parallelism 10.
1% of the keys have a changed spec (the plan diffs them field by field) and 0.5% more keys
are new, so the plan is not all no-ops.

    python bench/refresh_plan_bench.py             # 10,000 jobs, 20 ms latency
    python bench/refresh_plan_bench.py --quick     # 300 jobs (smoke test)
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

GOAL_PLAN_SECONDS = 2.0  # first run, nothing cached
GOAL_CACHED_SECONDS = 1.0  # manifests unchanged since the last run
GOAL_CACHED_SPEEDUP = 25.0  # ... against the naive GET refresh alone
GOAL_RSS_MB = 300.0
GOAL_SPEEDUP = 20.0
REQUEST_SLACK = 5
NAIVE_PARALLELISM = 10


def changed_spec() -> dict[str, Any]:
    spec = copy.deepcopy(h.SPEC)
    spec["supervisedTuningSpec"]["hyperParameters"]["epochCount"] = "4"
    return spec


def prepare(admin, workdir: Path, jobs: int) -> tuple[Path, Path, dict[str, int]]:
    """Seed the emulator; write manifests and state. Returns (manifests, state, expected counts)."""
    names = h.seed_managed(admin, jobs, h.SPEC)
    changed = set(range(0, jobs, 100))  # 1%
    new = max(1, jobs // 200)  # 0.5%
    specs = {h.seeded_key(i): (changed_spec() if i in changed else h.SPEC) for i in range(jobs)}
    specs.update({f"new-{i}": h.SPEC for i in range(new)})
    manifests = workdir / "manifests"
    h.write_manifests(manifests, specs)
    from reconciler.apischema.normalize import spec_hash

    base_hash = spec_hash(h.SPEC)
    state = workdir / "state" / "bench.json"
    h.write_state(state, {h.seeded_key(i): {"job_name": name, "spec_hash": base_hash,
                                            "job_state": "JOB_STATE_SUCCEEDED"}
                          for i, name in enumerate(names)})
    return manifests, state, {"replace": len(changed), "create": new, "no-op": jobs - len(changed)}


def run_plan(url: str, manifests: Path, state: Path, cache: Path) -> h.ChildRun:
    cmd = [sys.executable, "-m", "reconciler", "plan", str(manifests), "--state", str(state),
           "--endpoint", url, "--no-color"]
    return h.run_measured(cmd, env={**h.client_env(url), "XDG_CACHE_HOME": str(cache)})


def refresh_in_process(url: str, manifests: Path, state_path: Path) -> tuple[float, int]:
    from reconciler.manifests.loader import load_desired
    from reconciler.plan.refresh import parents_of, plan_fields, refresh
    from reconciler.state.store import StateStore

    desired = load_desired([str(manifests)])
    state = StateStore(state_path).load()
    with h.tuning_client(url) as client:
        start = time.perf_counter()
        view = refresh(client, parents_of(desired, state), state, fields=plan_fields())  # as `plan` does
        seconds = time.perf_counter() - start
    return seconds, len(view.all_jobs())


def naive_refresh(url: str, state_path: Path, parallelism: int) -> tuple[float, int]:
    """One GET per job in state, `parallelism` at a time (Terraform's refresh)."""
    from reconciler.state.store import StateStore

    state = StateStore(state_path).load()
    names = [e.job_name for e in state.entries.values() if e.job_name]
    with h.tuning_client(url, connections=parallelism) as client:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallelism) as pool:
            found = sum(1 for job in pool.map(client.get_job, names) if job.get("name"))
        seconds = time.perf_counter() - start
    return seconds, found


def requests_between(before: dict, after: dict) -> dict[str, int]:
    b, a = before["requests"], after["requests"]
    # The admin calls (seed, stats) are the benchmark's own, not the tool's.
    return {k: a[k] - b.get(k, 0) for k in a if a[k] - b.get(k, 0) and not k.startswith("admin")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--naive-parallelism", type=int, default=NAIVE_PARALLELISM)
    h.add_output_args(parser, "small run for smoke tests (300 jobs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs = 300
    readme = h.readme_for(args)

    from reconciler.emulator.config import MAX_PAGE_SIZE

    with tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp, h.emulator(args.latency_ms) as emu:
        workdir = Path(tmp)
        with emu.admin() as admin:
            manifests, state, expected = prepare(admin, workdir, args.jobs)
            s0 = admin.stats()
            plan_run = run_plan(emu.url, manifests, state, workdir / "cache")  # nothing cached
            s1 = admin.stats()
            cached_run = run_plan(emu.url, manifests, state, workdir / "cache")
            s1b = admin.stats()
            refresh_s, listed = refresh_in_process(emu.url, manifests, state)
            s2 = admin.stats()
            naive_s, naive_found = naive_refresh(emu.url, state, args.naive_parallelism)
            s3 = admin.stats()

    plan_requests = requests_between(s0, s1)
    cached_requests = requests_between(s1, s1b)
    refresh_requests = requests_between(s1b, s2)
    naive_requests = requests_between(s2, s3)
    total_requests = sum(plan_requests.values())
    request_goal = math.ceil(args.jobs / MAX_PAGE_SIZE) + REQUEST_SLACK
    summary = next((line.strip() for line in plan_run.stdout.splitlines() if line.startswith("Plan:")), "")
    cached_summary = next((line.strip() for line in cached_run.stdout.splitlines() if line.startswith("Plan:")), "")
    want = (f"Plan: {expected['create']} to create, {expected['replace']} to replace, "
            "0 to cancel, 0 to rebase.")
    figures = {
        "jobs": args.jobs,
        "latency_ms": args.latency_ms,
        "page_size": MAX_PAGE_SIZE,
        "plan_exit": plan_run.returncode,
        "plan_summary": summary,
        "plan_summary_expected": want,
        "plan_seconds": round(plan_run.seconds, 3),
        "plan_peak_rss_mb": round(plan_run.peak_rss_mb, 1),
        "plan_requests": plan_requests,
        "plan_requests_total": total_requests,
        "request_goal": request_goal,
        "refresh_seconds": round(refresh_s, 3),
        "refresh_jobs_listed": listed,
        "refresh_requests": refresh_requests,
        "naive_parallelism": args.naive_parallelism,
        "naive_refresh_seconds": round(naive_s, 3),
        "naive_jobs_found": naive_found,
        "naive_requests": naive_requests,
        "speedup_refresh_vs_naive": round(naive_s / refresh_s, 1),
        "speedup_plan_vs_naive_refresh": round(naive_s / plan_run.seconds, 1),
        "cached_plan_seconds": round(cached_run.seconds, 3),
        "cached_plan_peak_rss_mb": round(cached_run.peak_rss_mb, 1),
        "cached_plan_requests": cached_requests,
        "speedup_cached_plan_vs_naive_refresh": round(naive_s / cached_run.seconds, 1),
        "goal_cached_seconds": GOAL_CACHED_SECONDS,
        "goal_cached_speedup": GOAL_CACHED_SPEEDUP,
        "goal_plan_seconds": GOAL_PLAN_SECONDS,
        "goal_rss_mb": GOAL_RSS_MB,
        "goal_speedup": GOAL_SPEEDUP,
    }
    goals = {
        "requests": total_requests <= request_goal,
        "plan_time": plan_run.seconds <= GOAL_PLAN_SECONDS,
        "cached_plan_time": cached_run.seconds <= GOAL_CACHED_SECONDS,
        "cached_speedup": naive_s / cached_run.seconds >= GOAL_CACHED_SPEEDUP,
        "rss": plan_run.peak_rss_mb < GOAL_RSS_MB,
        "speedup": naive_s / refresh_s >= GOAL_SPEEDUP,
    }
    figures["goals_met"] = goals
    correct = (plan_run.returncode == cached_run.returncode == 0 and summary == cached_summary == want
               and listed == args.jobs and naive_found == args.jobs)
    figures["correct"] = correct

    text = "\n".join([
        f"{args.jobs:,} managed jobs, {args.latency_ms:g} ms latency per request, page size {MAX_PAGE_SIZE}",
        f"  plan (CLI, end to end, nothing cached): {plan_run.seconds:7.2f} s  peak RSS {plan_run.peak_rss_mb:6.1f} MB  "
        f"requests {total_requests} {plan_requests}  exit {plan_run.returncode}",
        f"    {summary or plan_run.stderr.strip()[-500:]}",
        f"  plan again, manifests unchanged:       {cached_run.seconds:7.2f} s  peak RSS "
        f"{cached_run.peak_rss_mb:6.1f} MB  requests {cached_requests}  exit {cached_run.returncode}",
        f"  refresh (list, in-process): {refresh_s:5.2f} s  {listed} jobs  requests {refresh_requests}",
        f"  naive refresh (GET per job, parallelism {args.naive_parallelism}): {naive_s:7.2f} s  "
        f"requests {naive_requests}",
        f"  speed-up vs the naive refresh: refresh {figures['speedup_refresh_vs_naive']}x, first plan "
        f"{figures['speedup_plan_vs_naive_refresh']}x, unchanged plan {figures['speedup_cached_plan_vs_naive_refresh']}x",
        f"  goals: first plan <= {GOAL_PLAN_SECONDS:g} s: {h.verdict(goals['plan_time'])}; unchanged plan <= "
        f"{GOAL_CACHED_SECONDS:g} s: {h.verdict(goals['cached_plan_time'])} and >= {GOAL_CACHED_SPEEDUP:g}x: "
        f"{h.verdict(goals['cached_speedup'])}; requests <= {request_goal}: {h.verdict(goals['requests'])}; "
        f"RSS < {GOAL_RSS_MB:g} MB: {h.verdict(goals['rss'])}; refresh >= {GOAL_SPEEDUP:g}x: {h.verdict(goals['speedup'])}",
    ])
    h.emit(figures, args.json, text)
    h.update_readme("refresh-plan", "\n".join([
        f"{args.jobs:,} managed jobs seeded, {args.latency_ms:g} ms added latency per request "
        f"({h.machine_line()}).",
        "",
        h.table([
            ["`plan` end to end (CLI), nothing cached", f"{plan_run.seconds:.2f} s", f"{total_requests}",
             f"{plan_run.peak_rss_mb:.0f} MB", f"<= {GOAL_PLAN_SECONDS:g} s: {h.verdict(goals['plan_time'])}; "
             f"<= {request_goal} requests, < {GOAL_RSS_MB:g} MB: {h.verdict(goals['requests'] and goals['rss'])}"],
            ["`plan` again, manifests unchanged (manifest cache)", f"{cached_run.seconds:.2f} s",
             f"{sum(cached_requests.values())}", f"{cached_run.peak_rss_mb:.0f} MB",
             f"<= {GOAL_CACHED_SECONDS:g} s: {h.verdict(goals['cached_plan_time'])}"],
            ["refresh (one filtered, paginated list)", f"{refresh_s:.2f} s",
             f"{sum(refresh_requests.values())}", "", ""],
            [f"naive refresh (GET per job, parallelism {args.naive_parallelism})", f"{naive_s:.2f} s",
             f"{sum(naive_requests.values())}", "", ""],
            ["speed-up of refresh vs naive", f"{figures['speedup_refresh_vs_naive']}x", "", "",
             f">= {GOAL_SPEEDUP:g}x: {h.verdict(goals['speedup'])}"],
            ["speed-up of the first plan vs naive refresh", f"{figures['speedup_plan_vs_naive_refresh']}x",
             "", "", ""],
            ["speed-up of the unchanged plan vs naive refresh", f"{figures['speedup_cached_plan_vs_naive_refresh']}x",
             "", "", f">= {GOAL_CACHED_SPEEDUP:g}x: {h.verdict(goals['cached_speedup'])}"],
        ], ["measure", "time", "HTTP requests", "peak RSS", "goal"]),
        "",
        f"Plan output: `{summary}`",
    ]), readme)
    return 0 if correct else 1


if __name__ == "__main__":
    raise SystemExit(main())
