"""Benchmark how `plan` scales: wall time (CLI, end to end) at 100, 1,000, 10,000 and 50,000
managed jobs, the same setup as refresh_plan_bench (emulator in its own process, added
latency, 1% changed and 0.5% new keys), with the log-log slope of the curve.

A slope near 1.0 is linear. Start-up (interpreter, imports) is a constant that flattens the
small sizes, so near-linearity is judged on the marginal cost per job: the cost of each job
added between 10,000 and 50,000 must stay within 1.5x of that between 1,000 and 10,000
(anything quadratic would multiply it by about five). Each size is planned first with nothing
cached (the curve), then again with the manifests unchanged; every plan must find exactly the
changed and new keys. Goal at 50,000 jobs: <= 5 s and peak RSS <= 250 MB, nothing cached.

    python bench/scaling_bench.py                  # 100, 1,000, 10,000, 50,000
    python bench/scaling_bench.py --quick          # 50, 200, 800 (smoke test)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
import refresh_plan_bench as rp  # noqa: E402

DEFAULT_SIZES = (100, 1_000, 10_000, 50_000)
QUICK_SIZES = (50, 200, 800)
GOAL_MARGINAL_RATIO = 1.5
GOAL_50K_SECONDS = 5.0
GOAL_50K_RSS_MB = 250.0


def measure(sizes: list[int], latency_ms: float, repeats: int) -> list[dict]:
    rows = []
    with h.emulator(latency_ms) as emu, emu.admin() as admin:
        for n in sizes:
            admin.reset()
            with tempfile.TemporaryDirectory(prefix="scaling-bench-") as tmp:
                manifests, state, expected = rp.prepare(admin, Path(tmp), n)
                want = (f"Plan: {expected['create']} to create, {expected['replace']} to replace, "
                        "0 to cancel, 0 to rebase.")
                cold, warm = [], []
                for i in range(repeats if n <= 10_000 else 1):
                    cache = Path(tmp) / f"cache-{i}"
                    for runs in (cold, warm):  # nothing cached, then the manifests unchanged
                        before = admin.stats()
                        run = rp.run_plan(emu.url, manifests, state, cache)
                        requests = sum(rp.requests_between(before, admin.stats()).values())
                        found = next((x.strip() for x in run.stdout.splitlines() if x.startswith("Plan:")), "")
                        if run.returncode != 0 or found != want:
                            raise RuntimeError(f"plan at {n} jobs: exit {run.returncode}, {found!r} != {want!r}: "
                                               f"{run.stderr[-2000:]}")
                        runs.append((run, requests))
                best, requests = min(cold, key=lambda r: r[0].seconds)
                best_warm, _ = min(warm, key=lambda r: r[0].seconds)
                rows.append({"jobs": n, "plan_seconds": round(best.seconds, 3),
                             "peak_rss_mb": round(best.peak_rss_mb, 1), "requests": requests,
                             "us_per_job": round(best.seconds / n * 1e6, 1), "runs": len(cold),
                             "cached_plan_seconds": round(best_warm.seconds, 3),
                             "cached_peak_rss_mb": round(best_warm.peak_rss_mb, 1)})
    return rows


def marginal(rows: list[dict]) -> list[float]:
    """Seconds per added job between consecutive sizes."""
    return [(b["plan_seconds"] - a["plan_seconds"]) / (b["jobs"] - a["jobs"]) for a, b in zip(rows, rows[1:])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=list(DEFAULT_SIZES))
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per size up to 10,000 (best is kept)")
    h.add_output_args(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats = list(QUICK_SIZES), 1
    readme = h.readme_for(args)
    sizes = sorted(args.sizes)

    rows = measure(sizes, args.latency_ms, args.repeats)
    xs, ys = [r["jobs"] for r in rows], [r["plan_seconds"] for r in rows]
    slope_all = h.slope_loglog(xs, ys)
    big = [r for r in rows if r["jobs"] >= 1_000]
    slope_big = h.slope_loglog([r["jobs"] for r in big], [r["plan_seconds"] for r in big]) if len(big) > 1 else None
    steps = marginal(rows)
    ratio = steps[-1] / steps[-2] if len(steps) >= 2 and steps[-2] > 0 else None
    near_linear = ratio is not None and ratio <= GOAL_MARGINAL_RATIO
    largest = rows[-1]
    goal_50k = (largest["plan_seconds"] <= GOAL_50K_SECONDS and largest["peak_rss_mb"] <= GOAL_50K_RSS_MB
                if largest["jobs"] >= 50_000 else None)
    figures = {
        "latency_ms": args.latency_ms,
        "rows": rows,
        "slope_loglog_all": round(slope_all, 3),
        "slope_loglog_from_1000": round(slope_big, 3) if slope_big is not None else None,
        "marginal_us_per_job": [round(s * 1e6, 1) for s in steps],
        "marginal_ratio_last_two": round(ratio, 2) if ratio is not None else None,
        "goal_marginal_ratio": GOAL_MARGINAL_RATIO,
        "near_linear": near_linear,
        "goal_50k_seconds": GOAL_50K_SECONDS,
        "goal_50k_rss_mb": GOAL_50K_RSS_MB,
        "goals_met": {"near_linear": near_linear, "50k": goal_50k},
        "correct": True,  # every plan found exactly the changed and new keys (else it raised)
    }
    lines = [f"plan (CLI, end to end) vs managed jobs, {args.latency_ms:g} ms latency per request"]
    for r, step in zip(rows, [None, *steps]):
        extra = f"  marginal {step * 1e6:7.1f} us/job" if step is not None else ""
        lines.append(f"  {r['jobs']:>7,} jobs: {r['plan_seconds']:7.2f} s  {r['us_per_job']:8.1f} us/job  "
                     f"RSS {r['peak_rss_mb']:6.1f} MB  requests {r['requests']}{extra}  "
                     f"(unchanged manifests: {r['cached_plan_seconds']:.2f} s, RSS {r['cached_peak_rss_mb']:.0f} MB)")
    lines.append(f"  log-log slope: {slope_all:.2f} over all sizes"
                 + (f", {slope_big:.2f} from 1,000 up" if slope_big is not None else ""))
    if ratio is not None:
        lines.append(f"  marginal cost ratio (last step / previous): {ratio:.2f} (goal <= {GOAL_MARGINAL_RATIO}): "
                     f"{'near-linear' if near_linear else 'NOT near-linear'}")
    if goal_50k is not None:
        lines.append(f"  50,000 jobs: {largest['plan_seconds']:.2f} s, RSS {largest['peak_rss_mb']:.0f} MB (goal <= "
                     f"{GOAL_50K_SECONDS:g} s, <= {GOAL_50K_RSS_MB:g} MB: {h.verdict(goal_50k)})")
    h.emit(figures, args.json, "\n".join(lines))
    h.update_readme("scaling", "\n".join([
        f"`plan` end to end (CLI child process) at {args.latency_ms:g} ms latency per request, best of "
        f"{args.repeats} runs up to 10,000 jobs ({h.machine_line()}).",
        "",
        h.table([[f"{r['jobs']:,}", f"{r['plan_seconds']:.2f} s", f"{r['us_per_job']:.1f}",
                  f"{step * 1e6:.1f}" if step is not None else "", f"{r['peak_rss_mb']:.0f} MB", r["requests"],
                  f"{r['cached_plan_seconds']:.2f} s, {r['cached_peak_rss_mb']:.0f} MB"]
                 for r, step in zip(rows, [None, *steps])],
                ["jobs", "plan time (nothing cached)", "µs per job", "marginal µs per added job", "peak RSS",
                 "HTTP requests", "manifests unchanged"]),
        "",
        f"Log-log slope {slope_all:.2f} over all sizes"
        + (f", {slope_big:.2f} from 1,000 jobs up" if slope_big is not None else "")
        + " (1.0 = linear; start-up flattens the small sizes). "
        + (f"Marginal cost of the last step is {ratio:.2f}x the previous one (goal <= {GOAL_MARGINAL_RATIO}x): "
           f"{'near-linear' if near_linear else 'NOT near-linear'}." if ratio is not None else "")
        + (f" At 50,000 jobs: {largest['plan_seconds']:.2f} s, peak RSS {largest['peak_rss_mb']:.0f} MB (goal <= "
           f"{GOAL_50K_SECONDS:g} s and <= {GOAL_50K_RSS_MB:g} MB: {h.verdict(goal_50k)})." if goal_50k is not None else ""),
    ]), readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
