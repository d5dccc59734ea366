"""Soak: SIGKILL `python -m reconciler apply` at random moments, many seeded trials.

The long variant of tests/reliability/test_crash.py (not in `make test`). Each trial kills
one or more applies (creates, and replaces in every third trial), checks that the state file
always parses, clears the stale lock with `force-unlock`, converges with a final apply and
checks exactly one live job per key and no key forgotten.

    python bench/soak_crash.py               # 200 trials, 20 keys each, up to 3 kills per trial
    python bench/soak_crash.py --quick       # 10 trials
    python bench/soak_crash.py --virtual-clock   # equal createTimes: finds the planner bug
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.emulator.server import EmulatorConfig, start_emulator  # noqa: E402
from reconciler.model import KEY_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE  # noqa: E402
from reconciler.state.lock import read_lock  # noqa: E402
from reconciler.state.model import state_from_json  # noqa: E402

LIVE = {"JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_QUEUED"}


def write(directory: Path, keys: list[str], epochs: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "jobs.yaml").write_text("---\n".join(
        f"apiVersion: tuning.reconciler/v1\nkind: TuningJob\nmetadata:\n  name: {k}\nspec:\n"
        f"  baseModel: gemini-2.5-flash\n  supervisedTuningSpec:\n    trainingDatasetUri: gs://bucket/{k}.jsonl\n"
        f"    hyperParameters: {{epochCount: \"{epochs}\"}}\n" for k in keys))


def reconciler(argv: list[str], env: dict, cwd: Path, wait: bool = True):
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", *argv], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        out, err = proc.communicate(timeout=120)
        return proc.returncode, out + err
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--kills", type=int, default=3, help="most kills per trial")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--virtual-clock", action="store_true",
                        help="equal createTimes: reproduces the planner bug RELIABILITY.md describes")
    args = parser.parse_args()
    trials = 10 if args.quick else args.trials
    emulator = start_emulator(EmulatorConfig(token="soak-token", virtual_clock=args.virtual_clock, job_duration=36000,
                                             latency_ms=15, seed=2))
    env = {**os.environ, "RECONCILER_ENDPOINT": emulator.url, "RECONCILER_ACCESS_TOKEN": "soak-token"}
    work = Path(tempfile.mkdtemp(prefix="soak-crash-"))
    figures = {"trials": trials, "kills": 0, "finished_before_kill": 0, "states_checked": 0, "duplicates": 0,
               "forgotten_keys": 0, "untracked_jobs": 0, "failed_trials": 0}
    started = time.monotonic()
    try:
        for trial in range(trials):
            rng = random.Random(trial)
            root, project = work / f"t{trial}", f"soak-{trial}"
            state = root / "state.json"
            keys = [f"s{trial}-{i}" for i in range(args.keys)]
            common = ["--state", str(state), "--project", project, "--location", "us-central1", "--no-color"]
            write(root / "m", keys, 3)
            if trial % 3 == 2:
                reconciler(["apply", str(root / "m"), "--auto-approve", *common], env, root)
                write(root / "m", keys, 4)
            for _ in range(rng.randint(1, args.kills)):
                proc = reconciler(["apply", str(root / "m"), "--auto-approve", "--parallelism",
                                   str(rng.choice([1, 4, 8])), *common], env, root, wait=False)
                time.sleep(rng.uniform(0.3, 1.0))  # start-up takes ~0.4 s, a 20-key apply ~0.3 s
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    figures["kills"] += 1
                else:
                    figures["finished_before_kill"] += 1
                proc.communicate(timeout=30)
                if state.exists():
                    state_from_json(state.read_text(), str(state))  # raises if torn
                    figures["states_checked"] += 1
                lock = read_lock(state)
                if lock is not None:
                    reconciler(["force-unlock", lock.id, "--force", "--state", str(state)], env, root)
            code, text = reconciler(["apply", str(root / "m"), "--auto-approve", *common], env, root)
            number = emulator.backend.project_number(project)
            jobs = [j for j in emulator.backend.jobs.values() if j.name.startswith(f"projects/{number}/")
                    and j.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE]
            entries = json.loads(state.read_text())["entries"]
            live: dict[str, int] = {}
            for job in jobs:
                if job.state in LIVE:
                    live[job.labels[KEY_LABEL]] = live.get(job.labels[KEY_LABEL], 0) + 1
            known = {n for e in entries.values() for n in [e["job_name"], *e["history"]]}
            figures["duplicates"] += sum(n - 1 for n in live.values())
            figures["forgotten_keys"] += len(set(keys) - {e["key"] for e in entries.values()})
            figures["untracked_jobs"] += sum(1 for j in jobs if j.name not in known)
            if code != 0:
                figures["failed_trials"] += 1
                print(f"trial {trial}: final apply exit {code}\n{text[-1500:]}", file=sys.stderr)
    finally:
        emulator.stop()
    figures["jobs_created"] = len(emulator.backend.jobs)
    figures["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures, indent=2))
    bad = figures["duplicates"] or figures["forgotten_keys"] or figures["untracked_jobs"] or figures["failed_trials"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
