"""Field-level differences between a desired spec and a live job.

Both sides are normalised first (see `spec.normalize_spec`), so int64 spellings, enum numbers,
output-only fields and identity labels never show as changes. A field the manifest leaves out
that the server fills in by default (the hyperparameters it chose) is not a change either, and
neither is a field the REST version the job was read through cannot show (v1beta1's, read
through v1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.apischema.normalize import normalize_spec, visible_in
from reconciler.apischema.versions import ALL_TUNING_SPECS
from reconciler.model import V1BETA1

# Where the service writes its own choices into a job the user left unset (observed: epochCount,
# learningRateMultiplier, adapterSize appear by the time a job has SUCCEEDED; assumed alike for
# the hyperparameters of every tuning spec).
SERVER_DEFAULTED_PREFIXES: tuple[str, ...] = tuple(f"{spec}.hyperParameters." for spec in ALL_TUNING_SPECS)


class _Absent:
    def __repr__(self) -> str:
        return "(unset)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One differing field. `before` is the live value, `after` the desired one; ABSENT = unset."""

    path: str
    before: Any
    after: Any

    def describe(self) -> str:
        return f"{self.path} {_show(self.before)} -> {_show(self.after)}"

    def to_json(self) -> dict:
        out: dict[str, Any] = {"path": self.path}
        if self.before is not ABSENT:
            out["before"] = self.before
        if self.after is not ABSENT:
            out["after"] = self.after
        return out


def _show(value: Any) -> str:
    if value is ABSENT:
        return "(unset)"
    if isinstance(value, str):
        return value
    return repr(value) if not isinstance(value, (dict, list)) else str(value)


def _dotted(path: list) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _server_defaulted(path: str) -> bool:
    return any(path.startswith(prefix) for prefix in SERVER_DEFAULTED_PREFIXES)


def _leaves(path: str, value: Any) -> list[tuple[str, Any]]:
    """A whole object added or removed counts as its leaf fields, so paths stay precise."""
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(f"{path}.{k}", v)]
    return [(path, value)]


def diff_spec(desired_spec: dict, live_job: dict, read_version: str = V1BETA1) -> list[FieldChange]:
    """Changes that turn `live_job` into `desired_spec`, sorted by path. `read_version`: the REST
    version `live_job` was read through; only what it can show is compared."""
    desired = visible_in(normalize_spec(desired_spec), read_version)
    live = visible_in(normalize_spec(live_job), read_version)
    if desired == live:
        return []
    # Imported here: deepdiff (and the pydantic it pulls in) costs ~0.1 s at start-up, and
    # most runs never get this far (equal specs, or the spec-hash label matches).
    from deepdiff import DeepDiff

    # threshold_to_diff_deeper=0: always compare objects key by key. DeepDiff's default (0.33)
    # reports an object sharing few keys as replaced whole, so one hyperparameter set against
    # three the server filled in would look like a change of all four.
    tree = DeepDiff(live, desired, view="tree", ignore_order=False, threshold_to_diff_deeper=0)
    changes: list[FieldChange] = []
    for kind, items in tree.items():
        for item in items:
            path = _dotted(item.path(output_format="list"))
            if kind in ("dictionary_item_removed", "iterable_item_removed"):
                changes += [FieldChange(p, v, ABSENT) for p, v in _leaves(path, item.t1)
                            if not _server_defaulted(p)]
            elif kind in ("dictionary_item_added", "iterable_item_added"):
                changes += [FieldChange(p, ABSENT, v) for p, v in _leaves(path, item.t2)]
            else:
                changes.append(FieldChange(path, item.t1, item.t2))
    return sorted(changes, key=lambda c: c.path)


def only_base_model_changed(changes: list[FieldChange]) -> bool:
    return bool(changes) and all(c.path == "baseModel" for c in changes)
