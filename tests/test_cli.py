import subprocess
import sys

import pytest

from reconciler import cli
from reconciler.errors import ReconcilerError


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


def test_every_subcommand_is_registered_and_has_help():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(cli.COMMANDS)


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "reconciler", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("reconciler ")
