"""Benchmark `apply`: creates at parallelism 1 vs 16, growth with N, and correctness under faults.

Each run is `reconciler apply MANIFESTS --auto-approve` as a child process against an
emulator in its own process (added latency per request), from an empty state:
1. N creates at `--parallelism 1` and at `--parallelism 16`, side by side (goal >= 12x);
2. creates at parallelism 16 for N and 10 N: wall time and the bytes the apply wrote to
   files (the state directory; from the kernel's write counter) per job must stay flat,
   i.e. grow linearly, with no whole-state rewrite per action;
3. N creates at parallelism 16 with 20% of requests failed (half 429 with Retry-After, half
   503) and 2% of creates committed and then dropped: afterwards exactly N managed jobs
   exist, one per key (zero duplicates), the state records each of them, and a new plan
   shows no changes;
4. creates under the emulator's submission quota (60 per minute per project and location, as
   Vertex AI's): M creates spread over 4 regions against the same M in one region (goal: >= 3.5x
   faster, each region paced on its own).

    python bench/apply_bench.py                # 1,000 and 10,000 creates, 20 ms latency
    python bench/apply_bench.py --quick        # 60 and 240 creates (smoke test)
    python bench/apply_bench.py --faults-only  # only 3. (does not touch the README)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

GOAL_SPEEDUP = 12.0
GOAL_REGION_SPEEDUP = 3.5
REGIONS = ("europe-west4", "asia-northeast1", "us-east4", "us-west1")  # not harness.LOCATION: a fresh quota
GOAL_GROWTH = 1.5  # per-job time and bytes at 10 N within 1.5x of those at N


def run_apply(emu: h.Emulator, workdir: Path, jobs: int, parallelism: int, tag: str,
              timeout: float | None = None) -> dict[str, Any]:
    """Apply `jobs` new keys from an empty state; the figures and what exists afterwards."""
    manifests = workdir / f"manifests-{tag}"
    state_dir = workdir / f"state-{tag}"
    if not manifests.exists():
        h.write_manifests(manifests, {f"{tag}-{i}": h.SPEC for i in range(jobs)})
        state_dir.mkdir()
    state = state_dir / "default.json"
    with emu.admin() as admin:
        before = admin.stats()
        run = h.run_cli(["apply", str(manifests), "--state", str(state), "--auto-approve",
                         "--parallelism", str(parallelism), "--no-color"], emu.url, state_dir=state_dir,
                        timeout=timeout)
        after = admin.stats()
    requests = {k: v - before["requests"].get(k, 0) for k, v in after["requests"].items()
                if not k.startswith("admin") and v - before["requests"].get(k, 0)}
    faults = {k: v - before["faults"].get(k, 0) for k, v in after["faults"].items()}
    return {
        "jobs": jobs, "parallelism": parallelism, "exit": run.returncode, "timed_out": run.timed_out,
        "seconds": round(run.seconds, 3), "peak_rss_mb": round(run.peak_rss_mb, 1),
        "bytes_written": run.state_dir_bytes, "bytes_per_job": round(run.state_dir_bytes / jobs),
        "state_file_bytes": state.stat().st_size if state.exists() else 0,
        "requests": requests, "faults": faults,
        "summary": next((line.strip() for line in run.stdout.splitlines() if line.startswith("Apply ")), ""),
        "stderr_tail": run.stderr.strip()[-800:],
        "state_path": str(state), "manifests": str(manifests), "tag": tag,
    }


def region_case(emu: h.Emulator, work: Path, creates: int, quota_per_minute: float) -> dict[str, Any]:
    """`creates` new keys in one region, then `creates` over four others: each apply meets the quota
    with every bucket full."""
    from reconciler.model import KEY_LABEL, MANAGED_FILTER

    runs = {}
    with emu.admin() as admin:
        admin.faults(quota_per_minute=quota_per_minute)
    try:
        for name, regions in (("one", ("us-central1",)), ("four", REGIONS)):
            manifests, state_dir = work / f"manifests-regions-{name}", work / f"state-regions-{name}"
            manifests.mkdir()
            state_dir.mkdir()
            keys = [f"reg-{name}-{i}" for i in range(creates)]
            for i, key in enumerate(keys):
                doc = h.manifest_document(key, h.SPEC).replace(f"location: \"{h.LOCATION}\"",
                                                                f"location: \"{regions[i % len(regions)]}\"")
                (manifests / f"{key}.yaml").write_text(doc, encoding="utf-8")
            with emu.admin() as admin:
                before = admin.stats()
                run = h.run_cli(["apply", str(manifests), "--state", str(state_dir / "default.json"), "--auto-approve",
                                 "--parallelism", "16", "--no-color"], emu.url, state_dir=state_dir)
                after = admin.stats()
            with h.tuning_client(emu.url) as client:
                made = [j for region in regions
                        for j in client.list_jobs(f"projects/{h.PROJECT}/locations/{region}", filter=MANAGED_FILTER,
                                                  page_size=1000)
                        if (j.get("labels") or {}).get(KEY_LABEL, "").startswith(f"reg-{name}-")]
            runs[name] = {"seconds": round(run.seconds, 2), "exit": run.returncode, "regions": len(regions),
                          "jobs": len(made), "keys": len({j["labels"][KEY_LABEL] for j in made}),
                          "refused_by_quota": after["faults"]["quota"] - before["faults"]["quota"]}
    finally:
        with emu.admin() as admin:
            admin.faults(quota_per_minute=0)
    speedup = runs["one"]["seconds"] / runs["four"]["seconds"]
    ok = all(r["exit"] == 0 and r["jobs"] == r["keys"] == creates for r in runs.values())
    return {"creates": creates, "quota_per_minute": quota_per_minute, "one": runs["one"], "four": runs["four"],
            "speedup": round(speedup, 2), "ok": ok}


def audit(emu: h.Emulator, result: dict[str, Any]) -> dict[str, Any]:
    """What exists for this run's keys: jobs per key in the emulator, and the state's view."""
    from reconciler.model import KEY_LABEL, MANAGED_FILTER

    tag, jobs = result["tag"], result["jobs"]
    with h.tuning_client(emu.url) as client:
        listed = [j for j in client.list_jobs(h.PARENT, filter=MANAGED_FILTER, page_size=1000)
                  if (j.get("labels") or {}).get(KEY_LABEL, "").startswith(f"{tag}-")]
    per_key = Counter(j["labels"][KEY_LABEL] for j in listed)
    names_by_key = {j["labels"][KEY_LABEL]: j["name"] for j in listed}
    entries = json.loads(Path(result["state_path"]).read_text())["entries"] \
        if Path(result["state_path"]).exists() else {}
    recorded = {e["key"]: e.get("job_name") for e in entries.values()}
    return {
        "jobs_existing": len(listed),
        "keys_with_a_job": len(per_key),
        "duplicates": sum(n - 1 for n in per_key.values()),
        "state_entries": len(entries),
        "state_matches_jobs": all(recorded.get(k) == n for k, n in names_by_key.items())
        and len(recorded) == len(names_by_key) == jobs,
    }


def force_unlock(emu: h.Emulator, result: dict[str, Any]) -> None:
    """After a killed apply: remove its lock the documented way (`reconciler force-unlock`)."""
    lock = Path(result["state_path"] + ".lock")
    if lock.exists():
        lock_id = json.loads(lock.read_text())["id"]
        run = h.run_cli(["force-unlock", lock_id, "--force", "--state", result["state_path"]], emu.url)
        if run.returncode != 0:
            raise RuntimeError(f"force-unlock failed: {run.stderr.strip()}")


def replan(emu: h.Emulator, result: dict[str, Any]) -> str:
    run = h.run_cli(["plan", result["manifests"], "--state", result["state_path"], "--no-color"], emu.url)
    lines = [line.strip() for line in run.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else run.stderr.strip()[-300:]


def fault_case(emu: h.Emulator, work: Path, args: argparse.Namespace, jobs: int) -> dict[str, Any]:
    """Run 3.: the faulty apply, and if it did not finish in time, a resumed one without faults."""
    with emu.admin() as admin:
        admin.faults(error_rate=args.error_rate, drop_rate=args.drop_rate, retry_after=1, seed=7)
    faulty = run_apply(emu, work, jobs, 16, "faults", timeout=args.fault_timeout)
    with emu.admin() as admin:
        admin.faults(error_rate=0.0, drop_rate=0.0)
    resumed = None
    if faulty["timed_out"]:
        # Killed mid-apply: what it left must still lead to exactly one job per key.
        force_unlock(emu, faulty)
        resumed = run_apply(emu, work, jobs, 16, "faults")
    fault_audit = audit(emu, resumed or faulty)
    fault_replan = replan(emu, faulty)
    ok = (fault_audit["jobs_existing"] == jobs and fault_audit["duplicates"] == 0
          and fault_audit["state_matches_jobs"] and fault_replan == "No changes.")
    return {"run": faulty, "resumed": resumed, "audit": fault_audit, "replan": fault_replan, "ok": ok}


def fault_text(args: argparse.Namespace, jobs: int, case: dict[str, Any]) -> str:
    faulty, resumed, fa = case["run"], case["resumed"], case["audit"]
    return "\n".join([
        f"  with faults ({args.error_rate:.0%} errors, half 429 half 503; {args.drop_rate:.0%} of creates dropped), "
        f"{jobs:,} creates: {faulty['seconds']:.2f} s, exit {faulty['exit']}, faults {faulty['faults']}, "
        f"requests {faulty['requests']}"
        + (f"\n    DID NOT FINISH within {args.fault_timeout:g} s: killed, force-unlocked and applied again "
           f"without faults ({resumed['seconds']:.2f} s, exit {resumed['exit']}, requests {resumed['requests']})"
           if resumed else ""),
        f"    {fa['jobs_existing']} jobs exist for {fa['keys_with_a_job']} keys, {fa['duplicates']} duplicates, "
        f"{fa['state_entries']} state entries, state matches jobs: {fa['state_matches_jobs']}; "
        f"plan afterwards: {case['replan']!r} ({h.verdict(case['ok'])})",
    ])


def faults_only(args: argparse.Namespace, jobs: int) -> int:
    strip = ("state_path", "manifests", "tag")
    with tempfile.TemporaryDirectory(prefix="apply-bench-") as tmp, h.emulator(args.latency_ms) as emu:
        case = fault_case(emu, Path(tmp), args, jobs)
    figures = {
        "latency_ms": args.latency_ms, "fault_jobs": jobs,
        "faults_run": {k: v for k, v in case["run"].items() if k not in strip},
        "faults_resumed_run": {k: v for k, v in case["resumed"].items() if k not in strip} if case["resumed"] else None,
        "faults_audit": case["audit"], "faults_replan": case["replan"],
        "goals_met": {"faults_exact": case["ok"], "faults_finished_in_time": not case["run"]["timed_out"]},
        "correct": case["ok"],
    }
    h.emit(figures, args.json, f"apply, {args.latency_ms:g} ms latency per request\n" + fault_text(args, jobs, case))
    return 0 if case["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000, help="N (the growth run uses 10 N)")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--error-rate", type=float, default=0.2, help="half 429, half 503")
    parser.add_argument("--drop-rate", type=float, default=0.02)
    parser.add_argument("--fault-timeout", type=float, default=300.0,
                        help="stop the faulty apply after this many seconds, then resume without faults")
    parser.add_argument("--region-creates", type=int, default=400, help="M of the quota case")
    parser.add_argument("--quota-per-minute", type=float, default=60.0, help="the quota case's quota per region")
    parser.add_argument("--faults-only", action="store_true",
                        help="run only the fault case (N creates), print its figures, leave the README alone")
    h.add_output_args(parser)
    args = parser.parse_args(argv)
    big_factor = 10
    fault_jobs = args.jobs
    if args.quick:
        args.jobs, big_factor, fault_jobs = 60, 4, 20
        args.drop_rate = max(args.drop_rate, 0.15)  # so that the small run drops some creates too
        args.region_creates, args.quota_per_minute = 24, 120.0  # a bucket of 20 per region
    if args.faults_only:
        return faults_only(args, fault_jobs)
    readme = h.readme_for(args)
    n, big = args.jobs, args.jobs * big_factor

    with tempfile.TemporaryDirectory(prefix="apply-bench-") as tmp, h.emulator(args.latency_ms) as emu:
        work = Path(tmp)
        serial = run_apply(emu, work, n, 1, "p1")
        parallel = run_apply(emu, work, n, 16, "p16")
        # The same apply again with nothing to do: start-up, manifests, state and refresh.
        constant = run_apply(emu, work, n, 16, "p16")
        large = run_apply(emu, work, big, 16, "big")
        audits = {r["tag"]: audit(emu, r) for r in (serial, parallel, large)}
        case = fault_case(emu, work, args, fault_jobs)
        faulty, resumed, faulty_audit, faulty_replan = case["run"], case["resumed"], case["audit"], case["replan"]
        regions = region_case(emu, work, args.region_creates, args.quota_per_minute)

    speedup = serial["seconds"] / parallel["seconds"]
    fixed = constant["seconds"]
    create_speedup = (serial["seconds"] - fixed) / max(parallel["seconds"] - fixed, 1e-9)
    time_growth = (large["seconds"] / big) / (parallel["seconds"] / n)
    bytes_growth = large["bytes_per_job"] / parallel["bytes_per_job"]
    clean = all(r["exit"] == 0 for r in (serial, parallel, large)) and all(
        a["jobs_existing"] == r["jobs"] and a["duplicates"] == 0 and a["state_matches_jobs"]
        for r, a in ((serial, audits["p1"]), (parallel, audits["p16"]), (large, audits["big"])))
    fault_ok = case["ok"]
    goals = {"speedup": speedup >= GOAL_SPEEDUP, "time_linear": time_growth <= GOAL_GROWTH,
             "bytes_linear": bytes_growth <= GOAL_GROWTH, "faults_exact": fault_ok,
             "faults_finished_in_time": not faulty["timed_out"],
             "regions_speedup": regions["speedup"] >= GOAL_REGION_SPEEDUP}
    strip = ("state_path", "manifests", "tag")
    figures = {
        "latency_ms": args.latency_ms,
        "serial": {k: v for k, v in serial.items() if k not in strip},
        "parallel": {k: v for k, v in parallel.items() if k not in strip},
        "large": {k: v for k, v in large.items() if k not in strip},
        "audits": audits,
        "noop_apply_seconds": round(fixed, 3),
        "speedup_create_phase": round(create_speedup, 1),
        "fault_jobs": fault_jobs,
        "faults_run": {k: v for k, v in faulty.items() if k not in strip},
        "faults_resumed_run": {k: v for k, v in resumed.items() if k not in strip} if resumed else None,
        "faults_audit": faulty_audit,
        "faults_replan": faulty_replan,
        "speedup_16_vs_1": round(speedup, 1),
        "time_per_job_growth": round(time_growth, 2),
        "bytes_per_job_growth": round(bytes_growth, 2),
        "regions": regions,
        "goals_met": goals,
        "correct": clean and fault_ok and regions["ok"],
    }

    def row(r: dict[str, Any]) -> str:
        return (f"{r['jobs']:>6,} creates, parallelism {r['parallelism']:>2}: {r['seconds']:7.2f} s "
                f"({r['seconds'] / r['jobs'] * 1000:6.2f} ms/job)  wrote {r['bytes_written']:,} B "
                f"({r['bytes_per_job']} B/job)  state file {r['state_file_bytes']:,} B  "
                f"RSS {r['peak_rss_mb']:.0f} MB  exit {r['exit']}  requests {r['requests']}")

    fa = faulty_audit
    text = "\n".join([
        f"apply from empty state, {args.latency_ms:g} ms latency per request",
        "  " + row(serial), "  " + row(parallel), "  " + row(large),
        f"  speed-up parallelism 16 vs 1: {speedup:.1f}x end to end (goal >= {GOAL_SPEEDUP:g}x: "
        f"{h.verdict(goals['speedup'])}); {create_speedup:.1f}x for the creates alone (the same apply with "
        f"nothing left to do takes {fixed:.2f} s)",
        f"  growth {n:,} -> {big:,}: time per job x{time_growth:.2f}, bytes per job x{bytes_growth:.2f} "
        f"(goal <= {GOAL_GROWTH}: {h.verdict(goals['time_linear'] and goals['bytes_linear'])})",
        fault_text(args, fault_jobs, case),
        region_text(regions),
    ])
    h.emit(figures, args.json, text)
    h.update_readme("apply", "\n".join([
        f"`apply --auto-approve` from an empty state, {args.latency_ms:g} ms added latency per request "
        f"({h.machine_line()}).",
        "",
        h.table([[f"{r['jobs']:,}", r["parallelism"], f"{r['seconds']:.2f} s",
                  f"{r['seconds'] / r['jobs'] * 1000:.2f}", f"{r['bytes_written']:,}", r["bytes_per_job"],
                  f"{r['state_file_bytes']:,}", f"{r['peak_rss_mb']:.0f} MB"] for r in (serial, parallel, large)],
                ["creates", "parallelism", "wall time", "ms per job", "bytes written", "bytes per job",
                 "final state file", "peak RSS"]),
        "",
        f"- Parallelism 16 vs 1: **{speedup:.1f}x** end to end (goal >= {GOAL_SPEEDUP:g}x: "
        f"{h.verdict(goals['speedup'])}); {create_speedup:.1f}x for the creates alone, taking off the "
        f"{fixed:.2f} s the same apply needs with nothing left to do (start-up, manifests, state, refresh).",
        f"- From {n:,} to {big:,} creates: time per job x{time_growth:.2f}, bytes written per job "
        f"x{bytes_growth:.2f} (goal: linear, <= {GOAL_GROWTH}x: "
        f"{h.verdict(goals['time_linear'] and goals['bytes_linear'])}).",
        f"- Faults ({args.error_rate:.0%} of requests failed, half 429 with Retry-After and half 503; "
        f"{args.drop_rate:.0%} of creates committed then dropped), {fault_jobs:,} creates at parallelism 16: "
        f"{faulty['seconds']:.1f} s, injected {faulty['faults']}"
        + (f" (**DID NOT FINISH within {args.fault_timeout:g} s**: the apply was killed, force-unlocked "
           f"and applied again without faults in {resumed['seconds']:.1f} s, which also tests recovery from a "
           "crash mid-apply)" if resumed else "")
        + f"; afterwards {fa['jobs_existing']} jobs for "
        f"{fa['keys_with_a_job']} keys, **{fa['duplicates']} duplicates**, {fa['state_entries']} state "
        f"entries matching the jobs: {fa['state_matches_jobs']}; the next plan says `{faulty_replan}` "
        f"(exactly one job per key, state complete: {h.verdict(fault_ok)}; finished under faults in time: "
        f"{h.verdict(not faulty['timed_out'])}).",
        f"-{region_text(regions)[1:]}",
    ]), readme)
    return 0 if clean and fault_ok and regions["ok"] else 1


def region_text(r: dict[str, Any]) -> str:
    one, four = r["one"], r["four"]
    return (f"  quota {r['quota_per_minute']:g}/min per project and location, {r['creates']:,} creates at parallelism 16: "
            f"one region {one['seconds']:.1f} s ({one['refused_by_quota']} refused by the quota), four regions "
            f"{four['seconds']:.1f} s ({four['refused_by_quota']} refused): {r['speedup']:.2f}x (goal >= "
            f"{GOAL_REGION_SPEEDUP:g}x: {h.verdict(r['speedup'] >= GOAL_REGION_SPEEDUP)}); one job per key: "
            f"{h.verdict(r['ok'])}")


if __name__ == "__main__":
    raise SystemExit(main())
