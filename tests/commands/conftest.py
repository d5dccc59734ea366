"""A workspace for end-to-end CLI tests: manifests in tmp_path, state beside them, the
emulator's URL and token in the environment, and `run(...)` calling the real CLI in-process."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.cli import main

PROJECT, LOCATION = "demo-project", "us-central1"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Workspace:
    root: Path
    capsys: pytest.CaptureFixture
    emulator: object
    admin: object
    manifests: Path = field(init=False)
    state: Path = field(init=False)

    def __post_init__(self) -> None:
        self.manifests = self.root / "manifests"
        self.manifests.mkdir()
        self.state = self.root / "state" / "default.json"

    def write(self, name: str, text: str) -> Path:
        path = self.manifests / name
        path.write_text(textwrap.dedent(text))
        return path

    def job(self, key: str, epochs: int = 3, extra_spec: str = "", lifecycle: str = "",
            dataset: str = "gs://bucket/train.jsonl", name: str | None = None) -> Path:
        lc = f"lifecycle:\n{textwrap.indent(textwrap.dedent(lifecycle), '  ')}" if lifecycle else ""
        body = (f"apiVersion: tuning.reconciler/v1\nkind: TuningJob\nmetadata:\n  name: {key}\n"
                f"spec:\n  baseModel: gemini-2.5-flash\n  supervisedTuningSpec:\n"
                f"    trainingDatasetUri: {dataset}\n    hyperParameters: {{epochCount: \"{epochs}\"}}\n"
                f"{textwrap.indent(textwrap.dedent(extra_spec), '  ')}{lc}")
        path = self.manifests / (name or f"{key}.yaml")
        path.write_text(body)
        return path

    def run(self, *argv: str, state: bool = True) -> Result:
        self.capsys.readouterr()
        args = list(argv)
        if state:
            args += ["--state", str(self.state), "--project", PROJECT, "--location", LOCATION]
        code = main(args)
        out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def plan(self, *extra: str) -> Result:
        return self.run("plan", str(self.manifests), "--no-color", *extra)

    def apply(self, *extra: str) -> Result:
        return self.run("apply", str(self.manifests), "--no-color", "--auto-approve", *extra)

    def plan_json(self, *extra: str) -> dict:
        result = self.plan("--json", *extra)
        assert result.code == 0, result.err
        return json.loads(result.out)

    def state_json(self) -> dict:
        return json.loads(self.state.read_text())

    def entry(self, key: str) -> dict:
        return self.state_json()["entries"][f"{PROJECT}/{LOCATION}/{key}"]


@pytest.fixture
def ws(tmp_path, capsys, emulator, admin, monkeypatch) -> Workspace:
    monkeypatch.setenv("RECONCILER_ENDPOINT", emulator.url)
    monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", emulator.token)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)
    return Workspace(tmp_path, capsys, emulator, admin)
