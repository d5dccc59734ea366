import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.errors import ReconcilerError

ROOT = Path(__file__).resolve().parents[1]


def test_workspace_names_a_state_file_and_excludes_state():
    args = cli.build_parser().parse_args(["plan", "--workspace", "staging"])
    assert args.state == "state/staging.json"
    assert cli.build_parser().parse_args(["plan"]).state == "state/default.json"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["plan", "--workspace", "a", "--state", "b.json"])
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["plan", "--workspace", "../escape"])


@pytest.mark.parametrize("exc, code, message", [
    (ReconcilerError("state is locked"), 1, "Error: state is locked\n"),
    (KeyboardInterrupt(), 130, "Interrupted.\n"),
])
def test_one_error_handler_turns_expected_errors_into_messages(monkeypatch, capsys, exc, code, message):
    def boom(args):
        raise exc

    monkeypatch.setattr("reconciler.commands.show.run", boom)
    assert cli.main(["show", "x.json"]) == code
    assert capsys.readouterr().err == message


def _subcommands(parser) -> dict:
    return next(a for a in parser._actions if a.dest == "command").choices


def test_the_readme_documents_every_subcommand_and_no_other():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `reconciler ([a-z-]+)", readme, flags=re.M))
    assert documented == set(_subcommands(cli.build_parser()))
    for name, parser in _subcommands(cli.build_parser()).items():
        assert parser.description, name  # every command says what it does in its --help


def _project_modules_loaded(*argv: str) -> set[str]:
    code = ("import json, sys\nfrom reconciler.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nprint(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] == 'reconciler')), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT)
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def test_help_loads_only_the_parser_and_the_command_modules():
    loaded = _project_modules_loaded("--help")
    assert loaded == {"reconciler", "reconciler.cli", "reconciler.commands", "reconciler.commands.options",
                      "reconciler.defaults", "reconciler.errors",
                      *(f"reconciler.commands.{m.__name__.rsplit('.', 1)[1]}" for m in cli.COMMANDS.values())}


def test_validate_loads_neither_the_planner_nor_the_client_nor_state():
    loaded = _project_modules_loaded("validate", "manifests/examples")
    assert "reconciler.manifests.validation" in loaded  # it did validate
    stages = {m.split(".")[1] for m in loaded if m.count(".") >= 1}
    assert not stages & {"plan", "api", "apply", "state", "drift", "operations", "emulator"}, sorted(loaded)


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "reconciler", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("reconciler ")
