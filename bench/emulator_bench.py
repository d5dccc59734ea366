"""Benchmark the emulator itself: requests per second for get and list at concurrency 16.

The emulator runs in its own process with no added latency; 16 threads in this process send
requests over keep-alive connections for a fixed time. The server's CPU time (from
/proc/PID/stat) tells whether the emulator or the load generator is the limit. The figures
are set against the request rates the other benchmarks need, to show the emulator is not
their bottleneck: apply at parallelism 16 and 20 ms latency asks for at most 16 / 0.02 s =
800 requests/s; the naive refresh at parallelism 10, 500 requests/s.

    python bench/emulator_bench.py            # 10,000 jobs, 3 s per measurement
    python bench/emulator_bench.py --quick    # 500 jobs, 0.5 s per measurement (smoke test)
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

CONCURRENCY = 16
NEEDED = {"apply, parallelism 16 at 20 ms": 16 / 0.020, "naive refresh, parallelism 10 at 20 ms": 10 / 0.020}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def hammer(url: str, paths: list[tuple[str, dict[str, str]]], seconds: float, server_pid: int) -> dict:
    """CONCURRENCY threads send GETs from `paths` (round robin, shuffled) for `seconds`."""
    import httpx

    client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {h.TOKEN}"},
                          limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
                          trust_env=False, timeout=30)
    counts = [0] * CONCURRENCY
    errors = [0] * CONCURRENCY
    received = [0] * CONCURRENCY
    stop = threading.Event()
    start_gate = threading.Barrier(CONCURRENCY + 1)

    def worker(i: int) -> None:
        rng = random.Random(i)
        start_gate.wait()
        while not stop.is_set():
            path, params = paths[rng.randrange(len(paths))]
            response = client.get(path, params=params)
            counts[i] += 1
            received[i] += len(response.content)
            if response.status_code != 200:
                errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(CONCURRENCY)]
    for t in threads:
        t.start()
    server_cpu0, client_cpu0 = cpu_seconds(server_pid), time.process_time()
    start_gate.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    server_cpu = cpu_seconds(server_pid) - server_cpu0
    client_cpu = time.process_time() - client_cpu0
    client.close()
    total = sum(counts)
    return {"requests": total, "seconds": round(elapsed, 3), "requests_per_second": round(total / elapsed),
            "errors": sum(errors), "mb_per_second": round(sum(received) / elapsed / 1e6, 1),
            "server_cpu_share": round(server_cpu / elapsed, 2), "client_cpu_share": round(client_cpu / elapsed, 2),
            "server_cpu_ms_per_request": round(server_cpu / max(total, 1) * 1000, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    h.add_output_args(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.seconds = 500, 0.5
    readme = h.readme_for(args)

    from reconciler.model import MANAGED_FILTER
    from reconciler.plan.refresh import plan_fields

    with h.emulator(0.0) as emu:
        with emu.admin() as admin:
            names = h.seed_managed(admin, args.jobs, h.SPEC)
        list_params = {"filter": MANAGED_FILTER}
        cases = {
            "get": [(f"/v1/{name}", {}) for name in names],
            "list (default page, 50 jobs)": [(f"/v1/{h.PARENT}/tuningJobs", list_params)],
            "list (1,000 jobs, plan fields)": [(f"/v1/{h.PARENT}/tuningJobs",
                                                {**list_params, "pageSize": "1000", "fields": plan_fields()})],
        }
        results = {name: hammer(emu.url, paths, args.seconds, emu.pid) for name, paths in cases.items()}

    # What one emulator process could serve if the load generator kept up: 1 s of its CPU
    # divided by its CPU per get (the generator, also one Python process, saturates first).
    get_capacity = 1000 / max(results["get"]["server_cpu_ms_per_request"], 1e-6)
    headroom = {need: round(get_capacity / rate, 1) for need, rate in NEEDED.items()}
    ok = all(r["errors"] == 0 and r["requests"] > 0 for r in results.values())
    figures = {"jobs": args.jobs, "concurrency": CONCURRENCY, "results": results,
               "get_capacity_per_second": round(get_capacity), "get_headroom_vs_needed": headroom, "correct": ok}
    lines = [f"emulator throughput, {args.jobs:,} jobs stored, concurrency {CONCURRENCY}, "
             f"{args.seconds:g} s per case"]
    for name, r in results.items():
        lines.append(f"  {name:32s} {r['requests_per_second']:6,} req/s  {r['mb_per_second']:6.1f} MB/s  "
                     f"server CPU {r['server_cpu_share']:.0%} ({r['server_cpu_ms_per_request']} ms/req), "
                     f"load generator CPU {r['client_cpu_share']:.0%}, errors {r['errors']}")
    lines.append(f"  emulator get capacity (one core, from its CPU per request): {get_capacity:,.0f} req/s")
    for need, ratio in headroom.items():
        lines.append(f"  vs what {need} needs at most ({NEEDED[need]:.0f} req/s): {ratio}x headroom")
    h.emit(figures, args.json, "\n".join(lines))
    h.update_readme("emulator", "\n".join([
        f"{args.jobs:,} jobs stored, {CONCURRENCY} concurrent keep-alive connections from one Python process, "
        f"no added latency, {args.seconds:g} s per case ({h.machine_line()}).",
        "",
        h.table([[name, f"{r['requests_per_second']:,}", f"{r['mb_per_second']:.1f}",
                  f"{r['server_cpu_share']:.0%}", r["server_cpu_ms_per_request"], f"{r['client_cpu_share']:.0%}"]
                 for name, r in results.items()],
                ["request", "requests/s", "MB/s", "emulator CPU", "emulator CPU ms/request", "load generator CPU"]),
        "",
        "A CPU share near 100% marks the side that limits the rate (one Python process each, on 2 cores): "
        "for gets it is the load generator, so the emulator's capacity is taken from its CPU per request, "
        f"**{get_capacity:,.0f} gets/s**, against the most any other benchmark asks of it: "
        + "; ".join(f"{need} needs {NEEDED[need]:.0f} req/s (headroom {ratio}x)" for need, ratio in headroom.items())
        + ". A 1,000-job list page with the plan's fields costs the emulator "
        f"{results['list (1,000 jobs, plan fields)']['server_cpu_ms_per_request']} ms of CPU, so the 10 pages of "
        "the 10,000-job plan spend that much time in the emulator on top of the added latency.",
    ]), readme)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
