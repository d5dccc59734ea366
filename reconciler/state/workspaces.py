"""The workspaces under a root: the `NAME.json` states directly in a local directory or under a
`gs://BUCKET/PREFIX/` (one listing), by name."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.errors import StateError
from reconciler.state.url import STATE_SUFFIX, is_gcs, parse_prefix, workspace_name


def list_workspaces(root: str) -> dict[str, str]:
    """name -> location of every state under `root` (a prefix ending in '/')."""
    if is_gcs(root):
        return _gcs(root)
    directory = Path(root)
    if not directory.is_dir():
        return {}
    found = {}
    for path in sorted(directory.iterdir()):
        if path.name.endswith(STATE_SUFFIX) and not path.name.startswith(".") and path.is_file():
            found[workspace_name(path.name)] = os.path.join(root, path.name)
    return found


def _gcs(root: str) -> dict[str, str]:
    from google.api_core.exceptions import NotFound

    from reconciler.state.gcs_client import call_options, make_client, storage_errors

    bucket, prefix = parse_prefix(root if root.endswith("/") else root + "/")
    try:
        with storage_errors(f"cannot list the workspaces under {root}"):
            names = [b.name for b in make_client().list_blobs(bucket, prefix=prefix, delimiter="/",
                                                              **call_options())]
    except NotFound:
        raise StateError(f"cannot list the workspaces under {root}: bucket {bucket} does not exist") from None
    return {workspace_name(name): f"gs://{bucket}/{name}" for name in sorted(names)
            if name.endswith(STATE_SUFFIX) and len(name) > len(prefix) + len(STATE_SUFFIX)}
