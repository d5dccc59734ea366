"""The emulator's backend: tuning jobs, their operations, the clock-driven state machine,
list filtering and paging. No HTTP here: methods take decoded values and raise ApiError.

Time only matters at the edges: every public method first applies the state transitions
that have come due on the clock (a heap of scheduled events), so a virtual clock that stands
still keeps every job where it is, and `advance()` plays the schedule forward in order.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import heapq
import json
import random
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from reconciler import jsonio
from reconciler.emulator import exceptions as err
from reconciler.emulator import schema
from reconciler.emulator.clock import Clock, rfc3339
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.filters import JOB_STATES, compile_filter
from reconciler.emulator.jobs import PROTO_TUNING_JOB_FIELDS, TUNING_JOB_TYPE, Job, Operation, chosen_hyper_parameters

TUNING_JOB = schema.TUNING_JOB
REBASE_REQUEST = f"{schema.PREFIX}RebaseTunedModelRequest"

ACTIVE = frozenset(
    {"JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_PAUSED", "JOB_STATE_UPDATING"}
)
FINISHED = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    }
)
FAILED_MESSAGE = "Failed to create endpoint. Tuned model is uploaded and can be accessed through Model Registry."
CANCELLED_MESSAGE = "The tuning job was cancelled."
EXPIRED_MESSAGE = "The tuning job expired."
DEFAULT_SEED_SPEC: dict[str, Any] = {
    "baseModel": "gemini-2.5-flash",
    "supervisedTuningSpec": {"trainingDatasetUri": "gs://emulator-seed/train.jsonl"},
}

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_PARENT = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")
_JOB_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/tuningJobs/([^/]+)$")
_OP_NAME = re.compile(r"^(projects/[^/]+/locations/[^/]+/tuningJobs/[^/]+)/operations/([^/]+)$")
_MODEL_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/models/(\d+)(?:@(\d+))?$")
_DATASET = re.compile(r"^projects/[^/]+/locations/[^/]+/datasets/[^/]+$")


@dataclass
class _ParentIndex:
    jobs: list[Job] = field(default_factory=list)  # ascending seq
    by_label: dict[tuple[str, str], list[Job]] = field(default_factory=dict)  # ascending seq


@dataclass(frozen=True)
class Page:
    jobs: list[dict[str, Any]]
    next_page_token: str | None


class Backend:
    """All state of one emulator. Thread-safe: tests may call it directly while the server
    thread serves requests."""

    def __init__(self, config: EmulatorConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock = clock or Clock(virtual=self.config.virtual_clock)
        self.lock = threading.RLock()
        self._ids = random.Random(f"ids-{self.config.seed}")
        self.on_change: list[Any] = []  # callables run after each mutation (persistence)
        self._clear()

    def _clear(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.operations: dict[str, Operation] = {}
        self._ops_by_job: dict[str, list[str]] = {}
        self._parents: dict[tuple[str, str], _ParentIndex] = {}
        self._models: dict[str, Job] = {}  # model id -> job with the latest version
        self._events: list[tuple[float, int, str, int]] = []  # (due, tie, job name, generation)
        self._tie = 0
        self._seq = 0
        self._used_ids: set[str] = set()

    # -- names and projects ------------------------------------------------------------

    def project_number(self, project: str) -> str:
        if project.isdigit():
            return project
        mapped = self.config.project_numbers.get(project)
        if mapped is not None:
            return mapped
        digest = int(hashlib.sha256(project.encode()).hexdigest(), 16)
        return str(100_000_000_000 + digest % 900_000_000_000)  # stable, 12 digits

    def _parent_key(self, parent: str) -> tuple[str, str]:
        match = _PARENT.match(parent)
        if not match:
            raise err.InvalidArgument(f'Invalid parent "{parent}": expected projects/{{project}}/locations/{{location}}.')
        return self.project_number(match.group(1)), match.group(2)

    def _new_id(self) -> str:
        while True:
            number = self._ids.getrandbits(63)
            candidate = str(number)
            if number < 10**18 or candidate in self._used_ids:
                continue  # 19 digits, a positive int64, never reused
            self._used_ids.add(candidate)
            return candidate

    def _job(self, name: str) -> Job:
        match = _JOB_NAME.match(name)
        if not match:
            raise err.InvalidArgument(f'Invalid TuningJob resource name "{name}".')
        project, location, job_id = match.groups()
        if not job_id.isdigit():
            raise err.InvalidArgument(f'Invalid TuningJob resource name "{name}": the id must be a number.')
        canonical = f"projects/{self.project_number(project)}/locations/{location}/tuningJobs/{job_id}"
        job = self.jobs.get(canonical)
        if job is None:
            raise err.NotFound(f'The TuningJob "{canonical}" does not exist.')
        return job

    def _operation(self, name: str) -> Operation:
        match = _OP_NAME.match(name)
        if not match:
            raise err.InvalidArgument(f'Invalid Operation resource name "{name}".')
        job_part, op_id = match.groups()
        job_match = _JOB_NAME.match(job_part)
        assert job_match is not None
        project, location, job_id = job_match.groups()
        canonical = f"projects/{self.project_number(project)}/locations/{location}/tuningJobs/{job_id}/operations/{op_id}"
        op = self.operations.get(canonical)
        if op is None:
            raise err.NotFound(f'Operation "{canonical}" not found.')
        return op

    # -- the clock and the state machine -----------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def tick(self) -> None:
        """Apply every scheduled transition that is due, in time order."""
        with self.lock:
            now = self.clock.now()
            changed = False
            while self._events and self._events[0][0] <= now:
                due, _, name, generation = heapq.heappop(self._events)
                job = self.jobs.get(name)
                if job is None or job.generation != generation or job.pinned:
                    continue
                self._step(job, due)
                changed = True
            if changed:
                self._changed()

    def advance(self, seconds: float) -> float:
        with self.lock:
            self.clock.advance(seconds)
            self.tick()
            return self.clock.now()

    def _schedule(self, job: Job, due: float) -> None:
        self._tie += 1
        heapq.heappush(self._events, (due, self._tie, job.name, job.generation))

    def _step(self, job: Job, at: float) -> None:
        """One scheduled transition of `job`, happening at time `at`."""
        if job.state == "JOB_STATE_PENDING":
            self._start(job, at)
            self._schedule(job, job.create_time + self.config.job_duration)
        elif job.state == "JOB_STATE_RUNNING":
            self._finish(job, job.outcome, at)
        elif job.state == "JOB_STATE_CANCELLING":
            self._finish(job, "JOB_STATE_CANCELLED", at)

    def _start(self, job: Job, at: float) -> None:
        job.state = "JOB_STATE_RUNNING"
        job.start_time = at
        job.update_time = at
        job.spec = self._with_chosen_hyper_parameters(job)
        self._settle_rebase(job, at)

    def _with_chosen_hyper_parameters(self, job: Job) -> dict[str, Any]:
        """The service fills the hyperparameters it chose where the user left them unset."""
        key = job.tuning_spec_key()
        tuning = job.spec.get(key)
        if tuning is None:
            return job.spec
        given = tuning.get("hyperParameters", {})
        chosen = chosen_hyper_parameters(job.example_count)
        if key == "preferenceOptimizationSpec":
            chosen["beta"] = 0.1
        merged = {**chosen, **given}
        if merged == given:
            return job.spec
        return {**job.spec, key: {**tuning, "hyperParameters": merged}}

    def _finish(self, job: Job, state: str, at: float) -> None:
        if job.start_time is None and state in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"):
            self._start(job, at)
        job.state = state
        job.update_time = at
        job.end_time = at
        if state == "JOB_STATE_FAILED":
            job.error = {"code": 13, "message": FAILED_MESSAGE}
        elif state == "JOB_STATE_CANCELLED":
            job.error = {"code": 1, "message": CANCELLED_MESSAGE}
        elif state == "JOB_STATE_EXPIRED":
            job.error = {"code": 4, "message": EXPIRED_MESSAGE}
        else:
            job.error = None
        self._settle_rebase(job, at)

    def _settle_rebase(self, job: Job, at: float) -> None:
        """A rebase operation is done once its new job is running (or ended before that)."""
        if job.rebase_op is None:
            return
        op = self.operations.get(job.rebase_op)
        if op is None or op.done:
            return
        op.done = True
        op.update_time = at
        if job.state == "JOB_STATE_CANCELLED":
            op.error = {"code": 1, "message": "Operation was cancelled."}
        else:
            op.response = {"@type": TUNING_JOB_TYPE} | {
                k: v for k, v in job.resource().items() if k in PROTO_TUNING_JOB_FIELDS
            }

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    # -- create ------------------------------------------------------------------------

    def validate_spec(self, spec: dict[str, Any], path: str = "tuning_job") -> None:
        """The service's checks of a decoded TuningJob body; 400 with field violations."""
        problems: list[tuple[str, str]] = []
        if not spec.get("baseModel") and not spec.get("preTunedModel", {}).get("tunedModelName"):
            problems.append((f"{path}.base_model", "base_model is required."))
        specs = [k for k in ("supervisedTuningSpec", "preferenceOptimizationSpec") if k in spec]
        if not specs:
            problems.append(
                (f"{path}.tuning_spec", "One of supervised_tuning_spec or preference_optimization_spec must be set.")
            )
        elif len(specs) > 1:
            problems.append(
                (f"{path}.tuning_spec", "Only one of supervised_tuning_spec or preference_optimization_spec may be set.")
            )
        for key in specs:
            tuning = spec[key]
            where = f"{path}.{schema.snake(key)}"
            uri = tuning.get("trainingDatasetUri")
            if not uri:
                problems.append((f"{where}.training_dataset_uri", "training_dataset_uri is required."))
            elif not _dataset_ok(uri):
                problems.append(
                    (f"{where}.training_dataset_uri", "training_dataset_uri should be a GCS object of type JSONL.")
                )
            validation_uri = tuning.get("validationDatasetUri")
            if validation_uri and not _dataset_ok(validation_uri):
                problems.append(
                    (f"{where}.validation_dataset_uri", "validation_dataset_uri should be a GCS object of type JSONL.")
                )
            hyper = tuning.get("hyperParameters", {})
            if "epochCount" in hyper and int(hyper["epochCount"]) <= 0:
                problems.append((f"{where}.hyper_parameters.epoch_count", "epoch_count must be positive."))
            if "learningRateMultiplier" in hyper and not hyper["learningRateMultiplier"] > 0:
                problems.append(
                    (f"{where}.hyper_parameters.learning_rate_multiplier", "learning_rate_multiplier must be positive.")
                )
        labels = spec.get("labels", {})
        if len(labels) > 64:
            problems.append((f"{path}.labels", "At most 64 labels are allowed."))
        for key, value in labels.items():
            if not _LABEL_KEY.match(key):
                problems.append(
                    (
                        f"{path}.labels",
                        f'Label key "{key}" is invalid: keys must start with a lowercase letter and hold at most '
                        "63 more lowercase letters, digits, '_' or '-'.",
                    )
                )
            if not _LABEL_VALUE.match(value):
                problems.append(
                    (
                        f"{path}.labels",
                        f'Label value "{value}" of key "{key}" is invalid: values hold at most 63 lowercase '
                        "letters, digits, '_' or '-'.",
                    )
                )
        if len(spec.get("tunedModelDisplayName", "")) > 128:
            problems.append((f"{path}.tuned_model_display_name", "tuned_model_display_name is longer than 128 characters."))
        if problems:
            raise err.field_violations(problems)

    def decode_job(self, body: Any, path: str = "tuning_job") -> dict[str, Any]:
        spec = schema.decode_message(TUNING_JOB, body, path)
        tuning_key = next((k for k in ("supervisedTuningSpec", "preferenceOptimizationSpec") if k in spec), None)
        if tuning_key is not None and "hyperParameters" not in spec[tuning_key]:
            # observed: hyperParameters is echoed as `{}` when none were given
            spec[tuning_key] = {**spec[tuning_key], "hyperParameters": {}}
        return spec

    def create(self, parent: str, body: Any) -> dict[str, Any]:
        with self.lock:
            self.tick()
            project, location = self._parent_key(parent)
            spec = self.decode_job(body)
            self.validate_spec(spec)
            job = self._insert(project, location, spec, self.clock.now())
            self._changed()
            return job.resource()

    def _insert(self, project: str, location: str, spec: dict[str, Any], now: float, model_id: str | None = None,
                model_version: int = 1, endpoint_id: str | None = None, schedule: bool = True) -> Job:
        job_id = self._new_id()
        self._seq += 1
        tuning = spec.get("supervisedTuningSpec") or spec.get("preferenceOptimizationSpec") or {}
        uri = str(tuning.get("trainingDatasetUri", ""))
        pre_tuned = _MODEL_NAME.match(spec.get("preTunedModel", {}).get("tunedModelName", ""))
        if model_id is None and pre_tuned and pre_tuned.group(3) in self._models:
            # continuous tuning: a new version of the model it starts from
            source = self._models[pre_tuned.group(3)]
            model_id, model_version = source.model_id, source.model_version + 1
        job = Job(
            seq=self._seq,
            id=job_id,
            project=project,
            location=location,
            spec=spec,
            state="JOB_STATE_PENDING",
            create_time=now,
            update_time=now,
            example_count=50 + int(hashlib.sha256(uri.encode()).hexdigest()[:8], 16) % 1950,
            model_id=model_id or self._new_id(),
            model_version=model_version,
            endpoint_id=endpoint_id or self._new_id(),
            experiment=f"projects/{project}/locations/{location}/metadataStores/default/contexts/"
            f"tuning-experiment-{_experiment_stamp(now)}",
            outcome="JOB_STATE_FAILED" if "fail" in uri else "JOB_STATE_SUCCEEDED",
        )
        self._index(job)
        if schedule:
            self._schedule(job, now + self.config.effective_start_delay)
        return job

    def _index(self, job: Job) -> None:
        self.jobs[job.name] = job
        self._used_ids.add(job.id)
        index = self._parents.setdefault((job.project, job.location), _ParentIndex())
        index.jobs.append(job)
        for pair in job.labels.items():
            index.by_label.setdefault(pair, []).append(job)
        latest = self._models.get(job.model_id)
        if latest is None or latest.model_version <= job.model_version:
            self._models[job.model_id] = job

    # -- read --------------------------------------------------------------------------

    def get(self, name: str) -> dict[str, Any]:
        with self.lock:
            self.tick()
            return self._job(name).resource()

    def list(self, parent: str, filter_text: str = "", page_size: int = 0, page_token: str = "",
             wanted: frozenset[str] | None = None) -> Page:
        """`wanted`: the top-level job fields a partial response keeps (None: all)."""
        with self.lock:
            self.tick()
            project, location = self._parent_key(parent)
            try:
                compiled = compile_filter(filter_text)
            except ValueError as exc:
                raise err.InvalidArgument(f'Invalid filter "{filter_text}": {exc}.') from None
            if page_size < 0:
                raise err.InvalidArgument("page_size must not be negative.")
            size = min(page_size or self.config.default_page_size, self.config.max_page_size)
            parent_name = f"projects/{project}/locations/{location}"
            before = self._decode_token(page_token, parent_name, filter_text) if page_token else None
            index = self._parents.get((project, location), _ParentIndex())
            candidates = index.by_label.get(compiled.hint, []) if compiled.hint else index.jobs
            # Newest first, resuming strictly below the last seq returned: jobs created while
            # paging get higher seqs and so neither shift nor repeat anything.
            start = len(candidates) if before is None else bisect.bisect_left(candidates, before, key=lambda j: j.seq)
            found: list[Job] = []
            i = start - 1
            while i >= 0 and len(found) < size:
                job = candidates[i]
                if compiled.predicate(job):
                    found.append(job)
                i -= 1
            more = len(found) == size and any(compiled.predicate(candidates[k]) for k in range(i, -1, -1))
            token = self._encode_token(parent_name, filter_text, found[-1].seq) if more and found else None
            return Page([job.resource(wanted) for job in found], token)

    @staticmethod
    def _encode_token(parent: str, filter_text: str, seq: int) -> str:
        raw = json.dumps({"p": parent, "f": hashlib.sha256(filter_text.encode()).hexdigest()[:16], "s": seq})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_token(token: str, parent: str, filter_text: str) -> int:
        try:
            raw = jsonio.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            seq = raw["s"]
            ok = (
                isinstance(seq, int)
                and raw["p"] == parent
                and raw["f"] == hashlib.sha256(filter_text.encode()).hexdigest()[:16]
            )
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise err.InvalidArgument("Invalid page token: it does not belong to this list request.")
        return int(seq)

    # -- cancel ------------------------------------------------------------------------

    def cancel(self, name: str) -> dict[str, Any]:
        with self.lock:
            self.tick()
            job = self._job(name)
            if job.state == "JOB_STATE_CANCELLING":
                return {}
            if job.state not in ACTIVE:
                raise err.FailedPrecondition(
                    f"Cannot cancel TuningJob {job.name}: it is already in state {job.state}."
                )
            self._begin_cancel(job, self.clock.now())
            self._changed()
            return {}

    def _begin_cancel(self, job: Job, now: float) -> None:
        job.state = "JOB_STATE_CANCELLING"
        job.update_time = now
        job.generation += 1
        job.pinned = False
        self._schedule(job, now + self.config.effective_cancel_delay)

    # -- rebase ------------------------------------------------------------------------

    def rebase(self, parent: str, body: Any) -> dict[str, Any]:
        with self.lock:
            self.tick()
            project, location = self._parent_key(parent)
            request = schema.decode_message(REBASE_REQUEST, body, "")
            ref = request.get("tunedModelRef")
            if not ref:
                raise err.field_violations([("tuned_model_ref", "tuned_model_ref is required.")])
            if len(ref) != 1:
                raise err.field_violations(
                    [("tuned_model_ref", "Exactly one of tuning_job, tuned_model or pipeline_job must be set.")]
                )
            source = self._rebase_source(ref)
            if source.state != "JOB_STATE_SUCCEEDED":
                raise err.FailedPrecondition(
                    f"TuningJob {source.name} is in state {source.state}; only a succeeded tuning job can be rebased."
                )
            if "supervisedTuningSpec" not in source.spec:
                raise err.FailedPrecondition("Only supervised tuning jobs can be rebased.")
            destination = request.get("artifactDestination", {}).get("outputUriPrefix")
            if destination is not None and not destination.startswith("gs://"):
                raise err.field_violations(
                    [("artifact_destination.output_uri_prefix", "output_uri_prefix must start with gs://.")]
                )
            overrides = self.decode_job(request["tuningJob"], "tuning_job") if "tuningJob" in request else {}
            # Rebase keeps the job's tuning data and settings; the request may replace any of
            # them, notably `baseModel`. Server-chosen hyperparameters are chosen afresh.
            base = {k: v for k, v in source.spec.items() if k not in overrides}
            if "supervisedTuningSpec" in base:
                base["supervisedTuningSpec"] = {**base["supervisedTuningSpec"], "hyperParameters": {}}
            spec = base | overrides
            self.validate_spec(spec)
            now = self.clock.now()
            same_endpoint = bool(request.get("deployToSameEndpoint"))
            job = self._insert(
                project,
                location,
                spec,
                now,
                model_id=source.model_id,
                model_version=self._models[source.model_id].model_version + 1,
                endpoint_id=source.endpoint_id if same_endpoint else None,
            )
            op = Operation(name=f"{job.name}/operations/{self._new_id()}", job_name=job.name, create_time=now,
                           update_time=now)
            job.rebase_op = op.name
            self.operations[op.name] = op
            self._ops_by_job.setdefault(job.name, []).append(op.name)
            self._changed()
            return op.resource()

    def _rebase_source(self, ref: dict[str, Any]) -> Job:
        if "tuningJob" in ref:
            try:
                return self._job(ref["tuningJob"])
            except err.InvalidArgument as exc:
                raise err.field_violations([("tuned_model_ref.tuning_job", exc.message)]) from None
        if "tunedModel" in ref:
            match = _MODEL_NAME.match(ref["tunedModel"])
            if not match:
                raise err.field_violations(
                    [("tuned_model_ref.tuned_model", f'Invalid Model resource name "{ref["tunedModel"]}".')]
                )
            job = self._models.get(match.group(3))
            if job is None or job.project != self.project_number(match.group(1)):
                raise err.NotFound(f'The Model "{ref["tunedModel"]}" does not exist.')
            return job
        raise err.field_violations(
            [("tuned_model_ref.pipeline_job", "Rebasing a pipeline job is not supported for this model.")]
        )

    # -- operations --------------------------------------------------------------------

    def get_operation(self, name: str) -> dict[str, Any]:
        with self.lock:
            self.tick()
            return self._operation(name).resource()

    def operation_done(self, name: str) -> bool:
        with self.lock:
            self.tick()
            return self._operation(name).done

    def list_operations(self, job_name: str) -> list[dict[str, Any]]:
        with self.lock:
            self.tick()
            job = self._job(job_name)
            return [self.operations[n].resource() for n in self._ops_by_job.get(job.name, [])]

    def cancel_operation(self, name: str) -> dict[str, Any]:
        with self.lock:
            self.tick()
            op = self._operation(name)
            if not op.done:
                job = self.jobs.get(op.job_name)
                now = self.clock.now()
                if job is not None and job.state in ACTIVE:
                    self._finish(job, "JOB_STATE_CANCELLED", now)
                    job.generation += 1
                op.done, op.update_time = True, now
                op.response, op.error = None, {"code": 1, "message": "Operation was cancelled."}
                self._changed()
            return {}

    def delete_operation(self, name: str) -> dict[str, Any]:
        with self.lock:
            op = self._operation(name)
            del self.operations[op.name]
            self._ops_by_job[op.job_name].remove(op.name)
            self._changed()
            return {}

    # -- admin -------------------------------------------------------------------------

    def seed(self, parent: str, count: int, labels: dict[str, str] | None = None, state: str | None = None,
             spec: dict[str, Any] | None = None) -> list[str]:
        """Bulk-create `count` jobs; `{n}` in a label value becomes the job's index."""
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1_000_000:
            raise err.InvalidArgument("seed: count must be an integer from 0 to 1000000.")
        if state is not None and state not in JOB_STATES:
            raise err.InvalidArgument(f"seed: unknown state {state!r}.")
        labels = labels or {}
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise err.InvalidArgument("seed: labels must map strings to strings.")
        with self.lock:
            self.tick()
            project, location = self._parent_key(parent)
            base = self.decode_job(spec if spec is not None else DEFAULT_SEED_SPEC)
            self.validate_spec({**base, "labels": {**base.get("labels", {}), **{k: v.replace("{n}", "0") for k, v in labels.items()}}})
            templated = {k: v for k, v in labels.items() if "{n}" in v}
            fixed = {**base.get("labels", {}), **{k: v for k, v in labels.items() if "{n}" not in v}}
            now = self.clock.now()
            names = []
            shared = {**base, "labels": fixed} if fixed else base
            for n in range(count):
                job_spec = shared
                if templated:
                    job_spec = {**base, "labels": {**fixed, **{k: v.replace("{n}", str(n)) for k, v in templated.items()}}}
                forced = state is not None and state != "JOB_STATE_PENDING"
                job = self._insert(project, location, job_spec, now, schedule=not forced)
                if forced:
                    self._force(job, state, now)
                names.append(job.name)
            self._changed()
            return names

    def set_state(self, name_or_id: str, state: str) -> dict[str, Any]:
        """Out-of-band change, as if someone acted in the console. The job keeps that state
        (the clock no longer moves it) except CANCELLING, which goes on to CANCELLED."""
        if state not in JOB_STATES:
            raise err.InvalidArgument(f"Unknown state {state!r}.")
        with self.lock:
            self.tick()
            job = self._by_name_or_id(name_or_id)
            self._force(job, state, self.clock.now())
            self._changed()
            return job.resource()

    def expire(self, name_or_id: str) -> None:
        """The job disappears as when its history expires: get answers 404, list leaves it out.
        (Tests only: the API has no delete for tuning jobs.)"""
        with self.lock:
            job = self._by_name_or_id(name_or_id)
            del self.jobs[job.name]
            index = self._parents[(job.project, job.location)]
            index.jobs.remove(job)
            for pair in job.labels.items():
                index.by_label[pair].remove(job)
            if self._models.get(job.model_id) is job:
                del self._models[job.model_id]
            for op in self._ops_by_job.pop(job.name, []):
                self.operations.pop(op, None)
            self._changed()

    def _force(self, job: Job, state: str, now: float) -> None:
        job.generation += 1
        if state == "JOB_STATE_CANCELLING":
            self._begin_cancel(job, now)
            return
        job.pinned = True
        if state in FINISHED:
            self._finish(job, state, now)
        else:
            if state in ("JOB_STATE_RUNNING", "JOB_STATE_PAUSED", "JOB_STATE_UPDATING") and job.start_time is None:
                self._start(job, now)
            job.state = state
            job.update_time = now
            job.end_time = None
            job.error = None

    def _by_name_or_id(self, name_or_id: str) -> Job:
        if "/" in name_or_id:
            return self._job(name_or_id)
        matches = [job for job in self.jobs.values() if job.id == name_or_id]
        if not matches:
            raise err.NotFound(f'No TuningJob has the id "{name_or_id}".')
        return matches[0]

    def reset(self) -> None:
        with self.lock:
            self._clear()
            self._changed()

    def counts(self) -> dict[str, int]:
        with self.lock:
            self.tick()
            by_state: dict[str, int] = {}
            for job in self.jobs.values():
                by_state[job.state] = by_state.get(job.state, 0) + 1
            return by_state

    # -- persistence -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.seq)
            return {
                "version": 1,
                "now": self.clock.now(),
                "seq": self._seq,
                "jobs": [_job_record(j) for j in jobs],
                "operations": [_op_record(op) for op in self.operations.values()],
            }

    def restore(self, data: dict[str, Any]) -> None:
        with self.lock:
            self._clear()
            self.clock.restore(float(data.get("now", 0.0)))
            for record in data.get("jobs", []):
                job = Job(**record)
                self._index(job)
                self._seq = max(self._seq, job.seq)
                self._reschedule(job)
            for record in data.get("operations", []):
                op = Operation(**record)
                self.operations[op.name] = op
                self._ops_by_job.setdefault(op.job_name, []).append(op.name)
            self._seq = max(self._seq, int(data.get("seq", 0)))

    def _reschedule(self, job: Job) -> None:
        if job.pinned:
            return
        if job.state == "JOB_STATE_PENDING":
            self._schedule(job, job.create_time + self.config.effective_start_delay)
        elif job.state == "JOB_STATE_RUNNING":
            self._schedule(job, job.create_time + self.config.job_duration)
        elif job.state == "JOB_STATE_CANCELLING":
            self._schedule(job, job.update_time + self.config.effective_cancel_delay)


@lru_cache(maxsize=16)
def _experiment_stamp(now: float) -> str:
    """`20241008232013040864`: the create time as the service names experiments."""
    return rfc3339(now)[:26].replace("-", "").replace(":", "").replace("T", "").replace(".", "")


def _dataset_ok(uri: str) -> bool:
    return (uri.startswith("gs://") and uri.endswith(".jsonl") and len(uri) > len("gs://x/.jsonl") - 1) or bool(
        _DATASET.match(uri)
    )


def _job_record(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in Job.__dataclass_fields__}


def _op_record(op: Operation) -> dict[str, Any]:
    return {name: getattr(op, name) for name in Operation.__dataclass_fields__}
