"""Benchmark the Cloud Storage state backend beside the local state file: `plan` of N managed
jobs and `apply` of N creates at parallelism 16, as child processes against the emulator
(its own process, 20 ms added latency per request). The gs:// state lives on
fake-gcs-server (127.0.0.1, memory backend) behind a loopback proxy in this process that adds
the same 20 ms to every Cloud Storage request and counts them.

Goals: `plan` with a gs:// state takes at most 20% longer than with a local file; during
`apply` the state object itself is written at most once per second (Cloud Storage's limit
per object), with the group-committed journal carrying the per-action writes.
Beside them, the naive ways: for plan, copy the state down first (what examples/ci did with
`gcloud storage cp`, here a child process downloading it) and plan on the copy; for apply,
one whole-state write per recorded change, whose count is measured here (the records this
apply made); at one write per second per object that is at least as many seconds.

    python bench/gcs_state_bench.py            # 1,000 jobs, 7 plan runs each (median)
    python bench/gcs_state_bench.py --quick    # 100 jobs, 1 plan run each (smoke test)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import harness as h  # noqa: E402
from gcs_server import FakeGcs, GcsProxy, ProxyFaults  # noqa: E402

GOAL_PLAN_OVERHEAD = 0.20  # gs:// plan at most 20% slower than local
GOAL_STATE_WRITES_PER_SECOND = 1.0
BUCKET = "bench-state"
STATE_OBJECT = "team/default.json"
STATE_OBJECT_LARGE = "team/large.json"

DOWNLOAD = """
import os, sys
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
client = storage.Client(project=None, credentials=AnonymousCredentials(),
                        client_options={"api_endpoint": os.environ["STORAGE_EMULATOR_HOST"]})
data = client.bucket(sys.argv[1]).blob(sys.argv[2]).download_as_bytes()
open(sys.argv[3], "wb").write(data)
"""


def env_for(emu: h.Emulator, storage_url: str, work: Path) -> dict[str, str]:
    env = {**h.client_env(emu.url), "STORAGE_EMULATOR_HOST": storage_url, "XDG_CACHE_HOME": str(work / "cache"),
           # Bytecode cached, as in an installed copy (a shell with PYTHONDONTWRITEBYTECODE would
           # recompile every module on every run, more of them for gs://); kept out of the tree.
           "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def plan_rounds(manifests: Path, local: Path, url: str, copy: Path, env: dict[str, str], runs: int,
                proxy: GcsProxy, state_object: str = STATE_OBJECT) -> dict[str, Any]:
    """`runs` rounds of: plan on the local file, plan on gs://, and the naive copy-then-plan,
    interleaved so that a change in the machine's load hits all three alike."""
    def plan(state: str) -> h.ChildRun:
        run = h.run_measured([sys.executable, "-m", "reconciler", "plan", str(manifests), "--state", state,
                              "--no-color"], env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        return run

    for state in (str(local), url, str(copy)):
        if state == str(copy):
            h.run_measured([sys.executable, "-c", DOWNLOAD, BUCKET, state_object, str(copy)], env=env)
        plan(state)  # warm: the manifest cache and the page cache, alike for all three
    local_runs, gcs_runs, naive, gcs_requests = [], [], [], []
    for _ in range(runs):
        local_runs.append(plan(str(local)))
        mark = proxy.count()
        gcs_runs.append(plan(url))
        gcs_requests.append(kinds(proxy, mark, state_object)["counts"])
        fetch = h.run_measured([sys.executable, "-c", DOWNLOAD, BUCKET, state_object, str(copy)], env=env)
        assert fetch.returncode == 0, fetch.stderr
        naive.append(fetch.seconds + plan(str(copy)).seconds)
    return {"local": local_runs, "gcs": gcs_runs, "naive": naive, "gcs_requests": gcs_requests}


def plan_case(emu: h.Emulator, work: Path, jobs: int, runs: int, env: dict[str, str], proxy: GcsProxy,
              state_object: str = STATE_OBJECT) -> dict[str, Any]:
    """`jobs` managed jobs seeded, their manifests, the same state locally and in the bucket;
    then the interleaved plan rounds."""
    from reconciler.apischema.normalize import spec_hash

    with emu.admin() as admin:
        names = h.seed_managed(admin, jobs, h.SPEC)
    manifests = work / "manifests"
    h.write_manifests(manifests, {h.seeded_key(i): h.SPEC for i in range(jobs)})
    local = work / "state" / "default.json"
    h.write_state(local, {h.seeded_key(i): {"job_name": n, "spec_hash": spec_hash(h.SPEC),
                                            "job_state": "JOB_STATE_SUCCEEDED"} for i, n in enumerate(names)})
    url = f"gs://{BUCKET}/{state_object}"
    migrate = h.run_measured([sys.executable, "-m", "reconciler", "state", "migrate", "--state", str(local),
                              "--to", url], env=env)
    assert migrate.returncode == 0, migrate.stderr
    rounds = plan_rounds(manifests, local, url, work / "copy.json", env, runs, proxy, state_object)
    rounds["jobs"] = jobs
    return rounds


CLIENT_COST = """
import time
start = time.perf_counter()
from reconciler.state.gcs_client import make_client
make_client()
print(time.perf_counter() - start)
"""


def client_cost(env: dict[str, str]) -> float:
    """Seconds a fresh process spends importing google-cloud-storage and making its client."""
    run = h.run_measured([sys.executable, "-c", CLIENT_COST], env=env)
    return float(run.stdout.strip())


def kinds(proxy: GcsProxy, start: int, state_name: str) -> dict[str, Any]:
    """The Cloud Storage requests since `start`, by what they were for."""
    counts: dict[str, int] = {}
    state_write_times = []
    for r in proxy.requests[start:]:
        if r.method == "POST" and "/upload/" in r.path:
            kind = ("journal write" if f'"name": "{state_name}.journal/'.encode() in r.body
                    else "lock create" if r.names(f"{state_name}.lock")
                    else "state write" if r.names(state_name) else "other write")
            if kind == "state write":
                state_write_times.append(r.at)
        elif r.method == "DELETE":
            kind = "lock delete" if r.names(f"{state_name}.lock") else "journal delete"
        elif r.method == "GET" and "alt=media" in r.path:
            kind = "download"
        elif r.method == "GET" and "/o?" in r.path:
            kind = "list"
        else:
            kind = f"{r.method.lower()} metadata"
        counts[kind] = counts.get(kind, 0) + 1
    busiest = max((sum(1 for u in state_write_times if t <= u < t + 1.0) for t in state_write_times), default=0)
    return {"counts": counts, "total": sum(counts.values()), "state_writes_in_busiest_second": busiest}


def run_apply(emu: h.Emulator, work: Path, jobs: int, state: str, env: dict[str, str], tag: str) -> h.ChildRun:
    manifests = work / f"apply-{tag}"
    h.write_manifests(manifests, {f"{tag}-{i}": h.SPEC for i in range(jobs)})
    return h.run_measured([sys.executable, "-m", "reconciler", "apply", str(manifests), "--state", state,
                           "--auto-approve", "--parallelism", "16", "--no-color"], env=env)


def records_of(run: h.ChildRun) -> int:
    """Changes an apply recorded: each create records its request id, then its job."""
    created = next((line for line in run.stdout.splitlines() if line.startswith("Apply complete!")), "")
    return 2 * int(created.split("Jobs: ")[1].split(" created")[0]) if created else 0


def audit(emu: h.Emulator, prefix: str, jobs: int, entries: dict[str, Any]) -> dict[str, Any]:
    from reconciler.model import KEY_LABEL

    with h.tuning_client(emu.url) as client:
        found = [j for j in client.list_jobs(h.PARENT) if (j.get("labels") or {}).get(KEY_LABEL, "").startswith(prefix)]
    keys = [(j.get("labels") or {})[KEY_LABEL] for j in found]
    tracked = {e["job_name"] for e in entries.values() if e["key"].startswith(prefix)}
    return {"jobs": len(found), "duplicates": len(keys) - len(set(keys)),
            "state_entries": sum(1 for e in entries.values() if e["key"].startswith(prefix)),
            "state_matches_jobs": tracked == {j["name"] for j in found} and len(found) == jobs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=7, help="plan runs per kind (the median is reported)")
    parser.add_argument("--no-large", dest="large", action="store_false",
                        help="skip the plan of 10 N jobs (how the fixed cost of gs:// compares at scale)")
    h.add_output_args(parser, "small run for smoke tests (100 jobs, 1 plan run each)")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.runs, args.large = 100, 1, False
    readme = h.readme_for(args)

    server = FakeGcs()
    proxy = GcsProxy(server.url, ProxyFaults(latency_ms=args.latency_ms))
    try:
        server.create_bucket(BUCKET, versioning=True)
        with tempfile.TemporaryDirectory(prefix="gcs-bench-") as tmp:
            work = Path(tmp)
            with h.emulator(args.latency_ms) as emu:
                env = env_for(emu, proxy.url, work)
                rounds = plan_case(emu, work / "n", args.jobs, args.runs, env, proxy)
                local_plans, gcs_plans, naive = rounds["local"], rounds["gcs"], rounds["naive"]
                client_costs = [client_cost(env) for _ in range(max(3, args.runs))]
                apply_local = run_apply(emu, work, args.jobs, str(work / "apply-state" / "default.json"), env, "local")
                mark = proxy.count()
                apply_url = f"gs://{BUCKET}/apply/default.json"
                apply_gcs = run_apply(emu, work, args.jobs, apply_url, env, "gcs")
                apply_requests = kinds(proxy, mark, "apply/default.json")
                entries = json.loads(server.client().bucket(BUCKET).blob("apply/default.json").download_as_bytes())[
                    "entries"]
                apply_audit = audit(emu, "gcs-", args.jobs, entries)
            large = None
            if args.large:
                with h.emulator(args.latency_ms) as emu:  # its own: seeded keys start at job-0 again
                    large = plan_case(emu, work / "10n", 10 * args.jobs, max(1, args.runs // 2),
                                      env_for(emu, proxy.url, work), proxy, STATE_OBJECT_LARGE)
    finally:
        proxy.stop()
        server.stop()

    local_s = statistics.median(r.seconds for r in local_plans)
    gcs_s = statistics.median(r.seconds for r in gcs_plans)
    naive_s = statistics.median(naive)
    overhead = gcs_s / local_s - 1
    plan_summaries = {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]
                      for r in local_plans + gcs_plans}
    client_s = statistics.median(client_costs)
    large_figures = None
    if large is not None:
        ll = statistics.median(r.seconds for r in large["local"])
        lg = statistics.median(r.seconds for r in large["gcs"])
        large_figures = {"jobs": large["jobs"], "runs": len(large["local"]), "plan_local_seconds": round(ll, 3),
                         "plan_gcs_seconds": round(lg, 3), "plan_gcs_overhead": round(lg / ll - 1, 3),
                         "plan_naive_copy_then_plan_seconds": round(statistics.median(large["naive"]), 3)}
    counts = apply_requests["counts"]
    state_writes = counts.get("state write", 0)
    journal_writes = counts.get("journal write", 0)
    records = records_of(apply_gcs)
    state_rate = state_writes / apply_gcs.seconds
    goals = {"plan_overhead": overhead <= GOAL_PLAN_OVERHEAD,
             "state_writes_per_second": apply_requests["state_writes_in_busiest_second"] <= 2
             and state_rate <= GOAL_STATE_WRITES_PER_SECOND}
    correct = (all(r.returncode == 0 for r in local_plans + gcs_plans) and len(plan_summaries) == 1
               and apply_local.returncode == apply_gcs.returncode == 0 and apply_audit["duplicates"] == 0
               and apply_audit["state_matches_jobs"] and records == 2 * args.jobs)
    figures = {
        "jobs": args.jobs, "latency_ms": args.latency_ms, "runs": args.runs,
        "plan_local_seconds": round(local_s, 3), "plan_gcs_seconds": round(gcs_s, 3),
        "plan_gcs_overhead": round(overhead, 3), "plan_naive_copy_then_plan_seconds": round(naive_s, 3),
        "plan_gcs_requests": rounds["gcs_requests"][0],
        "plan_local_cpu_seconds": round(statistics.median(r.cpu_seconds for r in local_plans), 3),
        "plan_gcs_cpu_seconds": round(statistics.median(r.cpu_seconds for r in gcs_plans), 3),
        "plan_summary": sorted(plan_summaries),
        "client_import_and_make_seconds": round(client_s, 3),
        "large": large_figures,
        "apply_local_seconds": round(apply_local.seconds, 2), "apply_gcs_seconds": round(apply_gcs.seconds, 2),
        "apply_local_cpu_seconds": round(apply_local.cpu_seconds, 2),
        "apply_gcs_cpu_seconds": round(apply_gcs.cpu_seconds, 2),
        "apply_gcs_requests": counts, "apply_records": records,
        "apply_journal_writes": journal_writes, "apply_state_writes": state_writes,
        "apply_writes_per_second": round((journal_writes + state_writes) / apply_gcs.seconds, 1),
        "apply_state_writes_per_second": round(state_rate, 2),
        "apply_state_writes_in_busiest_second": apply_requests["state_writes_in_busiest_second"],
        "naive_state_writes": records, "naive_seconds_at_one_write_per_second": records,
        "apply_audit": apply_audit, "goals_met": goals, "correct": correct,
    }
    text = "\n".join([
        f"{args.jobs:,} jobs, {args.latency_ms:g} ms added latency per API and per Cloud Storage request",
        f"  plan, local state file:        {local_s:6.2f} s (median of {args.runs}; CPU "
        f"{figures['plan_local_cpu_seconds']} s)",
        f"  plan, gs:// state:             {gcs_s:6.2f} s  +{overhead:.0%} (goal <= +{GOAL_PLAN_OVERHEAD:.0%}: "
        f"{h.verdict(goals['plan_overhead'])}; CPU {figures['plan_gcs_cpu_seconds']} s)  Cloud Storage requests per plan "
        f"{figures['plan_gcs_requests']}",
        f"  naive: copy down, then plan:   {naive_s:6.2f} s",
        f"  of the difference: importing google-cloud-storage and making its client {client_s:.2f} s (a fresh "
        f"process, median of {len(client_costs)})",
        *([f"  {large_figures['jobs']:,} jobs: plan local {large_figures['plan_local_seconds']:.2f} s, gs:// "
           f"{large_figures['plan_gcs_seconds']:.2f} s (+{large_figures['plan_gcs_overhead']:.0%}), naive "
           f"{large_figures['plan_naive_copy_then_plan_seconds']:.2f} s (median of {large_figures['runs']})"]
          if large_figures else []),
        f"  apply {args.jobs:,} creates, parallelism 16: local {apply_local.seconds:.2f} s "
        f"(CPU {apply_local.cpu_seconds:.2f} s), gs:// {apply_gcs.seconds:.2f} s (CPU {apply_gcs.cpu_seconds:.2f} s)",
        f"    {records} changes recorded in {journal_writes} journal writes and {state_writes} state-object writes: "
        f"{figures['apply_writes_per_second']} writes/s, state object {state_rate:.2f}/s, at most "
        f"{apply_requests['state_writes_in_busiest_second']} in any second (goal <= {GOAL_STATE_WRITES_PER_SECOND:g}/s: "
        f"{h.verdict(goals['state_writes_per_second'])})",
        f"    naive (one whole-state write per change): {records} writes, >= {records} s at 1 write/s per object",
        f"    afterwards: {apply_audit}",
    ])
    h.emit(figures, args.json, text)
    h.update_readme("gcs-state", "\n".join([
        f"{args.jobs:,} jobs; the emulator and fake-gcs-server (behind a proxy) both add {args.latency_ms:g} ms per "
        f"request ({h.machine_line()}).",
        "",
        h.table([
            ["`plan`, local state file", f"{local_s:.2f} s", "", ""],
            ["`plan`, gs:// state", f"{gcs_s:.2f} s", f"+{overhead:.0%}",
             f"<= +{GOAL_PLAN_OVERHEAD:.0%}: {h.verdict(goals['plan_overhead'])}"],
            ["naive: copy the state down (a child process), then plan", f"{naive_s:.2f} s", f"{naive_s / local_s - 1:+.0%}",
             ""],
            [f"`apply`, {args.jobs:,} creates at parallelism 16, local", f"{apply_local.seconds:.2f} s", "", ""],
            [f"`apply`, {args.jobs:,} creates at parallelism 16, gs://", f"{apply_gcs.seconds:.2f} s",
             f"{apply_gcs.seconds / apply_local.seconds - 1:+.0%}", ""],
        ], ["measure", "time", "vs local", "goal"]),
        "",
        f"- Cloud Storage requests per gs:// plan: {figures['plan_gcs_requests']} (median time of {args.runs} runs each). "
        f"Of the difference, {client_s:.2f} s is importing google-cloud-storage and making its client (measured in "
        "a fresh process); the rest is its requests (the lock, the download beside the journal listing, the "
        "unlock: three round trips) and the interpreter's longer exit.",
        *([f"- At {large_figures['jobs']:,} jobs: `plan` local {large_figures['plan_local_seconds']:.2f} s, gs:// "
           f"{large_figures['plan_gcs_seconds']:.2f} s (**+{large_figures['plan_gcs_overhead']:.0%}**, goal <= "
           f"+{GOAL_PLAN_OVERHEAD:.0%}: {h.verdict(large_figures['plan_gcs_overhead'] <= GOAL_PLAN_OVERHEAD)}), naive "
           f"{large_figures['plan_naive_copy_then_plan_seconds']:.2f} s (median of {large_figures['runs']})."]
          if large_figures else []),
        f"- The gs:// apply recorded {records} changes in **{journal_writes} journal writes** and "
        f"**{state_writes} writes of the state object**: {figures['apply_writes_per_second']} writes/s in all, the state "
        f"object {state_rate:.2f}/s and at most {apply_requests['state_writes_in_busiest_second']} in any one second "
        f"(goal <= {GOAL_STATE_WRITES_PER_SECOND:g}/s: {h.verdict(goals['state_writes_per_second'])}). "
        f"All requests: {counts}.",
        f"- Naive: one whole-state write per change would be {records} writes of one object, at least {records} s "
        "at Cloud Storage's one write per second per object (the count is measured, the limit is Google's).",
        f"- Afterwards {apply_audit['jobs']} jobs, {apply_audit['duplicates']} duplicates, state matches the jobs: "
        f"{apply_audit['state_matches_jobs']}.",
    ]), readme)
    return 0 if correct else 1


if __name__ == "__main__":
    raise SystemExit(main())
