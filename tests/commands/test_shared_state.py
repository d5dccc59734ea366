"""Shared state through the CLI: plan and apply on `gs://` (fake-gcs-server), workspaces under a
prefix, `state pull | push | migrate`, `workspace list | show | delete`, and force-unlock of a
Cloud Storage lock, all against the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.state.model import State, StateEntry, state_from_json, state_to_json

PROJECT, LOCATION = "shared-p", "us-central1"

CRASH = r"""
import os, sys
from reconciler.state.backend import open_backend
cm = open_backend(sys.argv[1]).lock("apply")
print(cm.__enter__().id, flush=True)
os._exit(0)
"""


def manifests(directory: Path, keys: list[str], epochs: int = 3) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    docs = [f"apiVersion: tuning.reconciler/v1\nkind: TuningJob\nmetadata:\n  name: {k}\n"
            f"spec:\n  baseModel: gemini-2.5-flash\n  supervisedTuningSpec:\n"
            f"    trainingDatasetUri: gs://data/{k}.jsonl\n    hyperParameters: {{epochCount: \"{epochs}\"}}\n"
            for k in keys]
    (directory / "jobs.yaml").write_text("---\n".join(docs))
    return directory


@pytest.fixture
def cli(capsys, emulator, monkeypatch, tmp_path, gcs):
    monkeypatch.setenv("RECONCILER_ENDPOINT", emulator.url)
    monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", emulator.token)
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "RECONCILER_STATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def target() -> list[str]:
    return ["--project", PROJECT, "--location", LOCATION, "--no-color"]


def stored(gcs, name: str) -> dict | None:
    blob = gcs.bucket().get_blob(name)
    return json.loads(blob.download_as_bytes()) if blob is not None else None


def test_plan_and_apply_on_a_gs_state(cli, gcs, tmp_path):
    m = manifests(tmp_path / "m", ["a", "b", "c"])
    url = gcs.url("team/default.json")
    code, out, err = cli("apply", str(m), "--auto-approve", "--state", url, *target())
    assert code == 0, err
    state = stored(gcs, "team/default.json")
    assert sorted(e["key"] for e in state["entries"].values()) == ["a", "b", "c"]
    assert all(e["job_name"] for e in state["entries"].values())
    code, out, err = cli("plan", str(m), "--detailed-exitcode", "--state", url, *target())
    assert code == 0 and "No changes" in out, out + err
    code, out, _ = cli("state", "list", "--state", url)
    assert code == 0 and len(out.splitlines()) == 4
    code, out, _ = cli("jobs", "--state", url, "--format", "json", "--no-color")
    assert code == 0 and len(json.loads(out)["jobs"]) == 3


def test_drift_and_import_on_a_gs_state(cli, gcs, tmp_path, admin):
    m = manifests(tmp_path / "m", ["have", "byhand"])
    url = gcs.url("team/default.json")
    assert cli("apply", str(m), "--auto-approve", "--target", "have", "--state", url, *target())[0] == 0
    (name,) = admin.seed(f"projects/{PROJECT}/locations/{LOCATION}", count=1, state="JOB_STATE_RUNNING",
                         spec={"baseModel": "gemini-2.5-flash",
                               "supervisedTuningSpec": {"trainingDatasetUri": "gs://data/byhand.jsonl"}})
    code, out, err = cli("import", "byhand", name, str(m), "--state", url, *target()[:-1])
    assert code == 0, err
    assert stored(gcs, "team/default.json")["entries"][f"{PROJECT}/{LOCATION}/byhand"]["imported"] is True
    code, out, err = cli("drift", str(m), "--state", url, "--format", "json", *target())
    assert code in (0, 2) and json.loads(out)["summary"], err


def test_workspaces_under_a_gs_prefix_from_the_environment(cli, gcs, tmp_path, monkeypatch):
    m = manifests(tmp_path / "m", ["w"])
    monkeypatch.setenv("RECONCILER_STATE", gcs.url("envs/"))
    assert cli("apply", str(m), "--auto-approve", "--workspace", "staging", *target())[0] == 0
    assert cli("apply", str(m), "--auto-approve", *target())[0] == 0  # the default workspace
    assert stored(gcs, "envs/staging.json") and stored(gcs, "envs/default.json")
    code, out, _ = cli("workspace", "list")
    assert code == 0 and out.splitlines() == ["* default", "  staging"]
    code, out, _ = cli("workspace", "list", "--workspace", "staging")
    assert out.splitlines() == ["  default", "* staging"]
    code, out, _ = cli("workspace", "show", "--workspace", "staging")
    assert code == 0 and "envs/staging.json" in out and "keys       1" in out and "not locked" in out


def test_workspace_delete_never_default_and_tracked_ones_only_with_force(cli, gcs, tmp_path):
    m = manifests(tmp_path / "m", ["d"])
    prefix = gcs.url("ws/")
    assert cli("apply", str(m), "--auto-approve", "--state", prefix, "--workspace", "dev", *target())[0] == 0
    code, _, err = cli("workspace", "delete", "default", "--state", prefix)
    assert code == 1 and "default workspace cannot be deleted" in err
    code, _, err = cli("workspace", "delete", "dev", "--state", prefix)
    assert code == 1 and "still tracks 1 key" in err and "--force" in err and stored(gcs, "ws/dev.json")
    code, out, err = cli("workspace", "delete", "dev", "--state", prefix, "--force")
    assert code == 0, err
    assert stored(gcs, "ws/dev.json") is None and gcs.bucket().get_blob("ws/dev.json.lock") is None
    code, _, err = cli("workspace", "delete", "nope", "--state", prefix)
    assert code == 1 and "does not exist" in err


def test_workspace_list_and_delete_of_local_states(cli, tmp_path):
    root = tmp_path / "envs"
    for name in ("default", "a", "b"):
        state = State(entries={} if name != "b" else {"p/l/k": StateEntry(key="k", project="p", location="l")})
        (root).mkdir(exist_ok=True)
        (root / f"{name}.json").write_text(state_to_json(state))
    code, out, _ = cli("workspace", "list", "--state", f"{root}/")
    assert out.splitlines() == ["  a", "  b", "* default"]
    assert cli("workspace", "delete", "a", "--state", f"{root}/")[0] == 0 and not (root / "a.json").exists()
    assert cli("workspace", "delete", "b", "--state", f"{root}/")[0] == 1 and (root / "b.json").exists()


def test_state_pull_push_and_their_refusals(cli, gcs, tmp_path):
    m = manifests(tmp_path / "m", ["p1", "p2"])
    url = gcs.url("team/default.json")
    assert cli("apply", str(m), "--auto-approve", "--state", url, *target())[0] == 0
    code, out, _ = cli("state", "pull", "--state", url)
    pulled = state_from_json(out, "stdout")
    assert code == 0 and len(pulled.entries) == 2
    copy = tmp_path / "copy.json"
    copy.write_text(out)
    code, out, _ = cli("state", "push", str(copy), "--state", url)
    assert code == 0 and "nothing pushed" in out

    def variant(**change) -> Path:
        data = json.loads(copy.read_text())
        data.update(change)
        path = tmp_path / f"v{len(list(tmp_path.glob('v*.json')))}.json"
        path.write_text(json.dumps(data))
        return path

    one = dict(json.loads(copy.read_text())["entries"])
    one.pop(next(iter(one)))
    for bad, reason in ((variant(lineage="00000000-0000-0000-0000-000000000001"), "another state"),
                        (variant(serial=pulled.serial - 1), "older"),
                        (variant(entries=one), "other content")):
        code, _, err = cli("state", "push", str(bad), "--state", url)
        assert code == 1 and reason in err and "--force" in err, err
        assert stored(gcs, "team/default.json")["serial"] == pulled.serial  # untouched
    newer = variant(serial=pulled.serial + 5, entries=one)
    code, out, err = cli("state", "push", str(newer), "--state", url)
    assert code == 0, err
    assert stored(gcs, "team/default.json")["serial"] == pulled.serial + 5
    forced = variant(lineage="00000000-0000-0000-0000-000000000002")
    code, out, err = cli("state", "push", str(forced), "--state", url, "--force")
    assert code == 0 and "--force" in err
    after = stored(gcs, "team/default.json")
    assert after["lineage"].endswith("0002") and after["serial"] == pulled.serial + 6  # moves on
    code, _, err = cli("state", "pull", "--state", gcs.url("team/none.json"))
    assert code == 1 and "no state at" in err


def test_state_migrate_local_to_gs_and_back(cli, gcs, tmp_path):
    m = manifests(tmp_path / "m", ["mig"])
    local = tmp_path / "state" / "default.json"
    assert cli("apply", str(m), "--auto-approve", "--state", str(local), *target())[0] == 0
    url = gcs.url("migrated/default.json")
    code, out, err = cli("state", "migrate", "--state", str(local), "--to", url)
    assert code == 0 and "read back and identical" in out, err
    assert stored(gcs, "migrated/default.json") == json.loads(local.read_text())
    assert gcs.bucket().get_blob("migrated/default.json.lock") is None and not Path(f"{local}.lock").exists()
    code, out, _ = cli("plan", str(m), "--detailed-exitcode", "--state", url, *target())
    assert code == 0 and "No changes" in out
    code, out, _ = cli("state", "migrate", "--state", str(local), "--to", url)  # again: already there
    assert code == 0 and "Already there" in out
    back = tmp_path / "back" / "default.json"
    assert cli("state", "migrate", "--state", url, "--to", str(back))[0] == 0
    assert json.loads(back.read_text()) == json.loads(local.read_text())
    other = manifests(tmp_path / "m2", ["other"])
    assert cli("apply", str(other), "--auto-approve", "--state", gcs.url("taken.json"), *target())[0] == 0
    code, _, err = cli("state", "migrate", "--state", str(local), "--to", gcs.url("taken.json"))
    assert code == 1 and "already holds a state" in err


def test_a_stale_gs_lock_is_reported_and_force_unlocked(cli, gcs, tmp_path):
    url = gcs.url("team/default.json")
    proc = subprocess.run([sys.executable, "-c", CRASH, url], capture_output=True, text=True, timeout=60,
                          check=True)
    lock_id = proc.stdout.strip()
    m = manifests(tmp_path / "m", ["z"])
    code, _, err = cli("plan", str(m), "--state", url, *target())
    assert code == 1 and lock_id in err and "no longer running" in err
    assert f"reconciler force-unlock {lock_id} --state {url}" in err
    code, _, err = cli("force-unlock", "999", "--force", "--state", url)
    assert code == 1 and "does not match" in err
    code, out, err = cli("force-unlock", lock_id, "--force", "--state", url)
    assert code == 0, err
    assert gcs.bucket().get_blob("team/default.json.lock") is None
    assert cli("plan", str(m), "--state", url, *target())[0] == 0


def test_a_bad_gs_location_is_a_clear_error(cli, tmp_path):
    m = manifests(tmp_path / "m", ["x"])
    code, _, err = cli("plan", str(m), "--state", "gs://no-such-bucket-xyz/s.json", *target())
    assert code == 1 and "bucket no-such-bucket-xyz does not exist" in err and "Traceback" not in err
