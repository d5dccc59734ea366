"""The saved-plan file format: written atomically with mode 0600, read back (validated against
`schemas/plan.schema.json`) with clear errors, and checked for staleness against a fresh plan
of the same keys before apply."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from reconciler import __version__, jsonio
from reconciler.errors import PlanError
from reconciler.files import atomic_write, read_regular
from reconciler.model import DesiredJob
from reconciler.plan.model import FORMAT_VERSION, Plan

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

KIND = "tuning-reconciler-plan"


def save_plan(plan: Plan, path: str | os.PathLike) -> None:
    """`plan.lineage` None means the plan was made before any state existed."""
    data = plan.to_json()
    data["kind"] = KIND
    data["tool_version"] = __version__
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())


def is_saved_plan(path: str) -> bool:
    """Whether `path` holds a saved plan of ours (JSON of our kind) rather than a manifest."""
    try:
        if read_regular(path, 64, head=True).lstrip()[:1] != b"{":  # a peek: manifests are YAML
            return False
        data = jsonio.loads(read_regular(path))
    except OSError:
        return False
    except ValueError:
        # A damaged plan file is still one: say what is wrong with it, not with its YAML.
        return os.path.splitext(path)[1] in (".plan", ".json")
    return isinstance(data, dict) and data.get("kind") == KIND


def load_plan(path: str | os.PathLike) -> Plan:
    try:
        raw = read_regular(path)
    except OSError as exc:
        raise PlanError(f"cannot read saved plan {path}: {exc.strerror or exc}") from None
    try:
        data = jsonio.loads(raw)
    except jsonio.JsonError as exc:
        raise PlanError(f"{path} is not a saved plan: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise PlanError(f"{path} is not a saved plan of tuning-reconciler (write one with `plan --out`)")
    if str(data.get("format_version", "")).split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise PlanError(f"{path} has plan format {data.get('format_version')}; this tool reads {FORMAT_VERSION}")
    error = next(iter(sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))), None)
    if error is not None:  # checked first, so a hand-edited plan cannot reach apply half-typed
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "(top)"
        raise PlanError(f"{path} is a damaged saved plan: at {where.lstrip('.')}: {error.message[:300]}")
    try:
        return Plan.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PlanError(f"{path} is a damaged saved plan ({exc.__class__.__name__}: {exc})") from None


@functools.lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # only reading a plan needs it (start-up time)

    from reconciler.apischema.generated import plan_schema

    return Draft202012Validator(plan_schema())


def desired_from_plan(plan: Plan) -> list[DesiredJob]:
    """The desired jobs a saved plan was made from, to re-plan the same keys for the stale check."""
    return [DesiredJob(key=c.key, project=c.project, location=c.location, spec=c.after, lifecycle=c.lifecycle,
                       api_version=c.api_version)
            for c in plan.changes if c.after is not None]


def stale_reasons(saved: Plan, fresh: Plan, plan_file: str = "the saved plan",
                  state_path: str = "the state") -> list[str]:
    """Why a saved plan no longer describes the world (`fresh`: the same keys planned now,
    with the state's lineage and serial); empty when it may be applied. A plan made for
    another state is an error, not a reason: running plan again there would not help."""
    if saved.lineage is None:  # made before any state existed
        reasons = [f"state {state_path} was written since"] if fresh.serial > 0 else []
    elif saved.lineage != fresh.lineage:
        raise PlanError(f"saved plan {plan_file} was made for another state (lineage {saved.lineage}, "
                        f"{state_path} has {fresh.lineage or 'none yet'}); run plan again")
    else:
        reasons = [] if fresh.serial == saved.serial else [
            f"state serial is {fresh.serial}, the plan was made at serial {saved.serial}"]
    now = {c.address: c for c in fresh.changes}
    for old in saved.actionable:
        new = now.get(old.address)
        if new is None or new.action is not old.action:
            reasons.append(f"{old.key}: planned {old.action.value}, now "
                           f"{new.action.value if new else 'nothing to do'}")
        elif old.job and (not new.job or new.job.name != old.job.name or new.job.update_time != old.job.update_time):
            reasons.append(f"{old.key}: job {old.job.name} changed since the plan "
                           f"(updateTime {old.job.update_time} -> {new.job.update_time if new.job else 'gone'})")
    return reasons
