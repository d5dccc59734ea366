"""Keys, labels and display names carrying shell or Markdown metacharacters and terminal
escapes are rendered inert in every output format (text, json, markdown, github)."""

from __future__ import annotations

import json
import re

import pytest
from markdown_it import MarkdownIt

from reconciler.state.model import State, StateEntry
from reconciler.state.store import StateStore

from .conftest import LOCATION, assert_no_traceback, cli, manifest

PROJECT = "safe-p"
# Terminal escapes (clear screen, set title, bell), shell, Markdown/HTML, a mention, a
# workflow command on a line of its own.
HOSTILE = ("x\x1b[2J\x1b]0;pwned\x07 `rm -rf ~`$(id)|<!-- hidden --><img src=x> @octo-team "
           "[link](http://evil.example)\r\n::error file=x::injected")  # < 128: a valid display name
HOSTILE_KEY = "k\x1b[31m`$(id)`|<!--@all-->\n::warning::x"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all C0/C1 but \t and \n


@pytest.fixture
def hostile_ws(emulator_factory, env_for, capsys, tmp_path):
    """A manifest whose free-text fields are hostile, a state entry with a hostile key (as a
    hand-edited state file could hold), and a hand-made job with a hostile display name."""
    emulator = emulator_factory(virtual_clock=True)
    env_for(emulator)
    (tmp_path / "m").mkdir()
    extra = f"tunedModelDisplayName: {json.dumps(HOSTILE)}\ndescription: {json.dumps(HOSTILE)}\n"
    (tmp_path / "m" / "job.yaml").write_text(manifest("alpha", project=PROJECT, extra_spec=extra))
    state = tmp_path / "state" / "default.json"
    store = StateStore(state)
    with store.lock("test"):
        store.load()
        store.save(State(entries={f"{PROJECT}/{LOCATION}/{HOSTILE_KEY}": StateEntry(HOSTILE_KEY, PROJECT, LOCATION)}))
    emulator.backend.seed(f"projects/{PROJECT}/locations/{LOCATION}", 1, None, None,
                          {"baseModel": "gemini-2.5-flash", "tunedModelDisplayName": HOSTILE, "description": HOSTILE,
                           "supervisedTuningSpec": {"trainingDatasetUri": "gs://bucket/hand.jsonl"}})
    common = ["--state", str(state), "--project", PROJECT, "--location", LOCATION, "--no-color"]
    return tmp_path, common


def _assert_terminal_safe(text: str) -> None:
    assert not _CONTROL.search(text), repr(_CONTROL.search(text).group())


def _assert_markdown_safe(text: str) -> None:
    _assert_terminal_safe(text)
    assert "<!-- hidden -->" not in text and "<img" not in text and "<!--@all-->" not in text
    assert "&lt;!-- hidden --&gt;" in text or "&lt;!--@all--&gt;" in text
    assert "@octo-team" not in text and "@all" not in text.replace("@\u200ball", "")
    assert "[link](http://evil.example)" not in text
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    html = [t.content for t in tokens if t.type == "html_block"] + [
        c.content for t in tokens if t.children for c in t.children if c.type == "html_inline"]
    assert not any("hidden" in h or "img" in h or "@all" in h for h in html), html
    links = [c for t in tokens if t.children for c in t.children if c.type == "link_open"]
    assert not links
    # Every table row has as many cells as its header: no injected column breaks.
    widths: list[int] = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = len(re.split(r"(?<!\\)\|", line)) - 2
            if re.match(r"^\|(-+\|)+$", line):
                continue
            widths.append(cells)
        elif widths:
            assert len(set(widths)) == 1, widths
            widths = []


def _assert_github_safe(text: str, injection_quoted: bool = True) -> None:
    _assert_terminal_safe(text)
    lines = text.splitlines()
    for line in lines[:-1]:
        # One command per line: injected newlines arrive encoded (%0A), never as a new line.
        assert line.startswith(("::warning ", "::notice ", "::error ")), line
    if injection_quoted:  # (validate shortens long values, so the injection may be cut off)
        assert "%0A::error file=x::injected" in text or "%0A::warning::x" in text
    assert not any(line.startswith(("::error file=x", "::warning::x")) for line in lines)
    assert not lines[-1].startswith("::")


def test_plan_in_every_format(hostile_ws, capsys):
    root, common = hostile_ws
    text = cli(capsys, "plan", str(root / "m"), *common)
    assert text.code == 0, text.text
    _assert_terminal_safe(text.out)
    assert "rm -rf" in text.out and "forgotten" not in text.out  # the content is shown, just inert
    data = cli(capsys, "plan", str(root / "m"), "--json", *common)
    assert "\x1b" not in data.out
    parsed = json.loads(data.out)
    assert HOSTILE_KEY in {c["key"] for c in parsed["changes"]}  # JSON keeps the exact value, escaped
    (alpha,) = [c for c in parsed["changes"] if c["key"] == "alpha"]
    assert alpha["after"]["description"] == HOSTILE == alpha["after"]["tunedModelDisplayName"]
    md = cli(capsys, "plan", str(root / "m"), "--format", "markdown", *common)
    assert md.code == 0
    _assert_markdown_safe(md.out)


def test_apply_progress_is_terminal_safe(hostile_ws, capsys):
    root, common = hostile_ws
    run = cli(capsys, "apply", str(root / "m"), "--auto-approve", *common)
    assert run.code == 0, run.text
    _assert_terminal_safe(run.out + run.err)
    assert "forgetting..." in run.out


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "github"])
def test_drift_in_every_format(hostile_ws, capsys, fmt):
    root, common = hostile_ws
    run = cli(capsys, "drift", str(root / "m"), "--include-unmanaged", "--format", fmt, *common)
    assert run.code == 2, run.text
    assert_no_traceback(run.text)
    _assert_terminal_safe(run.err)
    if fmt == "json":
        report = json.loads(run.out)
        assert "\x1b" not in run.out
        assert HOSTILE in {i["display_name"] for i in report["items"]}
    elif fmt == "markdown":
        _assert_markdown_safe(run.out)
    elif fmt == "github":
        _assert_github_safe(run.out)
        assert "k?[31m" in run.out  # the hostile key is shown, but as inert data
    else:
        _assert_terminal_safe(run.out)


@pytest.mark.parametrize("fmt", ["text", "github"])
def test_validate_messages_are_terminal_safe(tmp_path, capsys, fmt):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "bad.yaml").write_text(
        f"apiVersion: {json.dumps(HOSTILE)}\nkind: TuningJob\nmetadata:\n  name: {json.dumps(HOSTILE_KEY)}\n")
    run = cli(capsys, "validate", str(tmp_path / "m"), "--format", fmt)
    assert run.code == 1
    if fmt == "github":
        _assert_github_safe(run.out, injection_quoted=False)
        assert "`rm -rf ~`$(id)" in run.out  # the value is quoted, only made inert
    else:
        _assert_terminal_safe(run.out)
        assert all(line.startswith(str(tmp_path)) for line in run.out.splitlines()[:-1])


# --- sizes of output: what one message quotes is bounded --------------------------------------

MAX_OUTPUT = 20_000  # a screenful or two, whatever the input


@pytest.mark.slow
def test_a_list_of_thousands_of_labelled_jobs_makes_a_short_problem(tmp_path, capsys, monkeypatch):
    """20,000 active jobs labelled for one key: the plan problem names the first few and says
    how many more, instead of every job name on one line (200,000 once printed 14 MB)."""
    from .servers import Answer, HostileServer, Request, job

    names = [f"projects/123456789012/locations/{LOCATION}/tuningJobs/{i}" for i in range(20_000)]
    pages = [names[i:i + 1000] for i in range(0, len(names), 1000)]

    def script(request: Request) -> Answer:
        page = int(request.query.get("pageToken", "0"))
        body: dict = {"tuningJobs": [job(n) for n in pages[page]]}
        if page + 1 < len(pages):
            body["nextPageToken"] = str(page + 1)
        return Answer(200, body)

    server = HostileServer(script)
    try:
        monkeypatch.setenv("RECONCILER_ENDPOINT", server.url)
        monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", "sizes-token")
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "job.yaml").write_text(manifest("alpha", project=PROJECT))
        for fmt in ("text", "json", "markdown"):
            run = cli(capsys, "plan", str(tmp_path / "m"), "--format", fmt, "--state", str(tmp_path / "s.json"),
                      "--location", LOCATION, "--no-color")
            assert run.code == 1, run.text[:2000]
            assert len(run.text) < MAX_OUTPUT, (fmt, len(run.text))
            assert "20000 active" in run.text
            if fmt != "markdown":  # (markdown cuts long table cells itself)
                assert "20000 active jobs carry this key's labels" in run.text and "and 19,990 more" in run.text
        drift = cli(capsys, "drift", str(tmp_path / "m"), "--format", "text", "--state", str(tmp_path / "s.json"),
                    "--location", LOCATION, "--no-color")
        # Drift lists each stray job on a line of its own (they are 20,000 findings), but the
        # blocked key's one line stays short.
        assert drift.code == 2 and "and 19,990 more" in drift.text
        assert max(map(len, drift.text.splitlines())) < 2_000
    finally:
        server.close()


def test_a_huge_unknown_key_in_a_manifest_makes_a_short_message(emulator, env_for, tmp_path, capsys):
    env_for(emulator)
    key = "k" * 5_000_000
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "job.yaml").write_text(manifest("alpha", project=PROJECT, extra_spec=f"? {key}\n: 1\n"))
    for argv in (["validate", str(tmp_path / "m")], ["validate", str(tmp_path / "m"), "--format", "json"],
                 ["validate", str(tmp_path / "m"), "--format", "github"],
                 ["plan", str(tmp_path / "m"), "--state", str(tmp_path / "s.json")]):
        run = cli(capsys, *argv, "--location", LOCATION)
        assert run.code == 1 and "unknown field `spec.kkkk" in run.text, run.text[:2000]
        assert len(run.text) < MAX_OUTPUT, (argv, len(run.text))
        assert "more characters" in run.text


def test_a_state_file_with_many_unknown_fields_makes_a_short_message(tmp_path, capsys):
    state = tmp_path / "s.json"
    state.write_text(json.dumps({"version": 1, "lineage": "l", "serial": 1, "entries": {},
                                 **{f"field-{i}-{'x' * 500}": i for i in range(10_000)}}))
    run = cli(capsys, "state", "list", "--state", str(state))
    assert run.code == 1 and "unknown field(s)" in run.err and "... and 9,990 more" in run.err, run.err[:2000]
    assert len(run.text) < MAX_OUTPUT


def test_a_server_error_with_a_huge_message_and_many_violations_is_cut(tmp_path, capsys, monkeypatch):
    from .servers import Answer, HostileServer

    violations = [{"field": f"spec.f{i}", "description": "bad " * 50} for i in range(5_000)]
    server = HostileServer(lambda request: Answer(400, {"error": {
        "code": 400, "status": "INVALID_ARGUMENT", "message": "m" * 1_000_000,
        "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}]}}))
    try:
        monkeypatch.setenv("RECONCILER_ENDPOINT", server.url)
        monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", "sizes-token")
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "job.yaml").write_text(manifest("alpha", project=PROJECT))
        run = cli(capsys, "plan", str(tmp_path / "m"), "--state", str(tmp_path / "s.json"), "--location", LOCATION)
    finally:
        server.close()
    assert run.code == 1 and run.err.startswith("Error: INVALID_ARGUMENT (400): mmm"), run.err[:500]
    assert "more characters" in run.err and "... and 4,990 more" in run.err
    assert len(run.text) < MAX_OUTPUT
