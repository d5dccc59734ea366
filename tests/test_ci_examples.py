"""The GitHub Actions examples in examples/ci: every `reconciler` command line in them is
accepted by the CLI's parser, actions are pinned, and authentication is keyless (WIF)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from reconciler.cli import build_parser

CI = Path(__file__).resolve().parent.parent / "examples" / "ci"
WORKFLOWS = sorted(CI.glob("*.yml"))
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&", "2>", "2>&1"}


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def reconciler_commands(script: str) -> list[list[str]]:
    """Each `reconciler ...` command of a shell script, as argv, up to the first operator."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        for start, word in enumerate(words):
            if word == "reconciler" and (start == 0 or words[start - 1] in SHELL_OPERATORS):
                argv = []
                for token in words[start + 1:]:
                    if token in SHELL_OPERATORS or set(token) <= set("|&;<>"):
                        break
                    argv.append(token)
                found.append(argv)
    return found


def all_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in WORKFLOWS:
        for step in steps(load(path)):
            for argv in reconciler_commands(step.get("run", "")):
                out.append((path.name, argv))
    return out


def test_there_are_the_three_workflows():
    assert {p.name for p in WORKFLOWS} == {"plan-on-pull-request.yml", "apply-on-merge.yml", "nightly-drift.yml"}


def test_command_extraction_stops_at_shell_operators():
    script = 'code=0\nreconciler drift m --format json > out.json || code=$?\nx && reconciler jobs --all | tee f\n'
    assert reconciler_commands(script) == [["drift", "m", "--format", "json"], ["jobs", "--all"]]


@pytest.mark.parametrize(("workflow", "argv"), all_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_reconciler_command_line_is_accepted_by_the_cli(workflow, argv, capsys):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{workflow}: `reconciler {' '.join(argv)}` is refused: {capsys.readouterr().err.strip()}")
    assert callable(args._run)


def test_each_workflow_runs_what_it_promises():
    commands = {name: [argv for n, argv in all_commands() if n == name] for name in (p.name for p in WORKFLOWS)}
    plan = commands["plan-on-pull-request.yml"]
    assert ["plan", "manifests", "--state", "$STATE", "--lock-timeout", "600", "--format", "markdown",
            "--detailed-exitcode"] in plan
    assert any(a[0] == "drift" and "markdown" in a for a in plan)
    assert any(a[0] == "apply" and "--auto-approve" in a for a in commands["apply-on-merge.yml"])
    assert any(a[0] == "drift" and "github" in a for a in commands["nightly-drift.yml"])

    triggers = {p.name: load(p)["on"] for p in WORKFLOWS}
    assert "pull_request" in triggers["plan-on-pull-request.yml"]
    assert triggers["apply-on-merge.yml"]["push"]["branches"] == ["main"]
    assert triggers["nightly-drift.yml"]["schedule"][0]["cron"]
    nightly = load(CI / "nightly-drift.yml")
    script = next(s["run"] for s in steps(nightly) if "drift" in s.get("run", ""))
    assert 'exit "$code"' in script  # drift (exit 2) fails the nightly job


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_auth_is_workload_identity_federation(path):
    text = path.read_text()
    workflow = load(path)
    uses = [s["uses"] for s in steps(workflow) if "uses" in s]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{ref} is not pinned to a commit SHA"
        assert re.search(re.escape(ref) + r" # v\d+\.\d+\.\d+", text), f"{ref} has no version comment"
    auth = next(s for s in steps(workflow) if s.get("uses", "").startswith("google-github-actions/auth@"))
    assert set(auth["with"]) == {"workload_identity_provider", "service_account"}  # no key, no credentials_json
    assert workflow["permissions"]["id-token"] == "write"
    assert "credentials_json" not in text and "GOOGLE_APPLICATION_CREDENTIALS:" not in text
    assert text.lstrip().startswith("#")  # commented


STATE_COMMANDS = {"plan", "apply", "drift", "jobs", "import", "state", "force-unlock"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_state_is_used_in_the_bucket_directly_not_copied_in_and_out(path):
    workflow = load(path)
    assert workflow["env"]["STATE"].startswith("gs://${{ vars.STATE_BUCKET }}/")
    assert workflow["env"]["STATE"].endswith(".json")
    uses_state = [argv for name, argv in all_commands() if name == path.name and argv[0] in STATE_COMMANDS]
    assert uses_state
    for argv in uses_state:
        assert argv[argv.index("--state") + 1] == "$STATE", argv
    text = path.read_text()
    assert "gcloud storage cp" not in text and "if-generation-match" not in text
