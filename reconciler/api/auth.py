"""Credentials: Google Application Default Credentials, or a static token for the emulator.

Both kinds give the request headers through one small interface so that the client never
touches a token itself; neither ever shows its token in a repr or an error message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from reconciler import jsonio, redact
from reconciler.api.deadline import install as install_deadline
from reconciler.api.deadline import with_deadline
from reconciler.api.endpoints import is_emulator_endpoint
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.files import read_regular

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ENV_ACCESS_TOKEN = "RECONCILER_ACCESS_TOKEN"
DEFAULT_EMULATOR_TOKEN = "emulator-token"
QUOTA_PROJECT_HEADER = "x-goog-user-project"


class AuthError(ReconcilerError):
    """Credentials exist but no access token could be obtained (refresh failed)."""


class Credentials(Protocol):
    def headers(self) -> dict[str, str]:
        """Authorization (and quota project) headers, refreshing the token first if needed."""
        ...

    def invalidate(self) -> bool:
        """Forget a token the server rejected; True if asking again may give a better one."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Token values in use, so that error text can be scrubbed of them."""
        ...


def check_token(token: object, what: str) -> None:
    """A bearer token travels in an HTTP header: printable ASCII without spaces. (A newline
    would be header injection; a non-ASCII one cannot be sent at all.)"""
    if not isinstance(token, str) or not token:
        raise ConfigError(f"{what} is empty")
    if not token.isascii():
        raise ConfigError(f"{what} contains non-ASCII characters; a bearer token is ASCII "
                          "(was it copied with a typographic quote or dash?)")
    if any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError(f"{what} contains whitespace or control characters")


class StaticToken:
    """A fixed bearer token (the emulator, or tests)."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        check_token(token, f"the access token (${ENV_ACCESS_TOKEN})")
        self._token = token
        redact.remember(token)

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._token}"}

    def invalidate(self) -> bool:
        return False  # the same token will be rejected again

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class _HttpxAuthResponse:
    """google.auth.transport.Response over an httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.data = response.content


class _HttpxAuthRequest:
    """google.auth.transport.Request over httpx, so that token refresh uses the same HTTP stack
    (proxies, CA bundle) as API calls and needs no `requests` dependency."""

    def __init__(self, timeout: float) -> None:
        self._client = install_deadline(httpx.Client(timeout=timeout, follow_redirects=False))
        self._timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> _HttpxAuthResponse:
        from google.auth import exceptions

        try:
            with with_deadline(timeout or self._timeout):
                response = self._client.request(
                    method, url, content=body, headers=dict(headers or {}), timeout=timeout or self._timeout
                )
        except httpx.HTTPError as exc:
            raise exceptions.TransportError(f"{type(exc).__name__}: {exc}") from exc
        try:
            # google-auth parses the answer with json.loads: bound its nesting first.
            if response.content:
                jsonio.loads(response.content)
        except jsonio.JsonError as exc:
            if response.is_success:
                raise exceptions.TransportError(f"malformed answer from the token endpoint: {exc}") from None
        return _HttpxAuthResponse(response)

    def close(self) -> None:
        self._client.close()


class GoogleCredentials:
    """Application Default Credentials with the cloud-platform scope, refreshed before expiry.

    Loaded lazily on first use so that building a client needs no credentials. Thread-safe:
    one lock serialises refreshes, so parallel workers trigger a single token request.
    """

    def __init__(self, credentials: Any = None, *, timeout: float = 30.0) -> None:
        self._credentials = credentials  # google.auth.credentials.Credentials, or None = ADC
        self._lock = threading.Lock()
        self._request = _HttpxAuthRequest(timeout)
        self._force_refresh = False

    def _load(self) -> Any:
        import google.auth
        from google.auth import exceptions

        _check_credentials_file()
        try:
            credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        except exceptions.DefaultCredentialsError as exc:
            raise ConfigError(
                "no Google credentials found: run `gcloud auth application-default login` or set "
                "GOOGLE_APPLICATION_CREDENTIALS (or point --endpoint at the emulator). "
                f"Detail: {exc}"
            ) from None
        return credentials

    def headers(self) -> dict[str, str]:
        from google.auth import exceptions

        with self._lock:
            if self._credentials is None:
                self._credentials = self._load()
            creds = self._credentials
            try:
                # refresh() + apply() rather than before_request(): the latter may start
                # background look-ups (regional access boundaries) that we neither need nor want.
                if self._force_refresh or not creds.valid:
                    creds.refresh(self._request)
                    self._force_refresh = False
            except exceptions.GoogleAuthError as exc:
                raise AuthError(f"could not obtain a Google access token: {exc}") from None
            headers: dict[str, str] = {}
            creds.apply(headers)  # authorization, and x-goog-user-project when a quota project is set
            redact.remember(getattr(creds, "token", None))
            for name, value in headers.items():
                if not isinstance(value, str) or not value.isascii() or not value.isprintable():
                    raise AuthError(f"the Google credentials gave a {name} header that cannot be sent "
                                    "(not printable ASCII)")
            return headers

    def invalidate(self) -> bool:
        with self._lock:
            self._force_refresh = True
        return True

    def secrets(self) -> tuple[str, ...]:
        token = getattr(self._credentials, "token", None)
        return (token,) if token else ()

    @property
    def quota_project(self) -> str | None:
        return getattr(self._credentials, "quota_project_id", None)

    def close(self) -> None:
        self._request.close()

    def __repr__(self) -> str:
        kind = type(self._credentials).__module__ if self._credentials is not None else "unloaded"
        return f"GoogleCredentials({kind})"


def _check_credentials_file() -> None:
    """Read the credentials file google-auth is about to read, through the tool's own reader
    first: a FIFO there would block google-auth's open(), deep nesting crash its json.load."""
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        try:
            from google.auth import _cloud_sdk

            path = _cloud_sdk.get_application_default_credentials_path()
        except Exception:  # noqa: BLE001 - no gcloud configuration at all: google-auth says so
            return
        if not os.path.exists(path):
            return
    try:
        jsonio.loads(read_regular(path, limit=1024 * 1024))
    except FileNotFoundError:
        return  # google-auth reports a missing explicit file in its own words
    except OSError as exc:
        raise ConfigError(f"cannot read Google credentials file {path}: {exc.strerror or exc}") from None
    except jsonio.JsonError as exc:
        raise ConfigError(f"Google credentials file {path} is not valid: {exc}") from None


def credentials_for(
    endpoint: str | None,
    access_token: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """Pick credentials: an explicit token; else a static token for an emulator (loopback)
    endpoint, from $RECONCILER_ACCESS_TOKEN or the emulator default; else ADC.

    The emulator token is never sent to a non-loopback endpoint: Google always gets ADC.
    """
    env = os.environ if env is None else env
    if access_token:
        return StaticToken(access_token)
    if is_emulator_endpoint(endpoint):
        return StaticToken(env.get(ENV_ACCESS_TOKEN) or DEFAULT_EMULATOR_TOKEN)
    return GoogleCredentials()
