"""Progress output: ordinary lines everywhere, a status line redrawn in place on a terminal."""

from __future__ import annotations

import io

from reconciler.plan.model import Action
from reconciler.render.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_is_redrawn_in_place_on_a_terminal_and_lines_print_above_it():
    out = Terminal()
    with Progress(out, interval=3600) as progress:
        progress.status("Waiting for 2 job(s): 2 RUNNING [0s elapsed]")
        progress.status("Waiting for 2 job(s): 2 RUNNING [1s elapsed]")
        progress.line("alpha: SUCCEEDED")
        progress.status("Waiting for 1 job(s): 1 RUNNING [2s elapsed]")
    assert out.getvalue() == (
        "\r\x1b[KWaiting for 2 job(s): 2 RUNNING [0s elapsed]"
        "\r\x1b[KWaiting for 2 job(s): 2 RUNNING [1s elapsed]"
        "\r\x1b[Kalpha: SUCCEEDED\nWaiting for 2 job(s): 2 RUNNING [1s elapsed]"
        "\r\x1b[KWaiting for 1 job(s): 1 RUNNING [2s elapsed]\n")


def test_status_is_an_ordinary_line_when_not_a_terminal():
    out = io.StringIO()
    with Progress(out, interval=3600) as progress:
        progress.status("Waiting for 1 job(s): 1 RUNNING [0s elapsed]")
        progress.start("k\x1b[2J", Action.CREATE)
    assert out.getvalue() == "Waiting for 1 job(s): 1 RUNNING [0s elapsed]\nk?[2J: creating...\n"
