"""What the benchmarks share: an emulator in its own process, manifests and state at scale,
child processes measured for wall time and peak RSS, and README sections the scripts write.

The emulator runs as a separate process (`python -m reconciler emulator`), so the code
under test and the server never compete for one interpreter's GIL; all traffic stays on
127.0.0.1.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
TOKEN = "emulator-token"
PROJECT = "bench-project"
LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"

# The spec every benchmark job has; `{n}` is not used so seeded jobs can share one object.
SPEC: dict[str, Any] = {
    "baseModel": "gemini-2.5-flash",
    "tunedModelDisplayName": "bench-model",
    "supervisedTuningSpec": {
        "trainingDatasetUri": "gs://bench-bucket/data/train.jsonl",
        "hyperParameters": {"epochCount": "3", "adapterSize": "ADAPTER_SIZE_FOUR"},
    },
    "labels": {"team": "bench"},
}


# --------------------------------------------------------------------------- emulator


@dataclass
class Emulator:
    url: str
    pid: int

    def admin(self):
        from reconciler.emulator.admin import EmulatorAdmin

        return EmulatorAdmin(self.url, TOKEN, timeout=300)


@contextmanager
def emulator(latency_ms: float = 0.0, *, seed: int = 0, job_duration: float = 3600.0,
             extra: Sequence[str] = ()) -> Iterator[Emulator]:
    """`reconciler emulator` on a free loopback port, stopped (by its pid) on exit."""
    cmd = [sys.executable, "-m", "reconciler", "emulator", "--host", "127.0.0.1", "--port", "0",
           "--latency-ms", str(latency_ms), "--seed", str(seed), "--job-duration", str(job_duration),
           "--token", TOKEN, *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"Listening on (http://127\.0\.0\.1:\d+)", line)
        if not match:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield Emulator(match.group(1), proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client_env(url: str) -> dict[str, str]:
    """Environment for a `reconciler` child process aimed at the emulator."""
    env = dict(os.environ)
    env.update({"RECONCILER_ENDPOINT": url, "RECONCILER_ACCESS_TOKEN": TOKEN,
                "GOOGLE_CLOUD_PROJECT": PROJECT, "GOOGLE_CLOUD_LOCATION": LOCATION,
                "NO_COLOR": "1"})
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(proxy, None)
    return env


def tuning_client(url: str, connections: int = 16):
    from reconciler.api.client import ClientOptions, TuningClient

    return TuningClient(ClientOptions(endpoint=url, access_token=TOKEN, max_connections=connections))


# --------------------------------------------------------------------------- inputs


def _block(value: Any, indent: int) -> str:
    """`value` as block-style YAML, the way people write manifests (strings quoted)."""
    pad = "  " * indent
    if isinstance(value, dict):
        return "".join(f"{pad}{k}:\n{_block(v, indent + 1)}" if isinstance(v, dict)
                       else f"{pad}{k}: {json.dumps(v)}\n" for k, v in value.items())
    return f"{pad}{json.dumps(value)}\n"


def manifest_document(key: str, spec: dict[str, Any]) -> str:
    doc = {"apiVersion": "tuning.reconciler/v1", "kind": "TuningJob",
           "metadata": {"name": key, "project": PROJECT, "location": LOCATION}, "spec": spec,
           "lifecycle": {"onSpecChange": "replace", "onFailure": "report"}}
    return _block(doc, 0)


def write_manifests(directory: Path, specs: dict[str, dict[str, Any]], per_file: int = 100) -> None:
    """One document per key, `per_file` documents per file."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = sorted(specs)
    for i in range(0, len(keys), per_file):
        chunk = keys[i:i + per_file]
        text = "---\n".join(manifest_document(k, specs[k]) for k in chunk)
        (directory / f"jobs-{i // per_file:04d}.yaml").write_text(text, encoding="utf-8")


def write_state(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """A state file (serial 1) holding `entries`: key -> StateEntry fields."""
    from reconciler.state.model import State, StateEntry, state_to_json

    state = State(serial=1)
    for key, fields in entries.items():
        entry = StateEntry(key=key, project=PROJECT, location=LOCATION, **fields)
        state.entries[entry.address] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(state_to_json(state), encoding="utf-8")


def seeded_key(n: int) -> str:
    """The key of seeded job n: the emulator's `{n}` label template gives `job-{n}`."""
    return f"job-{n}"


def seed_managed(admin, count: int, spec: dict[str, Any], state: str = "JOB_STATE_SUCCEEDED") -> list[str]:
    """Seed `count` jobs with our identity labels in one call; job i has key `seeded_key(i)`."""
    from reconciler.apischema.normalize import spec_hash
    from reconciler.model import KEY_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SPEC_LABEL

    labels = {**spec.get("labels", {}), MANAGED_BY_LABEL: MANAGED_BY_VALUE,
              KEY_LABEL: "job-{n}", SPEC_LABEL: spec_hash(spec)}
    body_spec = {k: v for k, v in spec.items() if k != "labels"}
    return admin.seed(PARENT, count=count, labels=labels, state=state, spec=body_spec)


# --------------------------------------------------------------------------- measuring


@dataclass
class ChildRun:
    returncode: int
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system, the child and the workers it waited for
    timed_out: bool = False


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path = ROOT,
                 stdin_text: str | None = None, timeout: float | None = None) -> ChildRun:
    """Run a child to completion; wall time and its own peak RSS (from wait4's rusage).
    After `timeout` seconds the child is killed (SIGKILL, by its pid) and `timed_out` set."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-child-{os.getpid()}-{time.monotonic_ns()}"
    with open(f"{out_path}.out", "w+") as out, open(f"{out_path}.err", "w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=err,
                                stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                                text=True)
        if stdin_text is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin_text)
            proc.stdin.close()
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            os.kill(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer is not None:
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        if timer is not None:
            timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    for suffix in (".out", ".err"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    # Linux reports ru_maxrss in KiB.
    return ChildRun(proc.returncode, seconds, usage.ru_maxrss / 1024, stdout, stderr,
                    usage.ru_utime + usage.ru_stime, killed.is_set())


# Runs the CLI with os.write counted per file: the bytes that land in $BENCH_STATE_DIR (the
# state store writes its journal, temp files and lock with os.write), and the process's
# whole write(2) total (wchar in /proc/self/io: files and pipes, not socket sends), both
# saved to $BENCH_IO_OUT when it is done.
_CLI_WRAPPER = """
import json, os, sys, threading
state_dir = os.path.realpath(os.environ.get("BENCH_STATE_DIR") or "/nonexistent") + os.sep
counted = [0]
lock = threading.Lock()
real_write = os.write
def counting_write(fd, data):
    n = real_write(fd, data)
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        path = ""
    if path.startswith(state_dir):
        with lock:
            counted[0] += n
    return n
os.write = counting_write
from reconciler.cli import main
try:
    code = main(sys.argv[1:])
finally:
    sys.stdout.flush()
    sys.stderr.flush()
    with open("/proc/self/io") as fh:
        io = dict(line.split(": ") for line in fh.read().splitlines())
    with open(os.environ["BENCH_IO_OUT"], "w") as fh:
        json.dump({"wchar": int(io["wchar"]), "state_dir": counted[0]}, fh)
sys.exit(code)
"""


@dataclass
class CliRun(ChildRun):
    state_dir_bytes: int = 0  # written into the state directory
    write_bytes: int = 0  # all write(2) bytes of the process (wchar), its stdout and stderr included


def run_cli(args: Sequence[str], url: str, state_dir: Path | None = None,
            stdin_text: str | None = None, timeout: float | None = None) -> CliRun:
    """`reconciler ARGS` in a child process aimed at the emulator, measured."""
    env = client_env(url)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if state_dir is not None:
        env["BENCH_STATE_DIR"] = str(state_dir)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-io-{os.getpid()}-{time.monotonic_ns()}"
    env["BENCH_IO_OUT"] = str(out)
    run = run_measured([sys.executable, "-c", _CLI_WRAPPER, *args], env=env, stdin_text=stdin_text,
                       timeout=timeout)
    try:
        io = json.loads(out.read_text()) if out.exists() else {"state_dir": 0, "wchar": 0}  # killed
    finally:
        out.unlink(missing_ok=True)
    return CliRun(**vars(run), state_dir_bytes=io["state_dir"], write_bytes=io["wchar"])


def slope_loglog(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) on log(x): 1.0 is linear, 2.0 quadratic."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    num = sum((a - mx) * (b - my) for a, b in zip(lx, ly))
    den = sum((a - mx) ** 2 for a in lx)
    return num / den


def dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- reporting


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gb": mem_gb,
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}"}


def machine_line() -> str:
    m = machine()
    return (f"{m['cpus']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, Python {m['python']}, {m['os']}; "
            f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def update_readme(section: str, markdown: str, path: Path | None = README) -> None:
    """Replace the text between `<!-- bench:SECTION -->` and `<!-- /bench:SECTION -->`
    (appending the pair at the end if missing). `path` None: do nothing (smoke runs)."""
    if path is None:
        return
    start, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{start}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + ("\n\n" if text.strip() else "") + block + "\n"
    path.write_text(text, encoding="utf-8")


def add_output_args(parser, quick_help: str = "small run for smoke tests") -> None:
    """--quick, --json and --readme, as every benchmark script takes them."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--readme", type=Path, default=None,
                        help="README to write the figures into (default: bench/README.md, none with --quick)")


def readme_for(args) -> Path | None:
    """Where a script writes its figures: --readme, else bench/README.md unless --quick."""
    return args.readme if args.readme is not None else (None if args.quick else README)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def emit(figures: dict[str, Any], as_json: bool, text: str) -> None:
    print(json.dumps(figures, indent=2) if as_json else text, flush=True)
