"""Hostile input: fuzzed manifests through validate and plan, and malformed server answers
(served by a tiny local HTTP server on 127.0.0.1) that must give a clear error, never a plan."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from http_reply import reply
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import LOCATION, assert_no_traceback, cli, manifest, write_manifests

PROJECT = "hostile-p"
JOB = "projects/123456789012/locations/us-central1/tuningJobs/42"
LABELS = {"managed-by": "tuning-reconciler", "reconciler-key": "alpha", "reconciler-spec": "0" * 16}

# --- fuzzed manifests --------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["gemini-2.5-flash", "gs://bucket/x.jsonl", "3",
                                                           "TuningJob", "tuning.reconciler/v1", "replace"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)
FIELDS = ["apiVersion", "kind", "metadata", "metadata.name", "metadata.project", "metadata.location", "spec",
          "spec.baseModel", "spec.supervisedTuningSpec", "spec.supervisedTuningSpec.trainingDatasetUri",
          "spec.supervisedTuningSpec.hyperParameters", "spec.labels", "spec.tunedModelDisplayName",
          "lifecycle", "lifecycle.onSpecChange", "lifecycle.preventCancel", "spec.createTime"]
# The foundation issue's bad inputs, whole files.
BAD_FILES = [b"", b"just a scalar\n", b"- a\n- list\n", b"\xff\xfe\x00binary\x00", b"a:\n\tb: tab\n",
             b"a: 1\na: 2\n", b"a: &x [1]\nb: *x\n",
             b"a: &a [x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\n"
             b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e]\n",
             b"[" * 5000, b"apiVersion: other/v9\nkind: Nope\n", b"key: 'unterminated\n", b"--- !!python/object:os.system\n"]


def _mutated(path: str, value: object) -> str:
    doc = yaml.safe_load(manifest("alpha"))
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return yaml.safe_dump(doc, allow_unicode=True)


documents = st.one_of(
    st.builds(_mutated, st.sampled_from(FIELDS), values),
    values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.lists(st.sampled_from(list("ab:- \n\t[]{}&*!|>'\"#%@`\\,?") + ["---\n", "\x1b", "\x00", "\ud800",
                                                                    "apiVersion: ", "spec:\n  "]),
             max_size=40).map("".join),
)


def _check(run, allowed: tuple[int, ...] = (0, 1)) -> None:
    assert run.code in allowed, run.text
    assert_no_traceback(run.text)
    if run.code == 1:
        assert run.text.strip(), "exit 1 without a message"


@pytest.fixture
def fuzz_dir(tmp_path: Path) -> Path:
    (tmp_path / "m").mkdir()
    return tmp_path


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(documents, min_size=1, max_size=3))
def test_fuzzed_manifests_validate_without_traceback(fuzz_dir, capsys, docs):
    (fuzz_dir / "m" / "fuzz.yaml").write_text("\n---\n".join(docs), encoding="utf-8", errors="surrogatepass")
    _check(cli(capsys, "validate", str(fuzz_dir / "m"), "--project", PROJECT, "--location", LOCATION))
    _check(cli(capsys, "validate", str(fuzz_dir / "m"), "--format", "github"))


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(documents, min_size=1, max_size=2))
def test_fuzzed_manifests_plan_without_traceback(emulator, env_for, fuzz_dir, capsys, docs):
    env_for(emulator)
    (fuzz_dir / "m" / "fuzz.yaml").write_text("\n---\n".join(docs), encoding="utf-8", errors="surrogatepass")
    run = cli(capsys, "plan", str(fuzz_dir / "m"), "--state", str(fuzz_dir / "s.json"), "--project", PROJECT,
              "--location", LOCATION, "--no-color")
    _check(run)
    assert not emulator.backend.jobs  # plan never creates anything


@pytest.mark.parametrize("content", BAD_FILES, ids=range(len(BAD_FILES)))
def test_foundation_bad_inputs_through_validate_and_plan(emulator, env_for, tmp_path, capsys, content):
    env_for(emulator)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "bad.yaml").write_bytes(content)
    for argv in (["validate", str(tmp_path / "m")],
                 ["plan", str(tmp_path / "m"), "--state", str(tmp_path / "s.json"), "--no-color"]):
        run = cli(capsys, *argv, "--project", PROJECT, "--location", LOCATION)
        _check(run, allowed=(1,) if content.strip() else (0, 1))
        if run.code == 1:
            assert "bad.yaml" in run.text


# --- malformed server answers -----------------------------------------------------------


def _job(**overrides) -> dict:
    job = {"name": JOB, "state": "JOB_STATE_RUNNING", "labels": dict(LABELS),
           "createTime": "2026-01-01T00:00:00Z", "updateTime": "2026-01-01T00:00:00Z",
           "baseModel": "gemini-2.5-flash"}
    job.update(overrides)
    return {k: v for k, v in job.items() if v is not None}


def _body(obj) -> bytes:
    return json.dumps(obj).encode()


MALFORMED: dict[str, Callable[[], bytes]] = {
    "invalid-json": lambda: b'{"tuningJobs": [{"name": ',
    "html": lambda: b"<html><body>Service Unavailable</body></html>",
    "not-an-object": lambda: _body([_job()]),
    "jobs-not-a-list": lambda: _body({"tuningJobs": {"name": JOB}}),
    "job-not-an-object": lambda: _body({"tuningJobs": ["projects/1/locations/us-central1/tuningJobs/1"]}),
    "missing-name": lambda: _body({"tuningJobs": [_job(name=None)]}),
    "bad-name": lambda: _body({"tuningJobs": [_job(name="../../etc/passwd")]}),
    "missing-state": lambda: _body({"tuningJobs": [_job(state=None)]}),
    "unknown-state": lambda: _body({"tuningJobs": [_job(state="JOB_STATE_TELEPORTED")]}),
    "state-not-a-string": lambda: _body({"tuningJobs": [_job(state=4)]}),
    "labels-not-an-object": lambda: _body({"tuningJobs": [_job(labels=["managed-by"])]}),
    "label-not-a-string": lambda: _body({"tuningJobs": [_job(labels={**LABELS, "reconciler-key": 7})]}),
    "time-not-a-string": lambda: _body({"tuningJobs": [_job(createTime=12)]}),
    "token-not-a-string": lambda: _body({"tuningJobs": [_job()], "nextPageToken": {"a": 1}}),
    "huge-page": lambda: b'{"tuningJobs": [' + b",".join([_body(_job(name=f"{JOB}{i}")) for i in range(1)])
    + b"," + b'{"pad": "' + b"x" * (70 * 1024 * 1024) + b'"}]}',
}


class _Server:
    def __init__(self) -> None:
        self.answer: Callable[[], bytes] = lambda: _body({})
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests.append(self.path)
                reply(self, 200, outer.answer() if "/tuningJobs" in self.path else _body({}))

            do_POST = do_GET  # noqa: N815 - a create must never be reached; recorded if it is

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def bad_server() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_list_answers_give_a_clear_error_not_a_plan(bad_server, tmp_path, capsys, monkeypatch, case):
    monkeypatch.setenv("RECONCILER_ENDPOINT", bad_server.url)
    monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", "fuzz-token-123")
    write_manifests(tmp_path / "m", ["alpha"], project=PROJECT)
    bad_server.answer = MALFORMED[case]
    for fmt in ("text", "json"):
        run = cli(capsys, "plan", str(tmp_path / "m"), "--format", fmt, "--state", str(tmp_path / "s.json"),
                  "--location", LOCATION, "--no-color")
        assert run.code == 1, (case, run.text[:2000])
        assert_no_traceback(run.text)
        assert run.err.startswith("Error: ") and "tuningJobs" in run.err, (case, run.err[:2000])
        assert run.out == "", (case, run.out[:2000])  # no plan at all, not even a partial one
        assert len(run.err) < 2000  # a clear message, not a dump of the answer
    assert not any(p.startswith("/v1/") and p.endswith("/tuningJobs") and "filter" not in p
                   for p in bad_server.requests)
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("job", [_job(state="JOB_STATE_TELEPORTED"), _job(labels=["x"]), _job(name="jobs/1"),
                                 _job(updateTime=5)])
def test_malformed_get_and_create_answers_are_refused(bad_server, job):
    from reconciler.api.client import ClientOptions, TuningClient
    from reconciler.api.errors import MalformedResponseError

    bad_server.answer = lambda: _body(job)
    with TuningClient(ClientOptions(endpoint=bad_server.url, access_token="fuzz-token-123")) as client:
        with pytest.raises(MalformedResponseError, match=r"malformed answer to GET .*: job\."):
            client.get_job(JOB)
        with pytest.raises(MalformedResponseError, match=r"malformed answer to POST .*: job\."):
            client.create_job("projects/hostile-p/locations/us-central1", {"baseModel": "m"}, "rid-1")


def test_partial_responses_require_only_the_fields_they_select():
    from reconciler.api.answers import check_page as _check_page
    from reconciler.api.errors import MalformedResponseError

    page = {"tuningJobs": [{"labels": dict(LABELS)}]}
    assert _check_page(page, "tuningJobs", "x", "nextPageToken,tuningJobs(labels)") == page["tuningJobs"]
    with pytest.raises(MalformedResponseError, match=r"tuningJobs\[0\]\.state: missing"):
        _check_page({"tuningJobs": [_job(state=None)]}, "tuningJobs", "x", "nextPageToken,tuningJobs(name,state)")
    with pytest.raises(MalformedResponseError, match=r"\.state: unknown value"):
        _check_page({"tuningJobs": [{"state": "JOB_STATE_X"}]}, "tuningJobs", "x", "tuningJobs(labels)")


# --- explicit YAML tags ---------------------------------------------------------------------

CORE_TAGS = ["!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!str"]
# Tags no manifest field can mean, on a scalar, a mapping or a list.
ALIEN_TAGS = ["!!binary", "!!set", "!!omap", "!!pairs", "!!python/object:os.system", "!!python/name:os.system",
              "!custom", "!<tag:example.com,2024:x>", "!!merge"]
_tag_values = st.one_of(st.sampled_from(["abc", "", "0x", "0b", "0o", ":1", "1e", ".", "maybe", "yes", "~", "1_0",
                                         "0x1f", "1.5", "-", "+", "nan", "2026-13-45", "2026-01-01", "1:30", "0b102",
                                         "._", "1__", "0o9", "٣", "１"]),
                        st.text(alphabet="0123456789abefxob._:+-eE ", max_size=6))


def _tagged(field: str, tag: str, value: str) -> str:
    text = manifest("alpha")
    quoted = json.dumps(value)
    return text.replace("    hyperParameters:", f"    {field}: {tag} {quoted}\n    hyperParameters:")


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tag=st.sampled_from(CORE_TAGS), value=_tag_values, field=st.sampled_from(["x", "trainingDatasetUri"]))
def test_core_tags_with_any_value_give_positions_not_tracebacks(fuzz_dir, capsys, tag, value, field):
    """`!!int abc`, `!!int ""`, `!!bool maybe`, `!!float x` ...: a problem at file:line:col
    (never ValueError, IndexError or KeyError out of PyYAML's constructors)."""
    path = fuzz_dir / "m" / "tags.yaml"
    path.write_text(_tagged(field, tag, value), encoding="utf-8")
    run = cli(capsys, "validate", str(fuzz_dir / "m"), "--project", PROJECT, "--location", LOCATION)
    _check(run)
    if run.code == 1:
        assert f"{path}:9:" in run.out, run.text  # the line of the tagged value
    from reconciler.manifests.yaml_reader import parse_text

    parsed = parse_text(f"a: {tag} {json.dumps(value)}\n", "t.yaml")  # the reader alone never raises
    for problem in [p for d in parsed.documents for p in d.problems] + parsed.problems:
        assert (problem.line, problem.column) == (1, 4), problem


@pytest.mark.parametrize("tag", ALIEN_TAGS)
@pytest.mark.parametrize("where", ["labels", "value", "key"])
def test_tags_the_schema_cannot_mean_are_errors(emulator, env_for, tmp_path, capsys, tag, where):
    env_for(emulator)
    body = {"labels": f"  labels: {tag} {{team: a}}\n", "value": f"  description: {tag} x\n",
            "key": f"  labels: {{{tag} team: a}}\n"}[where]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "t.yaml").write_text(manifest("alpha") + body)
    for argv in (["validate", str(tmp_path / "m")],
                 ["plan", str(tmp_path / "m"), "--state", str(tmp_path / "s.json"), "--no-color"]):
        run = cli(capsys, *argv, "--project", PROJECT, "--location", LOCATION)
        assert run.code == 1, (tag, where, run.text)
        assert_no_traceback(run.text)
        assert f"{tmp_path / 'm' / 't.yaml'}:10:" in run.text and "tag" in run.text, run.text
    assert not emulator.backend.jobs


@pytest.mark.parametrize("text, value", [("!!int 12", 12), ("!!float 1", 1.0), ("!!bool yes", True),
                                         ("!!null ~", None), ("!!str 12", "12"), ("!!int 0x1f", 31),
                                         ("!!map {a: 1}", {"a": 1}), ("!!seq [1]", [1])])
def test_core_tags_with_proper_values_still_read(text, value):
    from reconciler.manifests.yaml_reader import parse_text

    parsed = parse_text(f"a: {text}\n", "t.yaml")
    assert parsed.documents[0].data == {"a": value} and not parsed.documents[0].problems and not parsed.problems


# --- JSON files the tool reads, nested past reason -------------------------------------------

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("which", ["state", "journal", "lock", "plan"])
def test_deeply_nested_json_files_are_clear_errors(emulator, env_for, tmp_path, capsys, which):
    from reconciler.state.model import StateEntry
    from reconciler.state.store import StateStore

    env_for(emulator)
    state = tmp_path / "state" / "default.json"
    store = StateStore(state)
    with store.lock("test"):
        store.load()
        store.record(StateEntry("alpha", PROJECT, LOCATION), f"{PROJECT}/{LOCATION}/alpha")
        store.commit()
    write_manifests(tmp_path / "m", ["alpha"], project=PROJECT)
    target = {"state": state, "journal": Path(f"{state}.journal"), "lock": Path(f"{state}.lock"),
              "plan": tmp_path / "p.plan"}[which]
    # (a bad last journal line is a torn write and ignored: here one is followed by a record)
    nested = {"journal": b'{"journal": 1, "lineage": "x", "serial": 1}\n' + DEEP_JSON + b'\n{"address": "a"}\n',
              "plan": b'{"kind": "tuning-reconciler-plan", "changes": ' + DEEP_JSON + b"}"}.get(which, DEEP_JSON)
    target.write_bytes(nested)
    argv = (["apply", str(target), "--state", str(state)] if which == "plan"
            else ["plan", str(tmp_path / "m"), "--state", str(state), "--location", LOCATION])
    run = cli(capsys, *argv)
    assert run.code == 1 and run.err.startswith("Error: "), run.text[:2000]
    assert_no_traceback(run.text)
    assert str(target) in run.err and "nested deeper than" in run.err, run.err[:2000]
    assert not emulator.backend.jobs
