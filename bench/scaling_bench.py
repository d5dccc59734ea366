"""Benchmark how `plan` scales: wall time (CLI, end to end) at 100, 1,000, 10,000 and 50,000
managed jobs, the same setup as refresh_plan_bench (emulator in its own process, added
latency, 1% changed and 0.5% new keys), with the log-log slope of the curve.

A slope near 1.0 is linear. Start-up (interpreter, imports) is a constant that flattens the
small sizes, so near-linearity is judged on the marginal cost per job: the cost of each job
added between 10,000 and 50,000 must stay within 1.5x of that between 1,000 and 10,000
(anything quadratic would multiply it by about five).

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


def measure(sizes: list[int], latency_ms: float, repeats: int) -> list[dict]:
    rows = []
    with h.emulator(latency_ms) as emu, emu.admin() as admin:
        for n in sizes:
            admin.reset()
            with tempfile.TemporaryDirectory(prefix="scaling-bench-") as tmp:
                manifests, state, expected = rp.prepare(admin, Path(tmp), n)
                runs = []
                for _ in range(repeats if n <= 10_000 else 1):
                    before = admin.stats()
                    run = rp.run_plan(emu.url, manifests, state)
                    requests = sum(rp.requests_between(before, admin.stats()).values())
                    if run.returncode != 0:
                        raise RuntimeError(f"plan failed at {n} jobs: {run.stderr[-2000:]}")
                    runs.append((run, requests))
                best, requests = min(runs, key=lambda r: r[0].seconds)
                rows.append({"jobs": n, "plan_seconds": round(best.seconds, 3),
                             "peak_rss_mb": round(best.peak_rss_mb, 1), "requests": requests,
                             "us_per_job": round(best.seconds / n * 1e6, 1), "runs": len(runs)})
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
    figures = {
        "latency_ms": args.latency_ms,
        "rows": rows,
        "slope_loglog_all": round(slope_all, 3),
        "slope_loglog_from_1000": round(slope_big, 3) if slope_big is not None else None,
        "marginal_us_per_job": [round(s * 1e6, 1) for s in steps],
        "marginal_ratio_last_two": round(ratio, 2) if ratio is not None else None,
        "goal_marginal_ratio": GOAL_MARGINAL_RATIO,
        "near_linear": near_linear,
    }
    lines = [f"plan (CLI, end to end) vs managed jobs, {args.latency_ms:g} ms latency per request"]
    for r, step in zip(rows, [None, *steps]):
        extra = f"  marginal {step * 1e6:7.1f} us/job" if step is not None else ""
        lines.append(f"  {r['jobs']:>7,} jobs: {r['plan_seconds']:7.2f} s  {r['us_per_job']:8.1f} us/job  "
                     f"RSS {r['peak_rss_mb']:6.1f} MB  requests {r['requests']}{extra}")
    lines.append(f"  log-log slope: {slope_all:.2f} over all sizes"
                 + (f", {slope_big:.2f} from 1,000 up" if slope_big is not None else ""))
    if ratio is not None:
        lines.append(f"  marginal cost ratio (last step / previous): {ratio:.2f} (goal <= {GOAL_MARGINAL_RATIO}): "
                     f"{'near-linear' if near_linear else 'NOT near-linear'}")
    h.emit(figures, args.json, "\n".join(lines))
    h.update_readme("scaling", "\n".join([
        f"`plan` end to end (CLI child process) at {args.latency_ms:g} ms latency per request, best of "
        f"{args.repeats} runs up to 10,000 jobs ({h.machine_line()}).",
        "",
        h.table([[f"{r['jobs']:,}", f"{r['plan_seconds']:.2f} s", f"{r['us_per_job']:.1f}",
                  f"{step * 1e6:.1f}" if step is not None else "", f"{r['peak_rss_mb']:.0f} MB", r["requests"]]
                 for r, step in zip(rows, [None, *steps])],
                ["jobs", "plan time", "µs per job", "marginal µs per added job", "peak RSS", "HTTP requests"]),
        "",
        f"Log-log slope {slope_all:.2f} over all sizes"
        + (f", {slope_big:.2f} from 1,000 jobs up" if slope_big is not None else "")
        + " (1.0 = linear; start-up flattens the small sizes). "
        + (f"Marginal cost of the last step is {ratio:.2f}x the previous one (goal <= {GOAL_MARGINAL_RATIO}x): "
           f"{'near-linear' if near_linear else 'NOT near-linear'}." if ratio is not None else ""),
    ]), readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
