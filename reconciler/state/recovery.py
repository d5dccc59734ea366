"""When a write to shared state is refused (someone else wrote it meanwhile), the state this run
holds is saved here, so that nothing it did is lost: `reconciler-errored-NAME-TIME.json` in
the working directory (Terraform's `errored.tfstate`), mode 0600, a state file like any other."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from reconciler.files import atomic_write
from reconciler.state.model import State, state_to_json

PREFIX = "reconciler-errored-"


def save_recovery(state: State, name: str, directory: str | os.PathLike[str] = ".") -> Path:
    """Write `state` to a new recovery file named after `name` (a workspace or object name)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "state"
    target = Path(directory).resolve() / f"{PREFIX}{safe}-{stamp}.json"
    atomic_write(target, state_to_json(state).encode("utf-8"))
    return target
