"""Tuning jobs and operations as stored, and how the API renders them.

Output-only parts (tuned model, checkpoints, dataset statistics) are derived on demand from
a few stored values, so that 50,000 stored jobs stay small.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Collection, Hashable

from reconciler.apischema.versions import ALL_TUNING_SPECS, surface
from reconciler.emulator import schema
from reconciler.emulator.clock import rfc3339
from reconciler.model import V1, V1BETA1

# v1's names (callers that only ever meant v1); `type_url(version, ...)` for either.
TUNING_JOB_TYPE = surface(V1).type_url("TuningJob")
REBASE_METADATA_TYPE = surface(V1).type_url("RebaseTunedModelOperationMetadata")
# Settable fields a v1beta1 job may hold besides the tuning spec, in the order they are shown.
_SOURCE_FIELDS = ("baseModel", "preTunedModel", "customBaseModel")
# Specs whose data statistics the emulator derives (the others have none).
_STATS_KEYS = {"supervisedTuningSpec": "supervisedTuningDataStats", "fullFineTuningSpec": "supervisedTuningDataStats",
               "preferenceOptimizationSpec": "preferenceOptimizationDataStats"}


@dataclass
class Job:
    """One tuning job. `spec` holds the user-settable fields (camelCase, decoded); it is
    never changed in place (seeded jobs share one), only replaced."""

    seq: int  # creation order: the list order and the page-token anchor
    id: str
    project: str  # number
    location: str
    spec: dict[str, Any]
    state: str
    create_time: float
    update_time: float
    example_count: int
    model_id: str
    model_version: int
    endpoint_id: str
    experiment: str
    start_time: float | None = None
    end_time: float | None = None
    error: dict[str, Any] | None = None
    outcome: str = "JOB_STATE_SUCCEEDED"  # where the schedule ends
    generation: int = 0  # bumps on every out-of-schedule change: stale events are skipped
    rebase_op: str | None = None  # the operation that created this job by rebase
    pinned: bool = False  # setState: the clock no longer moves this job
    tuning_state: str | None = None  # v1beta1's tuningJobState (while PENDING or RUNNING)
    beta_fields: bool = False  # the spec holds fields v1 does not have: a v1 answer leaves them out

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def name(self) -> str:
        return f"{self.parent}/tuningJobs/{self.id}"

    @property
    def labels(self) -> dict[str, str]:
        return self.spec.get("labels", {})

    @property
    def base_model(self) -> str:
        return str(self.spec.get("baseModel", ""))

    @property
    def root_base_model(self) -> str:
        """The base model at the start of a continuous-tuning chain."""
        return self.base_model or str(self.spec.get("preTunedModel", {}).get("baseModel", ""))

    @property
    def tuned_model_display_name(self) -> str:
        return str(self.spec.get("tunedModelDisplayName", ""))

    def tuning_spec_key(self) -> str:
        return next((k for k in ALL_TUNING_SPECS if k in self.spec), "supervisedTuningSpec")

    def resource(self, wanted: Collection[str] | None = None, version: str = V1) -> dict[str, Any]:
        """The TuningJob as the API `version` returns it, fields in proto order. `wanted`
        (top-level names from a `fields=` selection) skips deriving the bulky parts nobody
        asked for; the response is still cut to the selection afterwards. A v1 answer leaves
        out what v1 does not have (v1beta1's specs and fields, tuningJobState)."""
        # Rendered once per (selection, version, what changes): a list page of 1,000 unchanged
        # jobs is then a lookup per job (the emulator stands in for a fast server).
        key = (wanted, version, self.state, self.tuning_state, self.start_time, self.end_time, self.update_time,
               id(self.error), id(self.spec), self.model_version, self.endpoint_id)
        memo = self.__dict__.get("_rendered")  # not a dataclass field: never persisted or compared
        if memo is not None and memo[0] == key:
            return dict(memo[1])
        out = self._render(wanted, version)
        self.__dict__["_rendered"] = (key, out)
        return dict(out)

    def encoded(self, wanted: Collection[str] | None, version: str, encode: Callable[[dict[str, Any]], bytes],
                how: Hashable) -> bytes:
        """`encode(resource(wanted, version))`, kept until the job or `how` (what `encode`
        does: the selection) changes; a list page is then mostly a join of bytes."""
        resource = self.resource(wanted, version)
        key = (self.__dict__["_rendered"][0], how)
        memo = self.__dict__.get("_encoded")
        if memo is not None and memo[0] == key:
            return memo[1]
        data = encode(resource)
        self.__dict__["_encoded"] = (key, data)
        return data

    def _render(self, wanted: Collection[str] | None, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        spec = self.spec
        for key in (*_SOURCE_FIELDS, *ALL_TUNING_SPECS):
            if key in spec:
                out[key] = spec[key]
        out["name"] = self.name
        for key in ("tunedModelDisplayName", "description"):
            if key in spec:
                out[key] = spec[key]
        out["state"] = self.state
        if self.tuning_state and version == V1BETA1:
            out["tuningJobState"] = self.tuning_state
        out["createTime"] = rfc3339(self.create_time)
        if self.start_time is not None:
            out["startTime"] = rfc3339(self.start_time)
        if self.end_time is not None:
            out["endTime"] = rfc3339(self.end_time)
        out["updateTime"] = rfc3339(self.update_time)
        if self.error is not None:
            out["error"] = self.error
        if "labels" in spec:
            out["labels"] = spec["labels"]
        if self.start_time is not None:
            out["experiment"] = self.experiment
        tuned = self._tuned_model() if wanted is None or "tunedModel" in wanted else None
        if tuned:
            out["tunedModel"] = tuned
        if self.start_time is not None and (wanted is None or "tuningDataStats" in wanted):
            stats = self._data_stats()
            if stats is not None:
                out["tuningDataStats"] = stats
        for key in ("encryptionSpec", "serviceAccount", "outputUri"):
            if key in spec:
                out[key] = spec[key]
        if version == V1 and self.beta_fields:
            return schema.project(surface(V1).tuning_job, out)
        return out

    # -- output-only parts, derived on demand so that 50,000 stored jobs stay small --------

    def _tuned_model(self) -> dict[str, Any]:
        if self.state not in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_PARTIALLY_SUCCEEDED"):
            return {}
        model = f"{self.parent}/models/{self.model_id}@{self.model_version}"
        if self.state == "JOB_STATE_FAILED":
            return {"model": model}  # observed: the model is uploaded, the endpoint is missing
        endpoint = f"{self.parent}/endpoints/{self.endpoint_id}"
        tuned: dict[str, Any] = {"model": model, "endpoint": endpoint}
        tuning = self.spec.get(self.tuning_spec_key(), {})
        if not tuning.get("exportLastCheckpointOnly", False):
            epochs = _epochs(tuning)
            steps = _steps_per_epoch(self.example_count)
            checkpoints: list[dict[str, Any]] = []
            for epoch in range(1, epochs + 1):
                checkpoint: dict[str, Any] = {"checkpointId": str(epoch), "epoch": str(epoch), "step": str(epoch * steps)}
                if epoch == epochs:
                    checkpoint["endpoint"] = endpoint  # the last checkpoint is the deployed one
                checkpoints.append(checkpoint)
            tuned["checkpoints"] = checkpoints
        return tuned

    def _data_stats(self) -> dict[str, Any] | None:
        key = _STATS_KEYS.get(self.tuning_spec_key())
        if key is None:
            return None
        tuning = self.spec.get(self.tuning_spec_key(), {})
        return _stats(training_data(tuning), self.example_count, _epochs(tuning), key == "supervisedTuningDataStats")


def training_data(tuning: dict[str, Any]) -> str:
    """The dataset a tuning spec trains on (distillation: its prompts)."""
    return str(tuning.get("trainingDatasetUri") or tuning.get("promptDatasetUri") or "")


def _epochs(tuning: dict[str, Any]) -> int:
    """Epochs the spec asks for (1 unless said; a partner model's free-form map may say nothing usable)."""
    hyper = tuning.get("hyperParameters")
    try:
        return max(1, min(int((hyper or {}).get("epochCount", "1")), 1000)) if isinstance(hyper, dict) else 1
    except (TypeError, ValueError):
        return 1


@lru_cache(maxsize=4096)
def _stats(dataset: str, count: int, epochs: int, supervised: bool) -> dict[str, Any]:
    """Plausible statistics, a pure function of the dataset (cached: lists render many jobs)."""
    rng = random.Random(dataset)
    inputs = [rng.randint(20, 400) for _ in range(min(count, 200))]
    outputs = [rng.randint(10, 200) for _ in range(min(count, 200))]
    scale = count / len(inputs)
    input_total = int(sum(inputs) * scale)
    output_total = int(sum(outputs) * scale)
    key = "supervisedTuningDataStats" if supervised else None
    if key is None:
        return {
            "preferenceOptimizationDataStats": {
                "tuningDatasetExampleCount": str(count),
                "totalBillableTokenCount": str((input_total + output_total) * epochs),
                "tuningStepCount": str(epochs * _steps_per_epoch(count)),
            }
        }
    return {
        key: {
            "tuningDatasetExampleCount": str(count),
            "totalBillableTokenCount": str((input_total + output_total) * epochs),
            "tuningStepCount": str(epochs * _steps_per_epoch(count)),
            "userInputTokenDistribution": _distribution(inputs, input_total),
            "userOutputTokenDistribution": _distribution(outputs, output_total),
            "userMessagePerExampleDistribution": _distribution([2] * len(inputs), 2 * count),
            "userDatasetExamples": [
                {"role": "user", "parts": [{"text": f"Example question {i + 1}"}]} for i in range(min(count, 3))
            ],
        }
    }


def _steps_per_epoch(example_count: int) -> int:
    return max(1, math.ceil(example_count / 8))


def _distribution(values: list[int], total: int) -> dict[str, Any]:
    ordered = sorted(values)
    n = len(ordered)
    low, high = ordered[0], ordered[-1]
    width = max(1.0, (high - low) / 4)
    buckets = []
    for i in range(4):
        left = low + i * width
        right = left + width
        count = sum(1 for v in ordered if left <= v < right or (i == 3 and v == right))
        buckets.append({"count": float(count), "left": float(left), "right": float(right)})
    return {
        "sum": str(total),
        "billableSum": str(total),
        "min": float(low),
        "max": float(high),
        "mean": sum(ordered) / n,
        "median": float(ordered[n // 2]),
        "p5": float(ordered[int(n * 0.05)]),
        "p95": float(ordered[min(n - 1, int(n * 0.95))]),
        "buckets": buckets,
    }


def chosen_hyper_parameters(example_count: int) -> dict[str, Any]:
    """What the service picks for unset hyperparameters (tiers from observed jobs:
    90 examples -> 40 epochs, 0.5, size 4; 500 examples -> 10 epochs, 1.0, size 8)."""
    if example_count < 200:
        return {"epochCount": "40", "learningRateMultiplier": 0.5, "adapterSize": "ADAPTER_SIZE_FOUR"}
    if example_count < 2000:
        return {"epochCount": "10", "learningRateMultiplier": 1.0, "adapterSize": "ADAPTER_SIZE_EIGHT"}
    return {"epochCount": "5", "learningRateMultiplier": 1.0, "adapterSize": "ADAPTER_SIZE_SIXTEEN"}


@dataclass
class Operation:
    name: str
    job_name: str
    create_time: float
    update_time: float
    done: bool = False
    response: dict[str, Any] | None = None  # the new job as it was when the operation finished
    error: dict[str, Any] | None = None
    api_version: str = V1  # the version the rebase was asked through (what `/ui/` answers in)

    def resource(self, version: str | None = None) -> dict[str, Any]:
        """The Operation as the API `version` returns it (None: the version it was started
        through). Its `@type`s name that version's messages, and its `response` holds only the
        fields google-cloud-aiplatform's TuningJob proto of that version has: the GAPIC client
        unpacks it strictly."""
        version = version or self.api_version
        api = surface(version)
        out: dict[str, Any] = {
            "name": self.name,
            "metadata": {
                "@type": api.type_url("RebaseTunedModelOperationMetadata"),
                "genericMetadata": {"createTime": rfc3339(self.create_time), "updateTime": rfc3339(self.update_time)},
            },
        }
        if self.done:
            out["done"] = True
            if self.error is not None:
                out["error"] = self.error
            elif self.response is not None:
                job = schema.project(api.tuning_job, self.response)
                fields = PROTO_TUNING_JOB_FIELDS[version]
                out["response"] = {"@type": api.type_url("TuningJob")} | {
                    k: v for k, v in job.items() if k in fields}
        return out


# Fields the TuningJob protos of google-cloud-aiplatform 2.7.0 define, per version (older than
# the discovery documents: v1 lacks preferenceOptimizationSpec, v1beta1 lacks the newer specs and
# tuningJobState). An operation `response` is parsed strictly by the GAPIC client, so nothing
# else may appear there.
_PROTO_COMMON = frozenset({
    "baseModel", "preTunedModel", "supervisedTuningSpec", "name", "tunedModelDisplayName", "description", "state",
    "createTime", "startTime", "endTime", "updateTime", "error", "labels", "experiment", "tunedModel",
    "tuningDataStats", "encryptionSpec", "serviceAccount",
})
PROTO_TUNING_JOB_FIELDS: dict[str, frozenset[str]] = {
    V1: _PROTO_COMMON,
    V1BETA1: _PROTO_COMMON | {"customBaseModel", "distillationSpec", "outputUri", "partnerModelTuningSpec",
                              "pipelineJob", "veoLoraTuningSpec", "veoTuningSpec"},
}
