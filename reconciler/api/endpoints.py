"""Which base URL a request goes to: the regional Google endpoint, or an override.

Vertex AI serves each location from its own host, so the base URL follows the location in
the resource name unless an override (``--endpoint`` or ``$RECONCILER_ENDPOINT``) sends
everything to one place, typically the emulator. Plain ``http`` is accepted only for
loopback hosts so that a bearer token can never cross a network in clear text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from reconciler.errors import ConfigError
from reconciler.loopback import is_loopback_host

ENV_ENDPOINT = "RECONCILER_ENDPOINT"
GLOBAL_ENDPOINT = "https://aiplatform.googleapis.com"
REGIONAL_ENDPOINT = "https://{location}-aiplatform.googleapis.com"

# Google location ids: us-central1, europe-west4, global, ...
_LOCATION = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# The leading `projects/{p}/locations/{l}` of every name or parent we send.
_NAME_LOCATION = re.compile(r"^projects/[^/]+/locations/([^/]+)(?:/|$)")


def regional_endpoint(location: str) -> str:
    """The Google endpoint that serves `location` (``global`` has no regional prefix)."""
    if not _LOCATION.match(location):
        raise ConfigError(f"invalid location {location!r}: expected e.g. 'us-central1' or 'global'")
    if location == "global":
        return GLOBAL_ENDPOINT
    return REGIONAL_ENDPOINT.format(location=location)


def location_of(name: str) -> str:
    """The location in a resource name or parent, `projects/p/locations/LOC/...`."""
    match = _NAME_LOCATION.match(name)
    if not match:
        raise ConfigError(
            f"invalid resource name {name!r}: expected 'projects/PROJECT/locations/LOCATION/...'"
        )
    return match.group(1)


def _redacted(url: str) -> str:
    """`url` safe to print: user info (`user:password@`) and query strings (`?key=...`) hidden."""
    url = re.sub(r"^([^:/?#]*://)[^/?#]*@", r"\1***@", url)
    return re.sub(r"[?#].*$", "?***", url, flags=re.S)


def normalize_endpoint(url: str) -> str:
    """Check an endpoint override and return it as ``scheme://host[:port]``.

    Raises ConfigError for anything that is not a bare http(s) origin, and for plain
    http to a host that is not loopback.
    """
    raw = url.strip()
    url = _redacted(raw)  # what error messages show
    if "://" not in raw:
        raise ConfigError(
            f"invalid endpoint {url!r}: expected a URL such as https://us-central1-aiplatform.googleapis.com "
            "or http://127.0.0.1:8080"
        )
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ConfigError(f"invalid endpoint {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"invalid endpoint {url!r}: the scheme must be https (or http for loopback)")
    if not parts.hostname:
        raise ConfigError(f"invalid endpoint {url!r}: no host")
    if parts.username or parts.password:
        raise ConfigError(f"invalid endpoint {url!r}: credentials in the URL are not supported")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        # The client appends `/v1/...` itself; a path here would be silently ignored or doubled.
        raise ConfigError(f"invalid endpoint {url!r}: give only scheme, host and port (no path or query)")
    host = parts.hostname
    if scheme == "http" and not is_loopback_host(host):
        raise ConfigError(
            f"refusing plain http endpoint {url!r}: http is allowed only for loopback hosts "
            "(127.0.0.1, ::1, localhost); use https"
        )
    shown_host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown_host}" + (f":{port}" if port is not None else "")


def endpoint_override(cli_value: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The override in force, if any: the command-line value wins over the environment."""
    env = os.environ if env is None else env
    value = cli_value if cli_value else env.get(ENV_ENDPOINT) or None
    return normalize_endpoint(value) if value else None


def is_emulator_endpoint(endpoint: str | None) -> bool:
    """An override that points at this machine is taken to be the emulator."""
    if not endpoint:
        return False
    host = urlsplit(endpoint).hostname
    return bool(host) and is_loopback_host(host)  # type: ignore[arg-type]


def base_url_for(name: str, override: str | None) -> str:
    """The base URL for a request on `name` (a resource name or parent)."""
    if override:
        return override
    return regional_endpoint(location_of(name))
