"""`reconciler emulator` as a real subprocess on --port 0."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

PARENT = "projects/demo/locations/us-central1"
BODY = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": "gs://b/train.jsonl"}}


@contextmanager
def emulator_process(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.fullmatch(r"Listening on (http://127\.0\.0\.1:(\d+))\n", first)
        assert match, (first, process.stderr.read() if process.poll() is not None and process.stderr else "")
        yield match.group(1), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_serves_on_an_ephemeral_port_and_stops_cleanly_on_sigterm() -> None:
    with emulator_process("--token", "secret", "--job-duration", "0.2") as (url, process):
        headers = {"Authorization": "Bearer secret"}
        created = httpx.post(f"{url}/v1/{PARENT}/tuningJobs", json=BODY, headers=headers)
        assert created.status_code == 200, created.text
        assert created.json()["state"] == "JOB_STATE_PENDING"
        assert httpx.get(f"{url}/v1/{PARENT}/tuningJobs", headers={"Authorization": "Bearer nope"}).status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()


@pytest.mark.slow
def test_data_file_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "jobs.json"
    headers = {"Authorization": "Bearer emulator-token"}
    with emulator_process("--data", str(data)) as (url, _):
        name = httpx.post(f"{url}/v1/{PARENT}/tuningJobs", json=BODY, headers=headers).json()["name"]
    with emulator_process("--data", str(data)) as (url, _):
        job = httpx.get(f"{url}/v1/{name}", headers=headers)
        assert job.status_code == 200 and job.json()["name"] == name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--error-rate", "1.5"], "Error: emulator setting error_rate=1.5 is out of range"),
        (["--job-duration", "-1"], "Error: emulator setting job_duration=-1.0 is out of range"),
        (["--project-number", "nonsense"], "expected PROJECT_ID=NUMBER"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "emulator", "--port", "0", *args],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", "emulator", "--port", str(port)],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_data_file_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "jobs.json"
    data.write_text("{not json")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "emulator", "--port", "0", "--data", str(data)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert f"Error: {data}: cannot read emulator data" in result.stderr
    assert "Traceback" not in result.stderr
