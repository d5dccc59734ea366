"""Shared helpers for the reliability tests: manifests on disk, the CLI in a subprocess or
in-process, ground truth read straight from the emulator's backend, and a figures log.

Figures: set RELIABILITY_FIGURES=FILE to have the tests append what they measured (faults
injected, trials, jobs created, duplicates found) as JSON lines; RELIABILITY.md quotes them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.model import KEY_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "us-central1"
ACTIVE_OR_DONE = {"JOB_STATE_PENDING", "JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED",
                  "JOB_STATE_FAILED", "JOB_STATE_PAUSED", "JOB_STATE_UPDATING", "JOB_STATE_EXPIRED",
                  "JOB_STATE_PARTIALLY_SUCCEEDED"}


def manifest(key: str, epochs: int = 3, project: str | None = None, extra_spec: str = "") -> str:
    meta = f"  name: {key}\n" + (f"  project: {project}\n" if project else "")
    return (f"apiVersion: tuning.reconciler/v1\nkind: TuningJob\nmetadata:\n{meta}"
            f"spec:\n  baseModel: gemini-2.5-flash\n  supervisedTuningSpec:\n"
            f"    trainingDatasetUri: gs://bucket/{key}.jsonl\n"
            f"    hyperParameters: {{epochCount: \"{epochs}\"}}\n"
            f"{textwrap.indent(extra_spec, '  ')}")


def write_manifests(directory: Path, keys: list[str], epochs: dict[str, int] | None = None,
                    project: str | None = None) -> Path:
    """All keys as documents of one file (a few files would do as well)."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = [manifest(k, (epochs or {}).get(k, 3), project) for k in keys]
    (directory / "jobs.yaml").write_text("---\n".join(docs))
    return directory


def jobs_by_key(emulator: Any, project_number: str | None = None) -> dict[str, list[dict]]:
    """Ground truth: every managed job the emulator holds, by key (not through our client)."""
    found: dict[str, list[dict]] = {}
    with emulator.backend.lock:
        emulator.backend.tick()
        resources = [job.resource() for job in emulator.backend.jobs.values()]
    for job in resources:
        labels = job.get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
            continue
        if project_number and not job["name"].startswith(f"projects/{project_number}/"):
            continue
        found.setdefault(labels[KEY_LABEL], []).append(job)
    return found


def current_jobs(jobs: list[dict]) -> list[dict]:
    """Jobs of one key that are not cancelled: what 'one live job per key' counts."""
    return [j for j in jobs if j["state"] in ACTIVE_OR_DONE]


def duplicates(by_key: dict[str, list[dict]]) -> int:
    """Jobs beyond the first among the non-cancelled jobs of each key."""
    return sum(max(0, len(current_jobs(jobs)) - 1) for jobs in by_key.values())


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(capsys: pytest.CaptureFixture, *argv: str) -> Run:
    """The real CLI, in this process."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return Run(code, out, err)


def subprocess_env(url: str, token: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "GOOGLE_CLOUD_"))}
    env.update(RECONCILER_ENDPOINT=url, RECONCILER_ACCESS_TOKEN=token, PYTHONUNBUFFERED="1", **extra)
    return env


def spawn(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reconciler", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def record_figures(test: str, **figures: Any) -> None:
    path = os.environ.get("RELIABILITY_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": test, **figures}, sort_keys=True) + "\n")


def assert_no_traceback(text: str) -> None:
    assert "Traceback (most recent call last)" not in text, text[-3000:]


@pytest.fixture
def env_for(monkeypatch: pytest.MonkeyPatch):
    """Point in-process CLI runs at an emulator (URL and token in the environment)."""

    def use(emulator: Any) -> None:
        monkeypatch.setenv("RECONCILER_ENDPOINT", emulator.url)
        monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", emulator.token)
        monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
        monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)

    return use


def key_counts(by_key: dict[str, list[dict]]) -> Counter[str]:
    return Counter({k: len(current_jobs(v)) for k, v in by_key.items()})


def kill_at_random(proc: subprocess.Popen, rng: random.Random, emulator: Any, new_jobs: int, *,
                   give_up_s: float, after_job_s: float, anytime_s: tuple[float, float]) -> str:
    """SIGKILL once the apply has made a random number of its `new_jobs` (then up to
    `after_job_s` more), or at a random moment within `anytime_s`; gives up waiting for jobs
    after `give_up_s`. Returns "killed" or "finished first"."""
    mode = rng.choice(["jobs", "jobs", "time"])
    deadline = time.monotonic() + give_up_s
    if mode == "jobs":
        goal = len(emulator.backend.jobs) + rng.randint(0, new_jobs)
        while len(emulator.backend.jobs) < goal and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, after_job_s))
    else:
        time.sleep(rng.uniform(*anytime_s))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return "killed"
    proc.communicate(timeout=10)
    return "finished first"
