"""Run every benchmark (`make bench`), each in its own process, and refresh bench/README.md.

Each script writes its own section of the README; the validate benchmark (which prints JSON
and writes nothing) gets its section written here. Exit status 1 if any benchmark failed
its correctness checks (a missed speed goal is reported in the output, not as a failure).

    python bench/run_all.py            # full size (several minutes)
    python bench/run_all.py --quick    # every script in its smoke-test size, README untouched
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

SCRIPTS = ["startup_bench.py", "refresh_plan_bench.py", "scaling_bench.py", "apply_bench.py", "emulator_bench.py",
           "graph_bench.py", "gcs_state_bench.py"]


def validate_section(figures: dict) -> str:
    return "\n".join([
        f"{figures['documents']:,} manifest documents in {figures['files']} files ({h.machine_line()}).",
        "",
        h.table([
            ["`reconciler validate` (CLI, end to end), nothing cached", f"{figures['validate_cli_seconds']:.2f} s",
             f"<= {figures['goal_seconds']:g} s: {h.verdict(figures['validate_cli_seconds'] <= figures['goal_seconds'])}"],
            ["the same again, every file unchanged (manifest cache)", f"{figures['validate_cli_cached_seconds']:.2f} s",
             ""],
            ["in-process check (no start-up)", f"{figures['validate_in_process_seconds']:.2f} s", ""],
            ["naive: `safe_load_all` + `jsonschema.validate` per document",
             f"{figures['naive_seconds_total']:.1f} s"
             + (f" (timed on {figures['naive_documents_timed']}, extrapolated)"
                if figures["naive_total_extrapolated"] else ""), ""],
            ["speed-up vs naive", f"{figures['speedup_vs_naive']}x",
             f">= {figures['goal_speedup']:g}x: {h.verdict(figures['speedup_vs_naive'] >= figures['goal_speedup'])}"],
        ], ["measure", "time", "goal"]),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes; the README is left alone")
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent
    failed = []
    started = time.perf_counter()
    if not args.quick:
        h.update_readme("machine", f"Last full run: {h.machine_line()}.")
    for script in ["validate_bench.py", *SCRIPTS]:
        cmd = [sys.executable, str(here / script)]
        if args.quick:
            cmd.append("--quick")
        if script == "validate_bench.py":
            cmd.append("--json")
        print(f"\n=== {script} ===", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=h.ROOT, text=True,
                              stdout=subprocess.PIPE if script == "validate_bench.py" else None)
        if script == "validate_bench.py" and proc.stdout:
            try:
                figures = json.loads(proc.stdout)
            except ValueError:
                print(proc.stdout)
            else:
                print(json.dumps(figures, indent=2))
                if not args.quick:
                    h.update_readme("validate", validate_section(figures))
        print(f"--- {script}: exit {proc.returncode} in {time.perf_counter() - t0:.1f} s", flush=True)
        if proc.returncode != 0:
            failed.append(script)
    print(f"\nAll benchmarks done in {time.perf_counter() - started:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else "")
          + ("" if args.quick else f"; figures written to {h.README.relative_to(h.ROOT)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
