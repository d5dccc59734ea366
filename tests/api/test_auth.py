"""Credentials: static tokens for the emulator, Google ADC (refresh, quota project) over real HTTP.

The ADC tests use a real service-account key file whose `token_uri` points at a small OAuth
token server on 127.0.0.1, so google-auth's own refresh flow runs without leaving the host.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from http_reply import reply

from reconciler.api.auth import (
    DEFAULT_EMULATOR_TOKEN,
    ENV_ACCESS_TOKEN,
    QUOTA_PROJECT_HEADER,
    AuthError,
    GoogleCredentials,
    StaticToken,
    credentials_for,
)
from reconciler.api.client import USER_AGENT, ClientOptions, TuningClient
from reconciler.api.errors import ApiError, UnauthenticatedError
from reconciler.errors import ConfigError, ReconcilerError

JOB = "projects/p/locations/us-central1/tuningJobs/42"

Handler = Callable[[BaseHTTPRequestHandler], tuple[int, dict]]


class LocalServer:
    """A tiny real HTTP server on 127.0.0.1 that records each request's path and headers."""

    def __init__(self, respond: Handler) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                reply(self, *respond(self))

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def token_server(expires_in: int) -> LocalServer:
    """An OAuth token endpoint that hands out tok-1, tok-2, ... with the given lifetime."""
    issued = iter(range(1, 1000))

    def respond(_: BaseHTTPRequestHandler) -> tuple[int, dict]:
        return 200, {"access_token": f"tok-{next(issued)}", "expires_in": expires_in, "token_type": "Bearer"}

    return LocalServer(respond)


@pytest.fixture(scope="module")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def write_adc_file(tmp_path: Path, pem: str, token_uri: str) -> Path:
    info = {
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "reconciler@my-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(info))
    return path


@pytest.fixture
def servers() -> Iterator[list[LocalServer]]:
    started: list[LocalServer] = []
    yield started
    for server in started:
        server.close()


def use_adc(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT", raising=False)


# --------------------------------------------------------------------------- static tokens


def test_static_token_headers_and_repr() -> None:
    token = StaticToken("s3cret-value")
    assert token.headers() == {"authorization": "Bearer s3cret-value"}
    assert "s3cret" not in repr(token)
    assert token.invalidate() is False  # the same token would be rejected again


@pytest.mark.parametrize("bad", ["", "two words", "line\nbreak", "tab\t"])
def test_static_token_rejects_header_injection(bad: str) -> None:
    with pytest.raises(ConfigError, match="access token"):
        StaticToken(bad)


def test_explicit_token_wins() -> None:
    creds = credentials_for("https://us-central1-aiplatform.googleapis.com", access_token="explicit")
    assert creds.headers() == {"authorization": "Bearer explicit"}


def test_emulator_endpoint_uses_env_token_or_default() -> None:
    creds = credentials_for("http://127.0.0.1:8080", env={ENV_ACCESS_TOKEN: "from-env"})
    assert creds.headers()["authorization"] == "Bearer from-env"
    creds = credentials_for("http://127.0.0.1:8080", env={})
    assert creds.headers()["authorization"] == f"Bearer {DEFAULT_EMULATOR_TOKEN}"


def test_google_endpoint_never_gets_the_emulator_token() -> None:
    for endpoint in (None, "https://europe-west4-aiplatform.googleapis.com"):
        creds = credentials_for(endpoint, env={ENV_ACCESS_TOKEN: "from-env"})
        assert isinstance(creds, GoogleCredentials)


# --------------------------------------------------------------------------- ADC


def test_missing_adc_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_adc(monkeypatch, tmp_path / "does-not-exist.json")
    with pytest.raises(ConfigError, match="no Google credentials found.*application-default login"):
        GoogleCredentials().headers()


def test_adc_token_is_cached_until_expiry(monkeypatch, tmp_path, private_key_pem, servers) -> None:
    tokens = token_server(expires_in=3600)
    servers.append(tokens)
    use_adc(monkeypatch, write_adc_file(tmp_path, private_key_pem, f"{tokens.url}/token"))
    creds = GoogleCredentials()
    assert creds.headers()["authorization"] == "Bearer tok-1"
    assert creds.headers()["authorization"] == "Bearer tok-1"
    assert len(tokens.requests) == 1
    # The JWT-bearer grant was asked for the cloud-platform scope.
    assert tokens.requests[0][0] == "POST"
    assert "tok-1" not in repr(creds)


def test_adc_refreshes_an_expiring_token(monkeypatch, tmp_path, private_key_pem, servers) -> None:
    # google-auth refreshes tokens within ~4 minutes of expiry: a 60 s token is always stale.
    tokens = token_server(expires_in=60)
    servers.append(tokens)
    use_adc(monkeypatch, write_adc_file(tmp_path, private_key_pem, f"{tokens.url}/token"))
    creds = GoogleCredentials()
    assert creds.headers()["authorization"] == "Bearer tok-1"
    assert creds.headers()["authorization"] == "Bearer tok-2"
    assert len(tokens.requests) == 2


def test_adc_refresh_failure_is_an_auth_error(monkeypatch, tmp_path, private_key_pem, servers) -> None:
    denied = LocalServer(lambda _: (400, {"error": "invalid_grant", "error_description": "key revoked"}))
    servers.append(denied)
    use_adc(monkeypatch, write_adc_file(tmp_path, private_key_pem, f"{denied.url}/token"))
    with pytest.raises(AuthError, match="could not obtain a Google access token.*invalid_grant"):
        GoogleCredentials().headers()


def test_quota_project_and_user_agent_reach_the_api(monkeypatch, tmp_path, private_key_pem, servers) -> None:
    tokens = token_server(expires_in=3600)
    api = LocalServer(lambda h: (200, {"name": JOB, "state": "JOB_STATE_RUNNING"}))
    servers.extend([tokens, api])
    use_adc(monkeypatch, write_adc_file(tmp_path, private_key_pem, f"{tokens.url}/token"))
    # Service-account keys carry no quota project: it comes from the environment (or, for
    # user credentials, from the ADC file; see the next test).
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "billing-project")
    with TuningClient(ClientOptions(endpoint=api.url), credentials=GoogleCredentials()) as client:
        assert client.get_job(JOB)["state"] == "JOB_STATE_RUNNING"
    method, path, headers = api.requests[0]
    assert (method, path) == ("GET", f"/v1/{JOB}")
    assert headers["authorization"] == "Bearer tok-1"
    assert headers[QUOTA_PROJECT_HEADER] == "billing-project"
    assert headers["user-agent"] == USER_AGENT


def test_quota_project_of_user_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """`gcloud auth application-default set-quota-project` stores it in user credentials."""
    from google.oauth2.credentials import Credentials as UserCredentials

    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT", raising=False)
    user = UserCredentials(token="user-token", expiry=datetime.now(timezone.utc).replace(tzinfo=None)
                           + timedelta(hours=1), quota_project_id="user-quota")
    headers = GoogleCredentials(user).headers()
    assert headers == {"authorization": "Bearer user-token", QUOTA_PROJECT_HEADER: "user-quota"}


def test_no_quota_header_without_quota_project(monkeypatch, tmp_path, private_key_pem, servers) -> None:
    tokens = token_server(expires_in=3600)
    servers.append(tokens)
    use_adc(monkeypatch, write_adc_file(tmp_path, private_key_pem, f"{tokens.url}/token"))
    assert QUOTA_PROJECT_HEADER not in GoogleCredentials().headers()


def test_rejected_token_is_refreshed_once(monkeypatch, tmp_path, private_key_pem, servers) -> None:
    """A 401 (token revoked early) makes the client fetch a new token and try once more."""
    tokens = token_server(expires_in=3600)

    def api_respond(handler: BaseHTTPRequestHandler) -> tuple[int, dict]:
        if handler.headers.get("authorization") == "Bearer tok-2":
            return 200, {"name": JOB, "state": "JOB_STATE_RUNNING"}
        return 401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                               "status": "UNAUTHENTICATED"}}

    api = LocalServer(api_respond)
    servers.extend([tokens, api])
    use_adc(monkeypatch, write_adc_file(tmp_path, private_key_pem, f"{tokens.url}/token"))
    with TuningClient(ClientOptions(endpoint=api.url), credentials=GoogleCredentials()) as client:
        assert client.get_job(JOB) == {"name": JOB, "state": "JOB_STATE_RUNNING"}
        assert client.request_counts == {"get": 2}
    assert len(tokens.requests) == 2


def test_static_token_401_is_not_retried(servers) -> None:
    api = LocalServer(lambda _: (401, {"error": {"code": 401, "message": "bad token", "status": "UNAUTHENTICATED"}}))
    servers.append(api)
    with TuningClient(ClientOptions(endpoint=api.url, access_token="wrong")) as client:
        with pytest.raises(UnauthenticatedError, match=r"^UNAUTHENTICATED \(401\): bad token"):
            client.get_job(JOB)
        assert client.request_counts == {"get": 1}


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("bad", ["tök-énunicode-token", "token\u2013with-an-en-dash", "emoji-\U0001f511-key"])
def test_a_non_ascii_token_is_a_clear_error_not_a_unicode_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="non-ASCII"):
        StaticToken(bad)
    with pytest.raises(ConfigError, match="non-ASCII"):
        credentials_for("http://127.0.0.1:8080", env={ENV_ACCESS_TOKEN: bad})


def test_a_non_ascii_token_from_the_token_endpoint_is_an_auth_error(monkeypatch, tmp_path, private_key_pem,
                                                                   servers) -> None:
    tokens = LocalServer(lambda _: (200, {"access_token": "tök-1", "expires_in": 3600, "token_type": "Bearer"}))
    servers.append(tokens)
    use_adc(monkeypatch, write_adc_file(tmp_path, private_key_pem, f"{tokens.url}/token"))
    with pytest.raises(AuthError, match="cannot be sent"):
        GoogleCredentials().headers()


def test_an_adc_minted_token_echoed_by_the_server_is_redacted(monkeypatch, tmp_path, private_key_pem,
                                                             servers) -> None:
    minted = "ya29.minted-by-adc-0123456789abcdef"
    tokens = LocalServer(lambda _: (200, {"access_token": minted, "expires_in": 3600, "token_type": "Bearer"}))

    def echo(handler: BaseHTTPRequestHandler) -> tuple[int, dict]:
        seen = handler.headers.get("authorization", "")
        if handler.path.endswith("/tuningJobs"):  # a 2xx answer quoting the token: refused
            return 200, {"tuningJobs": [], "nextPageToken": seen}
        return 400, {"error": {"code": 400, "status": f"BAD {seen}", "message": f"you sent {seen}",
                               "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                            "fieldViolations": [{"field": seen, "description": seen}]}]}}

    api = LocalServer(echo)
    servers.extend([tokens, api])
    use_adc(monkeypatch, write_adc_file(tmp_path, private_key_pem, f"{tokens.url}/token"))
    with TuningClient(ClientOptions(endpoint=api.url), credentials=GoogleCredentials()) as client:
        with pytest.raises(ApiError) as error:
            client.get_job(JOB)
        with pytest.raises(ReconcilerError) as listed:
            list(client.list_jobs("projects/p/locations/us-central1"))
    assert api.requests[0][2]["authorization"] == f"Bearer {minted}"  # the server really had it
    for exc in (error.value, listed.value):
        assert minted not in str(exc) and minted not in repr(exc.args)
    assert "<redacted>" in str(error.value)


@pytest.mark.parametrize("content", [b"[" * 100_000, b"{\"type\": " + b"[" * 100_000])
def test_a_deeply_nested_adc_file_is_a_config_error(monkeypatch, tmp_path, content) -> None:
    (tmp_path / "adc.json").write_bytes(content)
    use_adc(monkeypatch, tmp_path / "adc.json")
    with pytest.raises(ConfigError, match="adc.json.*nested deeper than"):
        GoogleCredentials().headers()


def test_an_adc_file_that_is_a_fifo_is_refused_without_blocking(monkeypatch, tmp_path) -> None:
    import os

    os.mkfifo(tmp_path / "adc.json")
    use_adc(monkeypatch, tmp_path / "adc.json")
    with pytest.raises(ConfigError, match="adc.json.*FIFO"):
        GoogleCredentials().headers()


def test_a_deeply_nested_token_endpoint_answer_is_an_auth_error(monkeypatch, tmp_path, private_key_pem,
                                                               servers) -> None:
    import threading
    from http.server import ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("content-length") or 0))
            reply(self, 200, b"[" * 100_000)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        use_adc(monkeypatch, write_adc_file(tmp_path, private_key_pem, f"http://127.0.0.1:{httpd.server_address[1]}/t"))
        with pytest.raises(AuthError, match="nested deeper than"):
            GoogleCredentials().headers()
    finally:
        httpd.shutdown()
        httpd.server_close()
