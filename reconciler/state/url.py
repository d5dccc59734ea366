"""Where a state lives, as the user writes it: a local file, a `gs://BUCKET/PATH.json` object,
or a prefix ending in `/` under which workspaces are `PREFIX/NAME.json`. Parsing only, no I/O.

    state/default.json             a local file (the default)
    gs://my-bucket/team/prod.json  an object in Cloud Storage
    gs://my-bucket/team/           a prefix: --workspace NAME picks team/NAME.json
                                   (no --workspace: team/default.json)
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.defaults import DEFAULT_STATE_PATH
from reconciler.errors import ConfigError

STATE_ENV = "RECONCILER_STATE"
GCS_SCHEME = "gs://"
DEFAULT_WORKSPACE = "default"
WORKSPACE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
STATE_SUFFIX = ".json"
_DEFAULT_ROOT = posixpath.dirname(DEFAULT_STATE_PATH) + "/"  # state/

# Cloud Storage bucket names: lowercase letters, digits, '-', '_' and '.', starting and ending
# with a letter or digit; 3-63 characters (up to 222 when dotted, 63 per dotted part).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class GcsObject:
    bucket: str
    name: str  # the object name, PATH.json

    @property
    def url(self) -> str:
        return f"{GCS_SCHEME}{self.bucket}/{self.name}"

    def sibling(self, suffix: str) -> str:
        """The name of an object beside this one: `PATH.json<suffix>`."""
        return f"{self.name}{suffix}"


def is_gcs(location: str) -> bool:
    return location.startswith(GCS_SCHEME)


def is_prefix(location: str) -> bool:
    """A workspace root (`gs://BUCKET`, `gs://BUCKET/PREFIX/`, `DIR/`), not one state."""
    if is_gcs(location):
        return location.endswith("/") or "/" not in location[len(GCS_SCHEME):]
    return location.endswith(("/", os.sep))


def check_workspace(name: str) -> str:
    if not WORKSPACE_PATTERN.match(name) or ".." in name:
        raise ConfigError(f"invalid workspace name {name!r} (letters, digits, '_', '-', '.')")
    return name


def _split_gcs(url: str) -> tuple[str, str]:
    rest = url[len(GCS_SCHEME):]
    bucket, _, name = rest.partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket or (len(bucket) > 63 and "." not in bucket) or any(
            len(part) > 63 for part in bucket.split(".")):
        raise ConfigError(f"{url}: invalid bucket name {bucket!r} (lowercase letters, digits, '-', '_', '.'; "
                          "3-63 characters)")
    if _CONTROL.search(name):
        raise ConfigError(f"{url!r}: control characters in the object name")
    return bucket, name


def parse_gcs(url: str) -> GcsObject:
    """`gs://BUCKET/PATH.json` -> GcsObject; a clear error for anything else."""
    if not is_gcs(url):
        raise ConfigError(f"{url}: not a gs:// URL")
    bucket, name = _split_gcs(url)
    if not name or name.endswith("/"):
        raise ConfigError(f"{url}: names a prefix, not a state object (give gs://{bucket}/PATH.json, "
                          "or add --workspace NAME)")
    if len(name.encode("utf-8")) > 1024 - len(".journal/") - 64:  # room for the objects beside it
        raise ConfigError(f"{url}: object name too long")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ConfigError(f"{url}: empty, '.' or '..' part in the object name")
    if not name.endswith(STATE_SUFFIX) or name == STATE_SUFFIX:
        raise ConfigError(f"{url}: a state object's name ends in {STATE_SUFFIX} (gs://{bucket}/PATH.json)")
    return GcsObject(bucket, name)


def parse_prefix(url: str) -> tuple[str, str]:
    """`gs://BUCKET[/PREFIX/]` -> (bucket, prefix with its trailing '/', or '')."""
    bucket, name = _split_gcs(url)
    if name and not name.endswith("/"):
        raise ConfigError(f"{url}: a workspace prefix ends in '/'")
    if name and any(part in ("", ".", "..") for part in name[:-1].split("/")):
        raise ConfigError(f"{url}: empty, '.' or '..' part in the prefix")
    return bucket, name


def join(root: str, workspace: str) -> str:
    """The state of `workspace` under the prefix `root`."""
    check_workspace(workspace)
    if is_gcs(root):
        bucket, prefix = parse_prefix(root if root.endswith("/") else root + "/")
        return f"{GCS_SCHEME}{bucket}/{prefix}{workspace}{STATE_SUFFIX}"
    return os.path.join(root, f"{workspace}{STATE_SUFFIX}")


def resolve(state: str | None, workspace: str | None, env: Mapping[str, str]) -> str:
    """The state `--state` / `--workspace` / `$RECONCILER_STATE` name (in that order of weight).

    A prefix (ending in '/') takes the workspace, `default` if none is given; a single state
    with a workspace is a contradiction."""
    base = state if state is not None else (env.get(STATE_ENV) or None)
    if base is None:
        return join(_DEFAULT_ROOT, workspace) if workspace else DEFAULT_STATE_PATH
    if is_prefix(base):
        return join(base, workspace or DEFAULT_WORKSPACE)
    if workspace:
        source = "--state" if state is not None else f"${STATE_ENV}"
        raise ConfigError(f"--workspace {workspace} needs a prefix ending in '/' (like gs://BUCKET/PREFIX/), "
                          f"but {source} names one state: {base}")
    if is_gcs(base):
        parse_gcs(base)  # refuse a malformed URL here, not when the state is opened
    return base


def root_of(location: str) -> str:
    """The workspace root a state or prefix belongs to (for `workspace list`)."""
    if is_prefix(location):
        return location if location.endswith("/") else location + "/"
    if is_gcs(location):
        obj = parse_gcs(location)
        parent = posixpath.dirname(obj.name)
        return f"{GCS_SCHEME}{obj.bucket}/" + (f"{parent}/" if parent else "")
    return (os.path.dirname(location) or ".") + "/"


def workspace_name(location: str) -> str:
    """`.../NAME.json` -> NAME."""
    base = posixpath.basename(location) if is_gcs(location) else os.path.basename(location)
    return base[:-len(STATE_SUFFIX)] if base.endswith(STATE_SUFFIX) else base
