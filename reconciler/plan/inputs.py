"""What a job's references resolve to while planning and applying. Pure: no I/O.

Every job a plan touches has an upstream *result* for the jobs that use its outputs: its
outputs once its job has SUCCEEDED and the plan leaves it so; *pending* while a new job is
to be made or its job is still running ("known after KEY succeeds"); *blocked* when its job
FAILED, EXPIRED or was cancelled, or it is blocked itself. A downstream job is only ever
created from the outputs of a SUCCEEDED upstream job, never from a missing value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import Enum

from reconciler.errors import ReconcilerError
from reconciler.graph.graph import Field
from reconciler.graph.references import Reference, SpecPath, Template, dotted, parse, set_paths
from reconciler.model import ACTIVE_STATES
from reconciler.plan.differ import FieldChange
from reconciler.plan.live import LiveJob, LiveView
from reconciler.plan.model import Change, Input, Reason


class Status(str, Enum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class UpstreamResult:
    status: Status
    why: str = ""  # pending: "known after KEY succeeds"; blocked: the reason
    outputs: dict[str, str] = field(default_factory=dict)
    job: str | None = None


def outputs_of(job: LiveJob) -> dict[str, str]:
    """The outputs (`reconciler.graph.references.OUTPUTS`) a job has, by name."""
    out = {"name": job.name} if job.name else {}
    tuned = job.raw.get("tunedModel")
    if isinstance(tuned, dict):
        for name in ("model", "endpoint"):
            if isinstance(tuned.get(name), str) and tuned[name]:
                out[f"tunedModel.{name}"] = tuned[name]
    return out


def job_result(key: str, job: LiveJob | None) -> UpstreamResult:
    """The result of an upstream whose change leaves `job` as its current job."""
    if job is None:
        return UpstreamResult(Status.BLOCKED, f"{key} has no job")
    if job.state == "JOB_STATE_SUCCEEDED":
        return UpstreamResult(Status.SUCCEEDED, outputs=outputs_of(job), job=job.name)
    if job.state in ACTIVE_STATES:
        return UpstreamResult(Status.PENDING, f"known after {key} succeeds", job=job.name)
    why = f": {job.error_message}" if job.error_message else ""
    return UpstreamResult(Status.BLOCKED, f"{key}'s job {job.short_state}{why}", job=job.name)


def change_result(change: Change, live: LiveView) -> UpstreamResult:
    """The result the jobs using `change`'s outputs will see once the plan is applied."""
    if change.action.starts_a_job or change.reason is Reason.WAITING_FOR_ACTIVE:
        return UpstreamResult(Status.PENDING, f"known after {change.key} succeeds")
    if change.reason is Reason.UPSTREAM_BLOCKED:
        return UpstreamResult(Status.BLOCKED, f"{change.key} is blocked ({change.detail})")
    if change.after is None:
        return UpstreamResult(Status.BLOCKED, f"{change.key} left the manifests")
    return job_result(change.key, live.job(change.job.name) if change.job else None)


def short_name(value: str | None) -> str:
    """`projects/1/locations/l/models/123@1` -> `models/123@1` (for messages)."""
    return re.sub(r"^projects/[^/]+/locations/[^/]+/", "", value) if value else "(nothing)"


@dataclass
class Resolution:
    """The fields of one downstream job with what is known now."""

    values: dict[SpecPath, str]  # plain strings, or templates where something is pending
    known: dict[SpecPath, bool]
    pending: dict[str, str]  # upstream address -> why
    blocked: dict[str, str]


def resolve(fields: tuple[Field, ...], results: dict[str, UpstreamResult]) -> Resolution:
    res = Resolution({}, {}, {}, {})
    for f in fields:
        parts: list[str | Reference] = []
        known = True
        for part in f.canonical.parts:
            if isinstance(part, str):
                parts.append(part)
                continue
            address = part.key
            result = results.get(address)
            if result is not None and result.status is Status.SUCCEEDED and part.output in result.outputs:
                parts.append(result.outputs[part.output])
                continue
            known = False
            parts.append(part)
            if result is None:  # only on a cycle, which is a problem of its own
                res.blocked[address] = f"{address.rsplit('/', 1)[-1]} is on a reference cycle"
            elif result.status is Status.SUCCEEDED:
                res.blocked[address] = f"{address.rsplit('/', 1)[-1]}'s job has no {part.output}"
            elif result.status is Status.PENDING:
                res.pending[address] = result.why
            else:
                res.blocked[address] = result.why
        # Known: the plain string. Not yet: the template, written back with its escapes.
        res.values[f.path] = "".join(parts) if known else Template(tuple(parts)).substitute(lambda r: r).text()
        res.known[f.path] = known
    return res


def inputs_for(fields: tuple[Field, ...], res: Resolution, built: dict[SpecPath, str | None]) -> tuple[Input, ...]:
    return tuple(Input(f.path, f.text, f.upstreams, res.values[f.path] if res.known[f.path] else None,
                       built.get(f.path)) for f in fields if f.upstreams)


def input_paths(change: Change) -> set[str]:
    return {dotted(i.path) for i in change.inputs}


def only_inputs_changed(change: Change) -> bool:
    paths = input_paths(change)
    return bool(change.field_changes) and all(fc.path in paths for fc in change.field_changes)


class UnresolvedInput(ReconcilerError):
    """An upstream job succeeded without the output a downstream job needs."""


def resolve_waiting(change: Change, upstream_jobs: dict[str, LiveJob]) -> Change:
    """`change` with its references filled in from its upstream jobs, now SUCCEEDED: the
    create or replace apply sends. Raises UnresolvedInput for an output the job lacks."""
    from reconciler.apischema.normalize import normalized_hash

    outputs = {a: outputs_of(j) for a, j in upstream_jobs.items()}
    values: dict[SpecPath, str] = {}
    inputs = []
    for i in change.inputs:
        if i.value is not None:
            inputs.append(i)
            continue

        def value(ref: Reference) -> str:
            found = outputs.get(ref.key, {}).get(ref.output)
            if not found:
                raise UnresolvedInput(f"{ref.key} has no {ref.output} to build {change.key} from")
            return found

        text = parse(i.template).substitute(value).text()
        values[i.path] = text
        inputs.append(replace(i, value=text))
    after = set_paths(change.after or {}, values)
    shown = {dotted(p): v for p, v in values.items()}
    changes = tuple(replace(fc, after=shown[fc.path]) if fc.path in shown else fc for fc in change.field_changes)
    return replace(change, after=after, spec_hash=normalized_hash(after), inputs=tuple(inputs), waits_for=(),
                   field_changes=changes)


def built_values(fields: tuple[Field, ...], entry_inputs: dict[str, str], job: LiveJob | None
                 ) -> dict[SpecPath, str | None]:
    """What the current job was created with, per field: recorded in state, else read off the
    live job (older state files, imported jobs). Nothing without a current job."""
    from reconciler.graph.references import get_path

    if job is None:
        return {}
    out: dict[SpecPath, str | None] = {}
    for f in fields:
        recorded = entry_inputs.get(f.dotted)
        if recorded is None:
            found = get_path(job.raw, f.path)
            recorded = found if isinstance(found, str) else None
        out[f.path] = recorded
    return out


def known_after(change: Change, fc: FieldChange) -> str | None:
    """`(known after KEY succeeds)` for a field of a waiting change whose value is pending."""
    for i in change.inputs:
        if i.value is None and dotted(i.path) == fc.path:
            return known_after_text(i)
    return None


def known_after_text(i: Input) -> str:
    keys = [u.rsplit("/", 1)[-1] for u in i.upstreams]
    return f"(known after {' and '.join(keys)} {'succeeds' if len(keys) == 1 else 'succeed'})"
