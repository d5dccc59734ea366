"""The executor against a live emulator: Ctrl-C during apply stops promptly and leaves state
that the next apply completes without a duplicate.

No test here depends on the machine's speed: each waits for a condition (a job created, a
request on the wire, the workers gone), never for a fixed time."""

from __future__ import annotations

import _thread
import re
import threading
import time
from pathlib import Path

import pytest

from reconciler.apply.executor import INTERRUPT_GRACE
from reconciler.cli import main
from reconciler.model import KEY_LABEL, REQUEST_LABEL
from reconciler.state.store import StateStore

PROJECT, LOCATION = "interrupt-project", "us-central1"


def _manifests(directory: Path, keys: list[str]) -> Path:
    directory.mkdir()
    docs = [f"apiVersion: tuning.reconciler/v1\nkind: TuningJob\nmetadata:\n  name: {key}\nspec:\n"
            f"  baseModel: gemini-2.5-flash\n  supervisedTuningSpec:\n"
            f"    trainingDatasetUri: gs://bucket/{key}.jsonl\n" for key in keys]
    (directory / "jobs.yaml").write_text("---\n".join(docs))
    return directory


def _jobs(emulator) -> list[dict]:
    with emulator.backend.lock:
        return [job.resource() for job in emulator.backend.jobs.values()]


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Poll `condition` until it holds; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _apply_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("apply-") and t.is_alive()]


@pytest.fixture
def env(emulator_factory, monkeypatch):
    emulator = emulator_factory(virtual_clock=True, latency_ms=250)
    monkeypatch.setenv("RECONCILER_ENDPOINT", emulator.url)
    monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", emulator.token)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)
    return emulator


@pytest.mark.slow
def test_ctrl_c_during_apply_starts_nothing_more_and_the_next_apply_completes(env, tmp_path, capsys):
    keys = [f"job-{i:02d}" for i in range(40)]
    manifests = _manifests(tmp_path / "m", keys)
    state = tmp_path / "state" / "default.json"
    args = ["apply", str(manifests), "--auto-approve", "--no-color", "--state", str(state),
            "--project", PROJECT, "--location", LOCATION]
    seen: dict[str, float] = {}

    def press_ctrl_c() -> None:
        _wait_for(lambda: len(_jobs(env)) >= 2, "two jobs")
        seen["jobs"], seen["at"] = len(_jobs(env)), time.monotonic()
        _thread.interrupt_main()

    # One create per 1.5 s: four workers wait for the pacer, 34 changes wait in the queue.
    threading.Thread(target=press_ctrl_c, daemon=True).start()
    code = main([*args, "--parallelism", "4", "--max-creates-per-minute", "40"])
    returned = time.monotonic()
    out, err = capsys.readouterr()
    assert code == 130 and "Interrupted." in err, out + err
    # Within the documented grace for requests under way, not after the waiting workers' turns
    # (34 queued creates at one per 1.5 s).
    assert returned - seen["at"] < INTERRUPT_GRACE

    # At most the one create under way went on; no waiting or queued one was sent, then or
    # later: once every worker thread has ended, nothing more can be.
    _wait_for(lambda: not _apply_workers(), "the apply workers to end")
    created = len(_jobs(env))
    assert created <= seen["jobs"] + 1

    # The lock is released and state is consistent: every job is recorded, or its request id is
    # journaled for the next plan to adopt it.
    assert not Path(f"{state}.lock").exists()
    store = StateStore(state)
    with store.lock("test"):
        entries = {e.key: e for e in store.load().entries.values()}
    for job in _jobs(env):
        entry = entries[job["labels"][KEY_LABEL]]
        assert entry.job_name == job["name"] or entry.request_id == job["labels"][REQUEST_LABEL]

    # The next apply creates the rest, adopting what was not recorded, with no duplicate.
    assert main([*args, "--parallelism", "8"]) == 0, capsys.readouterr()
    assert "Apply complete!" in capsys.readouterr().out
    assert sorted(job["labels"][KEY_LABEL] for job in _jobs(env)) == keys


@pytest.mark.slow
def test_ctrl_c_waits_for_slow_requests_under_way_and_records_them(emulator_factory, monkeypatch, tmp_path, capsys):
    emulator = emulator_factory(virtual_clock=True, latency_ms=1500)  # every request takes 1.5 s
    monkeypatch.setenv("RECONCILER_ENDPOINT", emulator.url)
    monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", emulator.token)
    keys = [f"slow-{i}" for i in range(6)]
    state = tmp_path / "state" / "default.json"
    args = ["apply", str(_manifests(tmp_path / "m", keys)), "--auto-approve", "--no-color", "--state", str(state),
            "--project", PROJECT, "--location", LOCATION, "--parallelism", "2"]

    def press_ctrl_c() -> None:  # once a create is on the wire: the server holds it for 1.5 s
        _wait_for(lambda: emulator.app.stats.as_dict()["requests"].get("create", 0) >= 1, "a create request")
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    assert main(args) == 130
    out = capsys.readouterr().out
    waited = re.search(r"Interrupted: waiting up to 15s for (\d) request\(s\) under way to be recorded", out)
    assert waited, out
    # The creates under way finished and were recorded as jobs, not left as request ids only.
    jobs = _jobs(emulator)
    assert 1 <= len(jobs) <= 2  # at most one per worker: nothing new started after Ctrl-C
    store = StateStore(state)
    with store.lock("test"):
        recorded = {e.job_name for e in store.load().entries.values() if e.job_name}
    assert recorded == {job["name"] for job in jobs}


def _change(key: str, location: str, project: str = PROJECT):
    from reconciler.plan.model import Action, Change, Reason

    spec = {"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": f"gs://b/{key}.jsonl"}}
    return Change(address=f"{project}/{location}/{key}", key=key, project=project, location=location,
                  action=Action.CREATE, reason=Reason.NEW_KEY, detail="", after=spec)


def test_regions_take_turns_in_the_work_queue():
    from reconciler.apply.executor import _by_turns

    changes = [_change(f"a{i}", "us-central1") for i in range(3)] + [_change("b0", "europe-west4"),
                                                                     _change("c0", "asia-east1", "other")]
    assert [changes[i].key for i in _by_turns(changes)] == ["a0", "b0", "c0", "a1", "a2"]


def test_each_project_and_location_has_its_own_pacer(emulator, tmp_path):
    from reconciler.api.client import ClientOptions, TuningClient
    from reconciler.apply.executor import ApplyOptions, Executor
    from reconciler.plan.model import Plan
    from reconciler.state.model import State

    store = StateStore(tmp_path / "state.json")
    regions = [("us-central1", PROJECT), ("europe-west4", PROJECT), ("us-central1", "other-project")]
    plan = Plan(changes=[_change(f"k{i}", location, project) for i, (location, project) in enumerate(regions)])

    class Quiet:
        def start(self, *a): ...
        def finish(self, *a): ...
        def line(self, *a): ...
        def status(self, *a): ...

    with store.lock("test"), TuningClient(ClientOptions(endpoint=emulator.url, access_token=emulator.token)) as client:
        executor = Executor(client, store, store.load(), Quiet(), ApplyOptions(parallelism=3))
        outcomes = executor.run(plan)
        assert all(o.ok for o in outcomes), [o.message for o in outcomes]
        store.commit()
    assert set(executor._pacers) == {(project, location) for location, project in regions}
    assert len(_jobs(emulator)) == 3 and isinstance(store.load(), State)
