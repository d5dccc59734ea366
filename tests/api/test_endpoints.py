"""Endpoint resolution: regional hosts, overrides, and plain http only for loopback."""

from __future__ import annotations

import pytest

from reconciler.api.endpoints import (
    ENV_ENDPOINT,
    base_url_for,
    endpoint_override,
    is_emulator_endpoint,
    is_loopback_host,
    location_of,
    normalize_endpoint,
    regional_endpoint,
)
from reconciler.errors import ConfigError


def test_regional_endpoint_per_location() -> None:
    assert regional_endpoint("us-central1") == "https://us-central1-aiplatform.googleapis.com"
    assert regional_endpoint("europe-west4") == "https://europe-west4-aiplatform.googleapis.com"


def test_global_location_has_no_prefix() -> None:
    assert regional_endpoint("global") == "https://aiplatform.googleapis.com"


@pytest.mark.parametrize("bad", ["", "US-CENTRAL1", "us central1", "evil.com/x", "-x"])
def test_regional_endpoint_rejects_odd_locations(bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid location"):
        regional_endpoint(bad)


def test_location_of_names_and_parents() -> None:
    assert location_of("projects/p/locations/us-east1") == "us-east1"
    assert location_of("projects/123/locations/global/tuningJobs/9/operations/8") == "global"
    with pytest.raises(ConfigError, match="invalid resource name"):
        location_of("tuningJobs/9")


def test_base_url_follows_location_unless_overridden() -> None:
    name = "projects/p/locations/asia-east1/tuningJobs/1"
    assert base_url_for(name, None) == "https://asia-east1-aiplatform.googleapis.com"
    assert base_url_for(name, "http://127.0.0.1:9") == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "host,expected",
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("128.0.0.1", False),
        ("localhost.evil.com", False),
        ("example.com", False),
        ("::2", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


@pytest.mark.parametrize(
    "url,expected",
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://localhost:9", "http://localhost:9"),
        ("http://[::1]:7000", "http://[::1]:7000"),
        ("https://my-proxy.example.com", "https://my-proxy.example.com"),
        ("HTTPS://us-central1-aiplatform.googleapis.com:443", "https://us-central1-aiplatform.googleapis.com:443"),
    ],
)
def test_normalize_accepts(url: str, expected: str) -> None:
    assert normalize_endpoint(url) == expected


@pytest.mark.parametrize("url", ["http://example.com", "http://10.1.2.3:80", "http://0.0.0.0:8080",
                                 "http://localhost.evil.com"])
def test_plain_http_refused_for_non_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match="allowed only for loopback"):
        normalize_endpoint(url)


@pytest.mark.parametrize(
    "url,why",
    [
        ("127.0.0.1:8080", "expected a URL"),
        ("ftp://127.0.0.1", "scheme must be https"),
        ("https://", "no host"),
        ("https://user:pw@example.com", "credentials in the URL"),
        ("https://example.com/v1", "no path or query"),
        ("https://example.com?x=1", "no path or query"),
        ("http://127.0.0.1:notaport", "invalid endpoint"),
    ],
)
def test_normalize_rejects(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        normalize_endpoint(url)


@pytest.mark.parametrize("url", ["https://user:s3cr3t-pw@example.com", "http://:s3cr3t-pw@10.0.0.1:x",
                                 "https://example.com/v1?key=s3cr3t-pw", "ftp://u:s3cr3t-pw@h#frag"])
def test_errors_never_echo_credentials_from_the_url(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_endpoint(url)
    assert "s3cr3t-pw" not in str(info.value)
    assert "invalid endpoint" in str(info.value) or "refusing" in str(info.value)


def test_override_precedence_cli_then_env() -> None:
    env = {ENV_ENDPOINT: "http://127.0.0.1:1111"}
    assert endpoint_override("http://127.0.0.1:2222", env) == "http://127.0.0.1:2222"
    assert endpoint_override(None, env) == "http://127.0.0.1:1111"
    assert endpoint_override(None, {}) is None
    assert endpoint_override(None, {ENV_ENDPOINT: ""}) is None


def test_env_override_is_checked_too() -> None:
    with pytest.raises(ConfigError, match="allowed only for loopback"):
        endpoint_override(None, {ENV_ENDPOINT: "http://evil.example.com"})


def test_emulator_endpoint_means_loopback() -> None:
    assert is_emulator_endpoint("http://127.0.0.1:5")
    assert is_emulator_endpoint("https://localhost:5")
    assert not is_emulator_endpoint("https://us-central1-aiplatform.googleapis.com")
    assert not is_emulator_endpoint(None)
