"""Secrets and access: a recognisable token never reaches output, logs, plan or state files;
state and plan files are 0600; plain http only to loopback; TLS always verified; the emulator
listens on loopback and wants a token."""

from __future__ import annotations

import json
import os
import re
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from http_reply import reply

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import EmulatorConfig as ServerConfig
from reconciler.emulator.server import start_emulator

from .conftest import LOCATION, ROOT, assert_no_traceback, cli, subprocess_env, write_manifests
from .servers import Answer, HostileServer, Request
from .servers import job as servers_job

TOKEN = "ya29.SECRET-canary-7f3c9e1d5b2a48c6"


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "reconciler", "-vv", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
def test_token_appears_in_no_output_log_plan_or_state_file(tmp_path):
    emulator = start_emulator(ServerConfig(token=TOKEN, virtual_clock=True))
    try:
        env = subprocess_env(emulator.url, TOKEN)
        common = ["--state", str(tmp_path / "state" / "default.json"), "--project", "secret-p",
                  "--location", LOCATION, "--no-color"]
        write_manifests(tmp_path / "m", ["alpha", "beta"])
        m = str(tmp_path / "m")
        transcript: list[tuple[list[str], int, str]] = []

        def run(*argv: str, env_: dict[str, str] = env) -> int:
            code, text = _run(list(argv), env_, tmp_path)
            transcript.append((list(argv), code, text))
            return code

        assert run("plan", m, "--out", str(tmp_path / "p.plan"), *common) == 0
        assert run("apply", str(tmp_path / "p.plan"), *common[:2]) == 0
        emulator.backend.set_state(next(iter(emulator.backend.jobs)), "JOB_STATE_CANCELLED")  # out of band
        write_manifests(tmp_path / "m", ["alpha", "beta"], epochs={"beta": 7})
        for fmt in ("text", "json", "markdown", "github"):
            assert run("drift", m, "--format", fmt, *common) == 2
        assert run("apply", m, "--auto-approve", "--wait", "--poll-interval", "0.05", "--wait-timeout", "0.2",
                   *common) in (0, 1)
        assert run("state", "list", "--state", common[1]) == 0
        # Error paths: a wrong token (the server says 401), the right token against a server
        # that echoes it back in its error, and a refused endpoint.
        assert run("plan", m, *common, env_=subprocess_env(emulator.url, TOKEN + "-wrong")) == 1
        echo = _EchoServer()
        try:
            assert run("plan", m, *common, env_=subprocess_env(echo.url, TOKEN)) == 1
            assert echo.seen_token  # the server really got it, and echoed it back
        finally:
            echo.close()
        assert run("plan", m, *common, env_=subprocess_env("http://192.0.2.1:80", TOKEN)) == 1

        for argv, code, text in transcript:
            assert TOKEN not in text, (argv, code)
            assert_no_traceback(text)
        assert any("DEBUG" in text for _, _, text in transcript)  # -vv really logged requests
        assert any("<redacted>" in text for argv, _, text in transcript)  # the echo was scrubbed
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert any(p.name == "default.json" for p in files) and any(p.suffix == ".plan" for p in files)
        for path in files:
            assert TOKEN.encode() not in path.read_bytes(), path
    finally:
        emulator.stop()


class _EchoServer:
    """Answers every request with a 400 whose message quotes the request's Authorization header."""

    def __init__(self) -> None:
        outer = self
        self.seen_token = False

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                header = self.headers.get("authorization", "")
                outer.seen_token |= TOKEN in header
                reply(self, 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                            "message": f"bad credential {header}"}})

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_state_plan_and_lock_files_are_0600_whatever_the_umask(emulator_factory, env_for, capsys, tmp_path):
    emulator = emulator_factory(virtual_clock=True)
    env_for(emulator)
    old = os.umask(0)  # a permissive umask must not leak into the files we create
    try:
        state = tmp_path / "state" / "default.json"
        common = ["--state", str(state), "--project", "mode-p", "--location", LOCATION, "--no-color"]
        write_manifests(tmp_path / "m", ["alpha"])
        assert cli(capsys, "plan", str(tmp_path / "m"), "--out", str(tmp_path / "saved.plan"), *common).code == 0
        assert cli(capsys, "apply", str(tmp_path / "saved.plan"), "--state", str(state)).code == 0
        write_manifests(tmp_path / "m", ["alpha", "beta"])
        assert cli(capsys, "apply", str(tmp_path / "m"), "--auto-approve", *common).code == 0
        from reconciler.state.store import StateStore

        store = StateStore(state)
        with store.lock("test"):
            store.load()
            store.record(None, "mode-p/us-central1/beta")
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.parent.iterdir()}
    finally:
        os.umask(old)
    assert set(modes) >= {"default.json", "default.json.backup", "default.json.lock", "default.json.journal"}
    assert all(mode == 0o600 for mode in modes.values()), modes
    assert stat.S_IMODE((tmp_path / "saved.plan").stat().st_mode) == 0o600


@pytest.mark.parametrize("endpoint", ["http://example.com", "http://10.0.0.8:8080", "http://[2001:db8::1]:80",
                                      "http://127.0.0.1.example.com", "http://localhost.evil.com:8080"])
def test_plain_http_is_refused_for_non_loopback_endpoints(tmp_path, capsys, monkeypatch, endpoint):
    monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", TOKEN)
    write_manifests(tmp_path / "m", ["alpha"])
    for how in ("flag", "env"):
        argv = ["plan", str(tmp_path / "m"), "--state", str(tmp_path / "s.json"), "--project", "p",
                "--location", LOCATION]
        if how == "flag":
            monkeypatch.delenv("RECONCILER_ENDPOINT", raising=False)
            argv += ["--endpoint", endpoint]
        else:
            monkeypatch.setenv("RECONCILER_ENDPOINT", endpoint)
        run = cli(capsys, *argv)
        assert run.code == 1 and "refusing plain http endpoint" in run.err, run.text
        assert TOKEN not in run.text


def test_tls_is_verified_even_on_loopback(tmp_path, capsys, monkeypatch):
    """A self-signed HTTPS server on 127.0.0.1: the client refuses it, no request is sent."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            requests.append(self.headers.get("authorization", ""))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        monkeypatch.setenv("RECONCILER_ENDPOINT", f"https://127.0.0.1:{httpd.server_address[1]}")
        monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", TOKEN)
        write_manifests(tmp_path / "m", ["alpha"])
        run = cli(capsys, "plan", str(tmp_path / "m"), "--state", str(tmp_path / "s.json"), "--project", "p",
                  "--location", LOCATION)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert run.code == 1 and "CERTIFICATE_VERIFY_FAILED" in run.err, run.text
    assert requests == []  # the token never left the client
    # And nothing in the package turns verification off.
    for source in (ROOT / "reconciler").rglob("*.py"):
        assert not re.search(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False", source.read_text()), source


def test_emulator_listens_on_loopback_and_requires_a_token(tmp_path):
    assert EmulatorConfig().host == "127.0.0.1" and EmulatorConfig().token
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "emulator", "--port", "0"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        match = re.match(r"Listening on (http://127\.0\.0\.1:(\d+))$", line.strip())
        assert match, line
        url = match.group(1)
        path = "/v1/projects/p/locations/us-central1/tuningJobs"
        assert httpx.get(url + path).status_code == 401  # no token
        assert httpx.get(url + path, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url + "/__emulator/stats").status_code == 401  # the admin API too
        assert httpx.get(url + path, headers={"authorization": "Bearer emulator-token"}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # --any-token still wants a bearer token.
    with start_emulator(ServerConfig(token=None)) as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")
        assert httpx.get(emulator.url + "/v1/projects/p/locations/us-central1/tuningJobs").status_code == 401


# --- whatever a server echoes back -----------------------------------------------------------

_ECHO_NAME = f"projects/secret-p/locations/{LOCATION}/tuningJobs/"


def _always(answer: Callable[[str], Answer]) -> Callable[[str], Callable[[Request], Answer]]:
    return lambda t: lambda request: answer(t)


def _error(http: int, **fields: Callable[[str], object]) -> Callable[[str], Callable[[Request], Answer]]:
    return _always(lambda t: Answer(http, {"error": {"code": http, "status": "INVALID_ARGUMENT",
                                                     "message": "no", **{k: f(t) for k, f in fields.items()}}}))


def _on_list(body: Callable[[str], dict], other: Callable[[str], Answer] = lambda t: Answer(200, {})
             ) -> Callable[[str], Callable[[Request], Answer]]:
    return lambda t: lambda request: (Answer(200, body(t)) if request.method == "GET"
                                      and request.path.endswith("/tuningJobs") else other(t))


def _escaped(token: str) -> str:
    """The token as JSON \\u escapes: the same string once parsed, other bytes on the wire."""
    return "".join(f"\\u{ord(c):04x}" for c in token)


ECHOES: dict[str, Callable[[str], Callable[[Request], Answer]]] = {
    "error-message": _error(400, message=lambda t: f"bad credential Bearer {t}"),
    "error-status": _error(400, status=lambda t: t),
    "error-details": _error(400, details=lambda t: [
        {"@type": "type.googleapis.com/google.rpc.BadRequest",
         "fieldViolations": [{"field": t, "description": f"token {t} is not valid"}]},
        {"@type": f"type.googleapis.com/{t}", "reason": t}]),
    "error-not-json": _always(lambda t: Answer(400, f"<html>denied for {t}</html>".encode())),
    "unauthenticated": _always(lambda t: Answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                                                "message": f"token {t} expired"}})),
    "page-token": _on_list(lambda t: {"tuningJobs": [], "nextPageToken": t}),
    "job-name": _on_list(lambda t: {"tuningJobs": [servers_job(_ECHO_NAME + t)]}),
    "job-state": _on_list(lambda t: {"tuningJobs": [servers_job(_ECHO_NAME + "1", state=f"JOB_STATE_{t}")]}),
    "job-fields": _on_list(lambda t: {"tuningJobs": [servers_job(
        _ECHO_NAME + "1", state="JOB_STATE_FAILED", tunedModelDisplayName=t, error={"code": 13, "message": t})]}),
    "create-answer": _on_list(lambda t: {}, lambda t: Answer(200, servers_job(_ECHO_NAME + t, description=t))),
}


def _raw(script: Callable[[Request], Answer], escape: bool) -> Callable[[Request], Answer]:
    """`script`, with the token in its JSON bodies spelt as \\u escapes when `escape`."""
    def answer(request: Request) -> Answer:
        a = script(request)
        if escape and not isinstance(a.body, bytes):
            a = Answer(a.status, json.dumps(a.body).replace(TOKEN, _escaped(TOKEN)).encode())
        return a
    return answer


@pytest.mark.parametrize("case", sorted(ECHOES))
def test_an_echoed_token_reaches_no_output_log_plan_or_state(tmp_path, capsys, monkeypatch, case):
    """Whatever a server sends back (an error's message, status or details, a page token, a
    job's name, state or fields, a create answer; also \\u-escaped), the tool's own token is
    in no stdout, stderr, -vv log line, plan or state file."""
    server = HostileServer()
    try:
        monkeypatch.setenv("RECONCILER_ENDPOINT", server.url)
        monkeypatch.setenv("RECONCILER_ACCESS_TOKEN", TOKEN)
        monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
        write_manifests(tmp_path / "m", ["alpha"])
        common = ["--state", str(tmp_path / "state.json"), "--project", "secret-p", "--location", LOCATION,
                  "--no-color"]
        runs = []
        for escape in (False, True):
            server.script = _raw(ECHOES[case](TOKEN), escape)
            for argv in (["plan", str(tmp_path / "m"), "--out", str(tmp_path / "p.plan"), *common],
                         ["apply", str(tmp_path / "m"), "--auto-approve", *common],
                         ["drift", str(tmp_path / "m"), "--format", "json", *common]):
                runs.append((argv, cli(capsys, "-vv", *argv)))
        assert server.requests and all(r.token == TOKEN for r in server.requests)  # it had the token to echo
    finally:
        server.close()
    for argv, run in runs:
        assert TOKEN not in run.text, (argv, run.text[-2000:])
        assert_no_traceback(run.text)
    assert any(run.code == 1 for _, run in runs)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
