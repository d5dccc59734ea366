"""Soak: many creates through a 429/503 storm and dropped answers; count duplicates.

The long variant of tests/reliability/test_faults.py (not in `make test`). Runs the real CLI
(`python -m reconciler apply`) as a subprocess against an in-process emulator and checks the
ground truth in the emulator: every key has exactly one job, state names it.

    python bench/soak_faults.py                              # 1,000 creates, 30% errors, 10% drops
    python bench/soak_faults.py --creates 200 --pacer-floor 0   # the shipped pacer (slow: see RELIABILITY.md)
    python bench/soak_faults.py --quick                      # 50 creates
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.emulator.server import EmulatorConfig, start_emulator  # noqa: E402
from reconciler.model import KEY_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE  # noqa: E402


def manifests(directory: Path, count: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    docs = [f"apiVersion: tuning.reconciler/v1\nkind: TuningJob\nmetadata:\n  name: soak-{i:05d}\nspec:\n"
            f"  baseModel: gemini-2.5-flash\n  supervisedTuningSpec:\n"
            f"    trainingDatasetUri: gs://bucket/soak-{i}.jsonl\n" for i in range(count)]
    (directory / "soak.yaml").write_text("---\n".join(docs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--error-rate", type=float, default=0.3)
    parser.add_argument("--drop-rate", type=float, default=0.1)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="50 creates")
    args = parser.parse_args()
    count = 50 if args.quick else args.creates
    work = Path(tempfile.mkdtemp(prefix="soak-faults-"))
    emulator = start_emulator(EmulatorConfig(token="soak-token", virtual_clock=True, error_rate=args.error_rate,
                                             drop_rate=args.drop_rate, retry_after=0, seed=args.seed))
    try:
        manifests(work / "m", count)
        env = {**os.environ, "RECONCILER_ENDPOINT": emulator.url, "RECONCILER_ACCESS_TOKEN": "soak-token"}
        cmd = [sys.executable, "-m", "reconciler", "apply", str(work / "m"), "--auto-approve",
               "--no-color", "--parallelism", str(args.parallelism), "--state", str(work / "state.json"),
               "--project", "soak", "--location", "us-central1"]
        runs, started = 0, time.monotonic()
        while True:  # a run that gave up on some change is followed by another, as a user would
            runs += 1
            proc = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
            if proc.returncode == 0 or runs >= 5:
                break
        elapsed = time.monotonic() - started
        stats = emulator.app.stats.as_dict()
        by_key: dict[str, int] = {}
        for job in emulator.backend.jobs.values():
            labels = job.labels
            if labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE:
                by_key[labels[KEY_LABEL]] = by_key.get(labels[KEY_LABEL], 0) + 1
        state = json.loads((work / "state.json").read_text())
        dup = sum(n - 1 for n in by_key.values())
        wrong = [e["key"] for e in state["entries"].values() if not e.get("job_name")]
        result = {"creates": count, "runs": runs, "exit": proc.returncode, "seconds": round(elapsed, 1),
                  "jobs": len(emulator.backend.jobs), "keys_with_a_job": len(by_key), "duplicates": dup,
                  "state_entries": len(state["entries"]), "entries_without_job": len(wrong),
                  "faults": stats["faults"], "requests": stats["total"]}
        print(json.dumps(result, indent=2))
        ok = dup == 0 and len(by_key) == count and len(state["entries"]) == count and not wrong
        return 0 if ok and proc.returncode == 0 else 1
    finally:
        emulator.stop()


if __name__ == "__main__":
    raise SystemExit(main())
