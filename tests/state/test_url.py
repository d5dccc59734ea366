"""Where a state lives: files, gs:// objects, prefixes and workspaces (pure parsing)."""

from __future__ import annotations

import pytest

from reconciler import cli
from reconciler.errors import ConfigError
from reconciler.state.url import GcsObject, is_prefix, join, parse_gcs, resolve, root_of, workspace_name


@pytest.mark.parametrize("url, bucket, name", [
    ("gs://my-bucket/state.json", "my-bucket", "state.json"),
    ("gs://my_bucket.example.com/team/prod/default.json", "my_bucket.example.com", "team/prod/default.json"),
    ("gs://abc/ünïcode.json", "abc", "ünïcode.json"),
])
def test_a_gs_url_names_a_bucket_and_an_object(url, bucket, name):
    obj = parse_gcs(url)
    assert obj == GcsObject(bucket, name) and obj.url == url and obj.sibling(".lock") == f"{name}.lock"


@pytest.mark.parametrize("url, message", [
    ("gs://ab/x.json", "invalid bucket name"),
    ("gs://Upper/x.json", "invalid bucket name"),
    ("gs://-bad/x.json", "invalid bucket name"),
    ("gs://a..b/x.json", "invalid bucket name"),
    ("gs://bucket/", "names a prefix"),
    ("gs://bucket", "names a prefix"),
    ("gs://bucket/x.txt", "ends in .json"),
    ("gs://bucket/.json", "ends in .json"),
    ("gs://bucket/a//b.json", "empty, '.' or '..'"),
    ("gs://bucket/a/../b.json", "empty, '.' or '..'"),
    ("gs://bucket/a\nb.json", "control characters"),
    ("gs://bucket/a\x1b[2Jb.json", "control characters"),
    ("gs://bucket/" + "x" * 1000 + ".json", "too long"),
])
def test_malformed_gs_urls_are_refused_with_a_reason(url, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_gcs(url)


def test_prefixes_take_workspaces():
    assert is_prefix("gs://bucket") and is_prefix("gs://bucket/team/") and is_prefix("state/")
    assert not is_prefix("gs://bucket/team/x.json") and not is_prefix("state/default.json")
    assert join("gs://bucket/team/", "staging") == "gs://bucket/team/staging.json"
    assert join("gs://bucket", "prod") == "gs://bucket/prod.json"
    assert join("envs/", "dev") == "envs/dev.json"
    with pytest.raises(ConfigError, match="invalid workspace name"):
        join("gs://bucket/", "../escape")


@pytest.mark.parametrize("state, workspace, env, expected", [
    (None, None, {}, "state/default.json"),
    (None, "staging", {}, "state/staging.json"),
    ("my.json", None, {}, "my.json"),
    ("gs://bkt/team/", None, {}, "gs://bkt/team/default.json"),
    ("gs://bkt/team/", "prod", {}, "gs://bkt/team/prod.json"),
    (None, "prod", {"RECONCILER_STATE": "gs://bkt/team/"}, "gs://bkt/team/prod.json"),
    (None, None, {"RECONCILER_STATE": "gs://bkt/team/"}, "gs://bkt/team/default.json"),
    (None, None, {"RECONCILER_STATE": "gs://bkt/one.json"}, "gs://bkt/one.json"),
    ("local.json", None, {"RECONCILER_STATE": "gs://bkt/team/"}, "local.json"),  # the flag wins
])
def test_state_workspace_and_environment_resolve_to_one_state(state, workspace, env, expected):
    assert resolve(state, workspace, env) == expected


def test_a_workspace_needs_a_prefix_not_one_state():
    with pytest.raises(ConfigError, match="--state names one state"):
        resolve("gs://bkt/one.json", "prod", {})
    with pytest.raises(ConfigError, match=r"\$RECONCILER_STATE names one state"):
        resolve(None, "prod", {"RECONCILER_STATE": "gs://bkt/one.json"})
    with pytest.raises(ConfigError, match="invalid bucket name"):
        resolve("gs://BAD/x.json", None, {})


def test_roots_and_names_of_states():
    assert root_of("gs://bkt/team/prod.json") == "gs://bkt/team/"
    assert root_of("gs://bkt/prod.json") == "gs://bkt/"
    assert root_of("gs://bkt/team/") == "gs://bkt/team/"
    assert root_of("state/default.json") == "state/"
    assert root_of("default.json") == "./"
    assert workspace_name("gs://bkt/team/prod.json") == "prod" and workspace_name("state/x.json") == "x"


def test_the_cli_resolves_state_and_workspace_in_either_order(monkeypatch):
    monkeypatch.delenv("RECONCILER_STATE", raising=False)
    parse = cli.build_parser().parse_args
    assert parse(["plan", "--state", "gs://bkt/t/", "--workspace", "a"]).state == "gs://bkt/t/a.json"
    assert parse(["plan", "--workspace", "a", "--state", "gs://bkt/t/"]).state == "gs://bkt/t/a.json"
    assert parse(["jobs", "--state", "gs://bkt/t/x.json"]).state == "gs://bkt/t/x.json"
    monkeypatch.setenv("RECONCILER_STATE", "gs://bkt/team/")
    assert cli.build_parser().parse_args(["apply"]).state == "gs://bkt/team/default.json"
    assert cli.build_parser().parse_args(["apply", "--workspace", "prod"]).state == "gs://bkt/team/prod.json"
    assert cli.build_parser().parse_args(["state", "list", "--state", "s.json"]).state == "s.json"


def test_a_malformed_state_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["plan", "--state", "gs://UPPER/x.json"])
    assert exc.value.code == 2 and "invalid bucket name" in capsys.readouterr().err
