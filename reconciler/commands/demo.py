"""`reconciler demo`: the whole loop against an embedded emulator, in a temporary directory."""

from __future__ import annotations

import argparse
import os

from reconciler.defaults import DEFAULT_STATE_PATH

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

HELP = ("run validate, graph, plan, apply --wait (a three-stage tuning chain included), re-plan and a "
        "cascading replace against an embedded emulator")

# The example manifests of a source checkout (the demo does not run from an installed wheel).
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "manifests", "examples")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job-duration", type=float, default=6.0, metavar="SECONDS",
                        help="how long each emulated job runs (default: %(default)s)")
    parser.add_argument("--clean", action="store_true",
                        help="remove the working directory at the end (default: keep it to look at)")
    parser.add_argument("--no-color", action="store_true", help="never colour the output")


def _banner(text: str, color: bool) -> None:
    line = f"==> {text}"
    print(f"\n\x1b[1;36m{line}\x1b[0m" if color else f"\n{line}", flush=True)


def run(args: argparse.Namespace, cli: Callable[[list[str]], int]) -> int:
    """`cli`: the command-line entry point, run for each step as a user would type it."""
    import shutil
    import sys
    import tempfile
    import time
    from pathlib import Path

    from reconciler.emulator.server import EmulatorConfig, start_emulator
    from reconciler.errors import ReconcilerError
    from reconciler.render.style import use_color

    if not os.path.isdir(EXAMPLES):
        raise ReconcilerError(f"the demo runs from a source checkout: {EXAMPLES} not found "
                              "(clone the repository and run `make demo`)")
    color = use_color(sys.stdout, args.no_color)
    work = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
    shutil.copytree(EXAMPLES, work / "manifests")
    common = ["--state", DEFAULT_STATE_PATH]
    flags = [] if color else ["--no-color"]
    started = time.monotonic()
    config = EmulatorConfig(job_duration=args.job_duration, token="demo-token")
    saved_env = {k: os.environ.get(k) for k in ("RECONCILER_ENDPOINT", "RECONCILER_ACCESS_TOKEN")}
    saved_cwd = os.getcwd()
    with start_emulator(config) as emulator:
        os.environ["RECONCILER_ENDPOINT"] = emulator.url
        os.environ["RECONCILER_ACCESS_TOKEN"] = "demo-token"
        os.chdir(work)
        try:
            print(f"Emulator listening on {emulator.url}; working in {work}")

            def step(title: str, argv: list[str], ok: tuple[int, ...] = (0,)) -> int:
                _banner(f"reconciler {' '.join(argv)}   # {title}", color)
                code = cli(argv)
                if code not in ok:
                    raise ReconcilerError(f"demo step `{title}` exited {code}")
                return code

            step("validate the example manifests", ["validate", "manifests"])
            step("the job graph: a three-stage continuous-tuning chain", ["graph", "manifests"])
            step("plan: everything is new; the later stages wait for the earlier ones",
                 ["plan", *common, *flags, "--out", "tfplan.json"])
            step("apply exactly the saved plan; --wait starts each stage once the one before succeeded",
                 ["apply", "tfplan.json", *common, *flags, "--wait", "--poll-interval", "1"])
            step("plan again: nothing to do", ["plan", *common, *flags, "--detailed-exitcode"])
            edited = _edit_one_manifest(work / "manifests")
            step(f"{edited.name} edited: epochCount changed, so that job is replaced (and the jobs "
                 "built from it, once it has succeeded)",
                 ["plan", *common, *flags, "--detailed-exitcode"], ok=(2,))
            step("what state records", ["state", "list", *common])
        finally:
            os.chdir(saved_cwd)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    print(f"\nDemo finished in {time.monotonic() - started:.1f}s.")
    print(f"State file: {work / DEFAULT_STATE_PATH}\nSaved plan: {work / 'tfplan.json'}")
    if args.clean:
        shutil.rmtree(work, ignore_errors=True)
        print("(the working directory was removed: --clean)")
    else:
        print(f"Manifests, state and plan are kept in {work} (`rm -rf {work}` when done).")
    return 0


def _edit_one_manifest(directory: Path) -> Path:
    """Bump epochCount in the first manifest that sets one (a plain text edit, as a user would)."""
    import re

    for path in sorted(directory.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        match = re.search(r'epochCount:\s*"?(\d+)"?', text)
        if match:
            new = text[: match.start()] + f'epochCount: "{int(match.group(1)) + 1}"' + text[match.end():]
            path.write_text(new, encoding="utf-8")
            return path
    raise FileNotFoundError("no example manifest sets epochCount")
