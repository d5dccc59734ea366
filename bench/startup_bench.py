"""Benchmark start-up: `reconciler --help` as a user runs it, beside the naive way.

The naive way is what the tool did before commands imported their work lazily: load every
stage (planner, client, executor, state, renderers) before parsing. Both are child
processes of the same interpreter; the median of `--runs` runs is reported (and the best).

    python bench/startup_bench.py            # 21 runs each
    python bench/startup_bench.py --quick    # 5 runs each (smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

GOAL_MS = 80.0
EAGER = ("import reconciler.operations, reconciler.plan.planner, reconciler.plan.refresh, reconciler.api.client, "
         "reconciler.apply.executor, reconciler.state.store, reconciler.drift.report, reconciler.render.drift, "
         "reconciler.render.plan_markdown, reconciler.manifests.loader, reconciler.emulator.server\n"
         "from reconciler.cli import main\nraise SystemExit(main(['--help']))")


def _times(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=h.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter() - start) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    h.add_output_args(parser, "5 runs each (smoke test)")
    args = parser.parse_args(argv)
    runs = 5 if args.quick else args.runs
    script = str(Path(sys.executable).with_name("reconciler"))
    entry = [script] if Path(script).exists() else [sys.executable, "-m", "reconciler"]
    help_ms = _times([*entry, "--help"], runs)
    bare_ms = _times([sys.executable, "-c", "pass"], runs)
    naive_ms = _times([sys.executable, "-c", EAGER], runs)
    med, naive, bare = statistics.median(help_ms), statistics.median(naive_ms), statistics.median(bare_ms)
    ok = med <= GOAL_MS
    figures = {"runs": runs, "help_median_ms": round(med, 1), "help_best_ms": round(min(help_ms), 1),
               "naive_median_ms": round(naive, 1), "python_alone_median_ms": round(bare, 1),
               "goal_ms": GOAL_MS, "goals_met": {"help": ok}, "correct": True}
    text = (f"start-up, median of {runs} runs: `reconciler --help` {med:.0f} ms (best {min(help_ms):.0f} ms; goal "
            f"<= {GOAL_MS:g} ms: {h.verdict(ok)}); naive (every stage loaded first) {naive:.0f} ms; "
            f"the interpreter alone (`python -c pass`) {bare:.0f} ms")
    h.emit(figures, args.json, text)
    h.update_readme("startup", "\n".join([
        f"Median of {runs} runs each, child processes ({h.machine_line()}).",
        "",
        h.table([["`reconciler --help`", f"{med:.0f} ms (best {min(help_ms):.0f})", f"<= {GOAL_MS:g} ms: {h.verdict(ok)}"],
                 ["naive: every stage imported before parsing", f"{naive:.0f} ms", ""],
                 ["the interpreter alone (`python -c pass`)", f"{bare:.0f} ms", ""]],
                ["measure", "time", "goal"]),
    ]), h.readme_for(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
