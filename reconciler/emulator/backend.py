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
from typing import Any, Callable, Hashable

from reconciler import jsonio
from reconciler.apischema.versions import surface
from reconciler.emulator import exceptions as err
from reconciler.emulator import schema, substates
from reconciler.emulator.clock import Clock, rfc3339
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.filters import JOB_STATES, compile_filter
from reconciler.emulator.jobs import Job, Operation, chosen_hyper_parameters, training_data
from reconciler.emulator.metadata import experiment_context
from reconciler.model import V1, V1BETA1

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
_REGION = re.compile(r"^projects/([^/]+)/locations/([^/]+)(?:/|$)")
_JOB_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/tuningJobs/([^/]+)$")
_OP_NAME = re.compile(r"^(projects/[^/]+/locations/[^/]+/tuningJobs/[^/]+)/operations/([^/]+)$")
_CONTEXT_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/metadataStores/([^/]+)/contexts/([^/]+)$")
_MODEL_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/models/(\d+)(?:@(\d+))?$")
_DATASET = re.compile(r"^projects/[^/]+/locations/[^/]+/datasets/[^/]+$")


@dataclass
class _ParentIndex:
    jobs: list[Job] = field(default_factory=list)  # ascending seq
    by_label: dict[tuple[str, str], list[Job]] = field(default_factory=dict)  # ascending seq


@dataclass(frozen=True)
class Page:
    jobs: list[Any]  # resources, or their encodings when `list` was given `encode`
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
        self._experiments: dict[str, Job] = {}  # experiment context name -> the first job with it
        self._versions: dict[tuple[str, int], Job] = {}  # (model id, version) -> the job that made it
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

    def region_of(self, name: str) -> tuple[str, str] | None:
        """(project number, location) of a resource name or parent; None if it has none."""
        match = _REGION.match(name)
        return (self.project_number(match.group(1)), match.group(2)) if match else None

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
            self._schedule_running(job)
        elif job.state == "JOB_STATE_RUNNING":
            upcoming = substates.next_stage(job.start_time or at, self._end_of(job), job.tuning_state)
            if upcoming is not None:  # v1beta1's finer state moves on; the job runs on
                job.tuning_state = upcoming[1]
                self._schedule_running(job)
            else:
                self._finish(job, job.outcome, at)
        elif job.state == "JOB_STATE_CANCELLING":
            self._finish(job, "JOB_STATE_CANCELLED", at)

    def _end_of(self, job: Job) -> float:
        return job.create_time + self.config.job_duration

    def _schedule_running(self, job: Job) -> None:
        """The next event of a RUNNING job: its next finer state, else its end."""
        upcoming = substates.next_stage(job.start_time or job.create_time, self._end_of(job), job.tuning_state)
        self._schedule(job, upcoming[0] if upcoming is not None else self._end_of(job))

    def _start(self, job: Job, at: float) -> None:
        job.state = "JOB_STATE_RUNNING"
        job.tuning_state = substates.FIRST_RUNNING
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
        job.tuning_state = None
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
            op.response = job.resource(version=V1BETA1)  # cut to the version asked for when read

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    # -- create ------------------------------------------------------------------------

    def validate_spec(self, spec: dict[str, Any], path: str = "tuning_job", version: str = V1) -> None:
        """The service's checks of a decoded TuningJob body; 400 with field violations."""
        problems: list[tuple[str, str]] = []
        if not spec.get("baseModel") and not spec.get("preTunedModel", {}).get("tunedModelName"):
            problems.append((f"{path}.base_model", "base_model is required."))
        if spec.get("customBaseModel") and not spec.get("baseModel"):
            problems.append((f"{path}.custom_base_model", "custom_base_model requires base_model."))
        known = surface(version).tuning_specs
        specs = [k for k in known if k in spec]
        names = " or ".join(schema.snake(k) for k in known)
        if not specs:
            problems.append((f"{path}.tuning_spec", f"One of {names} must be set."))
        elif len(specs) > 1:
            problems.append((f"{path}.tuning_spec", f"Only one of {names} may be set."))
        for key in specs:
            tuning = spec[key]
            where = f"{path}.{schema.snake(key)}"
            # Distillation names its data `prompt_dataset_uri` (`training_dataset_uri` is deprecated there).
            field = "promptDatasetUri" if key == "distillationSpec" and "trainingDatasetUri" not in tuning \
                else "trainingDatasetUri"
            uri = tuning.get(field)
            if not uri:
                problems.append((f"{where}.{schema.snake(field)}", f"{schema.snake(field)} is required."))
            elif not _dataset_ok(uri):
                problems.append(
                    (f"{where}.{schema.snake(field)}", f"{schema.snake(field)} should be a GCS object of type JSONL.")
                )
            validation_uri = tuning.get("validationDatasetUri")
            if validation_uri and not _dataset_ok(validation_uri):
                problems.append(
                    (f"{where}.validation_dataset_uri", "validation_dataset_uri should be a GCS object of type JSONL.")
                )
            hyper = tuning.get("hyperParameters", {})
            if key == "partnerModelTuningSpec":
                continue  # free-form hyperparameters: the partner model judges them
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

    def decode_job(self, body: Any, path: str = "tuning_job", version: str = V1) -> dict[str, Any]:
        """A TuningJob body as `version` reads it (camelCase or snake_case keys, enums by name or
        proto number, int64 as string or number): unknown fields, v1beta1's among them in v1, are 400."""
        spec = schema.decode_message(schema.tuning_job(version), body, path)
        tuning_key = next((k for k in surface(version).tuning_specs if k in spec), None)
        if tuning_key is not None and "hyperParameters" not in spec[tuning_key]:
            # observed: hyperParameters is echoed as `{}` when none were given
            spec[tuning_key] = {**spec[tuning_key], "hyperParameters": {}}
        return spec

    def create(self, parent: str, body: Any, version: str = V1) -> dict[str, Any]:
        with self.lock:
            self.tick()
            project, location = self._parent_key(parent)
            spec = self.decode_job(body, version=version)
            self.validate_spec(spec, version=version)
            spec, model_id, model_version = self._continued(project, location, spec)
            job = self._insert(project, location, spec, self.clock.now(), model_id=model_id,
                               model_version=model_version)
            self._changed()
            return job.resource(version=version)

    def _continued(self, project: str, location: str, spec: dict[str, Any]) -> tuple[dict[str, Any], str | None, int]:
        """Continuous tuning (`preTunedModel`): the model must come from a SUCCEEDED job of the
        same project and location. The server fills `preTunedModel.baseModel`; the result is a
        new version of that model, or a new model (@1) when `tunedModelDisplayName` is set.
        Returns the spec as stored, and the model id and version the new job produces."""
        pre = spec.get("preTunedModel")
        if not pre:
            return spec, None, 1
        name = str(pre.get("tunedModelName", ""))
        where = "tuning_job.pre_tuned_model.tuned_model_name"
        match = _MODEL_NAME.match(name)
        if not match:
            raise err.field_violations([(where, f'Invalid Model resource name "{name}": expected '
                                                "projects/{project}/locations/{location}/models/{model}@{version}.")])
        if self.project_number(match.group(1)) != project or match.group(2) != location:
            raise err.field_violations([(where, f'The Model "{name}" must be in the project and location of '
                                                f'the tuning job (projects/{project}/locations/{location}).')])
        model_id, version = match.group(3), match.group(4)
        latest = self._models.get(model_id)
        source = latest if version is None or latest is None else self._versions.get((model_id, int(version)))
        if source is None or source.project != project or source.location != location:
            raise err.field_violations([(where, f'The Model "{name}" does not exist.')])
        if source.state != "JOB_STATE_SUCCEEDED":
            raise err.field_violations([(where, f'The Model "{name}" cannot be tuned further: the tuning job '
                                                f'that produces it ({source.name}) is {source.state}.')])
        stored = {**spec, "preTunedModel": {**pre, "baseModel": source.root_base_model}}
        if spec.get("tunedModelDisplayName"):
            return stored, None, 1
        assert latest is not None
        return stored, model_id, latest.model_version + 1

    def _insert(self, project: str, location: str, spec: dict[str, Any], now: float, model_id: str | None = None,
                model_version: int = 1, endpoint_id: str | None = None, schedule: bool = True) -> Job:
        job_id = self._new_id()
        self._seq += 1
        tuning = next((spec[k] for k in surface(V1BETA1).tuning_specs if k in spec), {})
        uri = training_data(tuning)
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
            tuning_state=substates.WAITING_FOR_QUOTA,
            beta_fields=schema.project(TUNING_JOB, spec) != spec,
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
        self._experiments.setdefault(job.experiment, job)
        self._versions[(job.model_id, job.model_version)] = job

    # -- read --------------------------------------------------------------------------

    def get(self, name: str, version: str = V1) -> dict[str, Any]:
        with self.lock:
            self.tick()
            return self._job(name).resource(version=version)

    def list(self, parent: str, filter_text: str = "", page_size: int = 0, page_token: str = "",
             wanted: frozenset[str] | None = None, version: str = V1,
             encode: Callable[[dict[str, Any]], bytes] | None = None, how: Hashable = None) -> Page:
        """`wanted`: the top-level job fields a partial response keeps (None: all). With
        `encode` (and `how`, what it does), the page holds each job's encoding instead."""
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
            if encode is not None:
                return Page([job.encoded(wanted, version, encode, how) for job in found], token)
            return Page([job.resource(wanted, version) for job in found], token)

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
        job.tuning_state = None
        job.update_time = now
        job.generation += 1
        job.pinned = False
        self._schedule(job, now + self.config.effective_cancel_delay)

    # -- rebase ------------------------------------------------------------------------

    def rebase(self, parent: str, body: Any, version: str = V1) -> dict[str, Any]:
        with self.lock:
            self.tick()
            project, location = self._parent_key(parent)
            request = schema.decode_message(surface(version).schema("RebaseTunedModelRequest"), body, "")
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
            overrides = self.decode_job(request["tuningJob"], "tuning_job", version) if "tuningJob" in request else {}
            # Rebase keeps the job's tuning data and settings; the request may replace any of
            # them, notably `baseModel`. Server-chosen hyperparameters are chosen afresh.
            base = {k: v for k, v in source.spec.items() if k not in overrides}
            if "supervisedTuningSpec" in base:
                base["supervisedTuningSpec"] = {**base["supervisedTuningSpec"], "hyperParameters": {}}
            spec = base | overrides
            self.validate_spec(spec, version=V1BETA1)  # the source job may hold v1beta1 fields
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
                           update_time=now, api_version=version)
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

    def get_operation(self, name: str, version: str | None = None) -> dict[str, Any]:
        """`version` None (`/ui/`): in the version the operation was started through."""
        with self.lock:
            self.tick()
            return self._operation(name).resource(version)

    def operation_done(self, name: str) -> bool:
        with self.lock:
            self.tick()
            return self._operation(name).done

    def list_operations(self, job_name: str, version: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            self.tick()
            job = self._job(job_name)
            return [self.operations[n].resource(version) for n in self._ops_by_job.get(job.name, [])]

    # -- metadata ----------------------------------------------------------------------

    def get_context(self, name: str) -> dict[str, Any]:
        """MetadataService contexts.get, for the `experiment` context of a job (what the Vertex
        AI SDK's `job.refresh()` reads once a job runs). Other contexts do not exist here."""
        with self.lock:
            self.tick()
            match = _CONTEXT_NAME.match(name)
            if not match:
                raise err.InvalidArgument(f'Invalid Context resource name "{name}".')
            project, location, store, context = match.groups()
            canonical = (f"projects/{self.project_number(project)}/locations/{location}/metadataStores/{store}"
                         f"/contexts/{context}")
            job = self._experiments.get(canonical)
            if job is None or job.start_time is None:  # the experiment appears once the job runs
                raise err.NotFound(f'Context "{canonical}" is not found.')
            return experiment_context(canonical, context, job.start_time, job.update_time)

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
             spec: dict[str, Any] | None = None, specs: list[dict[str, Any]] | None = None) -> list[str]:
        """Bulk-create `count` jobs; `{n}` in a label value becomes the job's index. `specs`:
        one spec per job instead (count is then their number), e.g. continuous-tuning chains
        whose jobs each name another job's model; `labels` are added to each spec's own."""
        if specs is not None:
            return self._seed_each(parent, specs, labels or {}, state)
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
            # Seeds may hold any version's fields (a v1 read then leaves v1beta1's out).
            base = self.decode_job(spec if spec is not None else DEFAULT_SEED_SPEC, version=V1BETA1)
            self.validate_spec({**base, "labels": {**base.get("labels", {}), **{k: v.replace("{n}", "0") for k, v in labels.items()}}},
                               version=V1BETA1)
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

    def _seed_each(self, parent: str, specs: Any, labels: dict[str, str], state: str | None) -> list[str]:
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs) or len(specs) > 1_000_000:
            raise err.InvalidArgument("seed: specs must be a list of TuningJob objects.")
        if state is not None and state not in JOB_STATES:
            raise err.InvalidArgument(f"seed: unknown state {state!r}.")
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in labels.items()):
            raise err.InvalidArgument("seed: labels must map strings to strings.")
        with self.lock:
            self.tick()
            project, location = self._parent_key(parent)
            now = self.clock.now()
            decoded = []
            for n, given in enumerate(specs):
                job_spec = self.decode_job(given)
                own = {k: v.replace("{n}", str(n)) for k, v in labels.items()}
                job_spec["labels"] = {**job_spec.get("labels", {}), **own}
                self.validate_spec(job_spec)
                decoded.append(job_spec)
            names = []
            forced = state is not None and state != "JOB_STATE_PENDING"
            for job_spec in decoded:
                job = self._insert(project, location, job_spec, now, schedule=not forced)
                if forced:
                    self._force(job, state, now)  # type: ignore[arg-type]
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
            # A job held RUNNING is mid-tuning; held PENDING or QUEUED it waits for quota.
            job.tuning_state = substates.TUNING if state == "JOB_STATE_RUNNING" else \
                substates.WAITING_FOR_QUOTA if state in ("JOB_STATE_PENDING", "JOB_STATE_QUEUED") else None
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
            self._schedule_running(job)
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
