"""The Cloud Storage client the GCS backend uses: the official `google-cloud-storage` client
with Application Default Credentials (or, with `$STORAGE_EMULATOR_HOST`, an emulator and no
credentials), every call bounded in time, and its errors turned into `StateError`s.

Retries: the client's own policy (408, 429, 5xx, dropped connections) with a 0.2 s first
delay doubling to 5 s, given up after RETRY_SECONDS; each request has a connect and a read
timeout. A retried conditional write whose first answer was lost comes back 412: callers tell
that from a real conflict by a token they put in the object's metadata.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from reconciler import __version__
from reconciler.errors import StateError
from reconciler.loopback import is_loopback_host
from reconciler.text import one_line

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
TIMEOUT = (10.0, 60.0)  # seconds: connect, read (per request)
RETRY_SECONDS = 30.0
# google-cloud-storage 3.x fetches each bucket's metadata in a background thread for its
# OpenTelemetry attributes, even with tracing off: one more request per run, which needs
# storage.buckets.get (not in roles/storage.objectUser). Off unless the user turned it on.
_BUCKET_METADATA_SWITCH = "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"


def emulator_endpoint(env: Mapping[str, str]) -> str | None:
    """`$STORAGE_EMULATOR_HOST` as a URL (the client accepts `host:port` too), or None."""
    raw = (env.get(EMULATOR_ENV) or "").strip()
    if not raw:
        return None
    url = raw if "://" in raw else f"http://{raw}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
        raise StateError(f"${EMULATOR_ENV}: expected http://HOST:PORT, got {one_line(raw)!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise StateError(f"${EMULATOR_ENV}: plain http is accepted only on loopback (127.0.0.1, ::1, "
                         f"localhost), not {one_line(parts.hostname)}: state would cross the network in clear")
    return f"{parts.scheme}://{parts.netloc}"


def make_client(env: Mapping[str, str] | None = None) -> Any:
    """A `google.cloud.storage.Client`; credentials from ADC unless an emulator is configured."""
    env = os.environ if env is None else env
    os.environ.setdefault(_BUCKET_METADATA_SWITCH, "true")
    from google.api_core.client_info import ClientInfo
    from google.cloud import storage

    info = ClientInfo(user_agent=f"tuning-reconciler/{__version__}")
    endpoint = emulator_endpoint(env)
    if endpoint is not None:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=None, credentials=AnonymousCredentials(), client_info=info,
                              client_options={"api_endpoint": endpoint})
    import google.auth
    from google.auth import exceptions as auth_exceptions

    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
    except auth_exceptions.DefaultCredentialsError as exc:
        raise StateError(
            "no Google credentials for Cloud Storage: run `gcloud auth application-default login`, or "
            "use Workload Identity Federation in CI (google-github-actions/auth). "
            f"({one_line(exc)})") from None
    return storage.Client(project=None, credentials=credentials, client_info=info)


def retry() -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_delay(initial=0.2, maximum=5.0, multiplier=2.0).with_timeout(RETRY_SECONDS)


def call_options() -> dict[str, Any]:
    """The keyword arguments every storage call gets: timeout and retry."""
    return {"timeout": TIMEOUT, "retry": retry()}


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn what the client raises into a StateError saying `what` failed and why. 404 and 412
    are the caller's to handle (they mean something), so they pass through."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth_exceptions
    from requests import exceptions as http

    try:
        yield
    except (api.NotFound, api.PreconditionFailed):
        raise
    except (api.Forbidden, api.Unauthorized) as exc:
        raise StateError(f"{what}: permission denied ({_message(exc)}). The account needs "
                         "roles/storage.objectUser on the bucket (see README: shared state)") from None
    except api.RetryError as exc:
        cause = exc.cause if exc.cause is not None else exc
        raise StateError(f"{what}: Cloud Storage did not answer within {RETRY_SECONDS:g}s "
                         f"({_message(cause)})") from None
    except api.GoogleAPICallError as exc:
        raise StateError(f"{what}: Cloud Storage answered {exc.code}: {_message(exc)}") from None
    except (http.RequestException, auth_exceptions.TransportError, ConnectionError) as exc:
        raise StateError(f"{what}: cannot reach Cloud Storage ({_message(exc)})") from None
    except auth_exceptions.GoogleAuthError as exc:
        raise StateError(f"{what}: cannot get credentials for Cloud Storage ({_message(exc)})") from None


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    text = one_line(text)
    return text if len(text) <= 300 else text[:300] + "..."
