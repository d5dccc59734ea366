"""apply's behaviour end to end through the CLI against a live emulator over HTTP: one failed
change among good ones, --max-creates-per-minute, and plan colours on a terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from reconciler.api.client import ClientOptions, TuningClient
from reconciler.emulator.clock import parse_rfc3339

PROJECT, LOCATION = "demo-project", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
ROOT = Path(__file__).resolve().parents[2]


def live_jobs(url: str, token: str) -> list[dict]:
    with TuningClient(ClientOptions(endpoint=url, access_token=token)) as client:
        return list(client.list_jobs(PARENT))


def jobs_per_key(ws) -> Counter:
    return Counter(j["labels"].get("reconciler-key") for j in live_jobs(ws.emulator.url, ws.emulator.token))


# ------------------------------------------------------------------ one failure among good changes


def test_one_rejected_create_fails_alone_and_a_later_apply_creates_only_it(ws):
    ws.job("alpha")
    ws.job("beta", epochs=0)  # valid for the manifest schema, refused by the service
    ws.job("gamma")
    assert ws.plan().code == 0  # nothing local objects to it

    first = ws.apply()
    assert first.code == 1
    assert "Apply finished with 1 failed change(s). Jobs: 2 created" in first.out
    assert "alpha: created projects/" in first.out and "gamma: created projects/" in first.out
    assert "beta: FAILED: INVALID_ARGUMENT (400)" in first.out
    (error,) = [line for line in first.err.splitlines() if line.startswith("Error: ")]
    assert error.startswith("Error: beta: create failed: INVALID_ARGUMENT (400): List of found errors:")
    # Google's own words, down to the field violation.
    assert "supervised_tuning_spec.hyper_parameters.epoch_count: epoch_count must be positive." in error
    assert f"POST {PARENT}/tuningJobs" in error
    assert jobs_per_key(ws) == {"alpha": 1, "gamma": 1}
    assert ws.entry("alpha")["job_name"] and ws.entry("gamma")["job_name"]  # durable despite the failure
    created = {k: ws.entry(k)["job_name"] for k in ("alpha", "gamma")}

    ws.job("beta", epochs=2)  # fixed
    plan = ws.plan()
    assert "Plan: 1 to create, 0 to replace, 0 to cancel, 0 to rebase." in plan.out
    second = ws.apply()
    assert second.code == 0, second.err
    assert "Apply complete! Jobs: 1 created, 0 replaced" in second.out
    assert "beta: created projects/" in second.out and "alpha: creat" not in second.out
    assert jobs_per_key(ws) == {"alpha": 1, "beta": 1, "gamma": 1}  # nothing duplicated
    assert {k: ws.entry(k)["job_name"] for k in ("alpha", "gamma")} == created
    assert ws.plan("--detailed-exitcode").code == 0


# ------------------------------------------------------------------ --max-creates-per-minute


def create_times(url: str, token: str, keys: set[str]) -> list[float]:
    return sorted(parse_rfc3339(j["createTime"]) for j in live_jobs(url, token)
                  if j["labels"].get("reconciler-key") in keys)


@pytest.mark.slow
def test_max_creates_per_minute_spaces_the_creates(ws, emulator_factory, monkeypatch):
    real = emulator_factory(job_duration=60)  # createTime from a real clock
    monkeypatch.setenv("RECONCILER_ENDPOINT", real.url)
    capped = {f"capped-{i}" for i in range(4)}
    for key in capped:
        ws.job(key)
    result = ws.apply("--max-creates-per-minute", "120")  # one per 0.5 s
    assert result.code == 0, result.err
    assert "Jobs: 4 created" in result.out
    times = create_times(real.url, real.token, capped)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert times[-1] - times[0] >= 1.4, gaps  # three gaps of ~0.5 s
    assert min(gaps) >= 0.4, gaps  # spaced evenly, not bunched
    assert times[-1] - times[0] < 5, gaps

    free = {f"free-{i}" for i in range(4)}  # the control: without a cap they go at once
    for key in free:
        ws.job(key)
    result = ws.apply()
    assert result.code == 0, result.err
    times = create_times(real.url, real.token, free)
    assert times[-1] - times[0] < 1.0, times


# ------------------------------------------------------------------ colours


def plan_on_terminal(ws, *extra: str, env: dict[str, str] | None = None) -> str:
    """`reconciler plan` in a subprocess whose stdout is a pseudo-terminal; what it printed."""
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    environ.update(RECONCILER_ENDPOINT=ws.emulator.url, RECONCILER_ACCESS_TOKEN=ws.emulator.token,
                   PYTHONPATH=str(ROOT), **(env or {}))
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "plan", str(ws.manifests), "--state", str(ws.state),
             "--project", PROJECT, "--location", LOCATION, *extra],
            stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=environ, cwd=ws.root)
        os.close(slave)
        slave = -1
        chunks: list[bytes] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=30)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert code == 0, err
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.slow
def test_plan_is_coloured_only_on_a_terminal(ws):
    ws.job("alpha")
    coloured = plan_on_terminal(ws)
    assert "\x1b[32m+\x1b[0m alpha" in coloured  # the create symbol in green
    assert "\x1b[1m# alpha\x1b[0m" in coloured and "\x1b[1mPlan: 1 to create" in coloured

    for plain in (plan_on_terminal(ws, "--no-color"), plan_on_terminal(ws, env={"NO_COLOR": "1"})):
        assert "\x1b[" not in plain
        assert "  + alpha" in plain and "Plan: 1 to create, 0 to replace, 0 to cancel, 0 to rebase." in plain

    piped = ws.run("plan", str(ws.manifests))  # no --no-color: stdout is simply not a terminal
    assert piped.code == 0, piped.err
    assert "\x1b[" not in piped.out and "  + alpha" in piped.out
    assert piped.out == plan_on_terminal(ws, "--no-color")  # the same text, colours aside
