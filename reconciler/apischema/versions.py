"""The two REST versions of the tuningJobs API, and where each one's discovery document,
snapshot, schema names and generated spec schema are. Constants and pure lookups only.

v1beta1 is a superset of v1: every v1 message has a v1beta1 twin (`GoogleCloudAiplatformV1X`
-> `GoogleCloudAiplatformV1beta1X`) with the same fields and types (checked by the tests), plus
fields of its own (more tuning specs, `customBaseModel`, `outputUri`, `tuningJobState`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model import API_VERSION, API_VERSION_V1BETA1, V1, V1BETA1

_SHARED_ROOTS = ("TuningJob", "RebaseTunedModelRequest", "ListTuningJobsResponse")


@dataclass(frozen=True)
class Surface:
    version: str  # the REST path segment
    manifest_api_version: str  # the manifest `apiVersion` that selects it
    # The proto oneof `tuning_spec` (the REST reference's "Union type"), in discovery order.
    tuning_specs: tuple[str, ...]

    @property
    def prefix(self) -> str:
        """Discovery schema names: `GoogleCloudAiplatformV1` / `GoogleCloudAiplatformV1beta1`."""
        return "GoogleCloudAiplatform" + self.version[:1].upper() + self.version[1:]

    def schema(self, short: str) -> str:
        return self.prefix + short

    @property
    def tuning_job(self) -> str:
        return self.schema("TuningJob")

    @property
    def root_schemas(self) -> tuple[str, ...]:
        """What the snapshot keeps (with everything they reference): the job, the requests and
        answers the tool sends and reads, the operation, and the metadata context that SDKs
        read for a job's `experiment`."""
        return (*map(self.schema, _SHARED_ROOTS), "GoogleLongrunningOperation", self.schema("Context"))

    @property
    def document_resource(self) -> str:
        """The full document inside the google-api-python-client wheel."""
        return f"discovery_cache/documents/aiplatform.{self.version}.json"

    @property
    def snapshot_name(self) -> str:
        return f"aiplatform.{self.version}.tuning.json"

    @property
    def spec_schema_file(self) -> str:
        return f"tuningjob.{self.version}.schema.json"

    @property
    def proto_package(self) -> str:
        """The protobuf package of google-cloud-aiplatform's types for this version."""
        return f"google.cloud.aiplatform.{self.version}"

    def type_url(self, message: str) -> str:
        """An `Any`'s `@type` for one of this version's messages (e.g. `TuningJob`)."""
        return f"type.googleapis.com/{self.proto_package}.{message}"


SURFACES: dict[str, Surface] = {
    V1: Surface(V1, API_VERSION, ("supervisedTuningSpec", "preferenceOptimizationSpec")),
    V1BETA1: Surface(V1BETA1, API_VERSION_V1BETA1, (
        "supervisedTuningSpec", "preferenceOptimizationSpec", "distillationSpec", "reinforcementTuningSpec",
        "fullFineTuningSpec", "partnerModelTuningSpec", "veoTuningSpec", "veoLoraTuningSpec")),
}
VERSIONS: tuple[str, ...] = tuple(SURFACES)
# Every tuning spec any version knows (v1beta1's list holds v1's).
ALL_TUNING_SPECS: tuple[str, ...] = SURFACES[V1BETA1].tuning_specs


def surface(version: str) -> Surface:
    try:
        return SURFACES[version]
    except KeyError:
        raise ValueError(f"unknown API version {version!r} (known: {', '.join(VERSIONS)})") from None


def twin(name: str, version: str) -> str:
    """The same message's schema name in another version (`...V1X` <-> `...V1beta1X`)."""
    prefixes = sorted((o.prefix for o in SURFACES.values()), key=len, reverse=True)  # V1beta1 before V1
    for prefix in prefixes:
        if name.startswith(prefix):
            return surface(version).prefix + name[len(prefix):]
    return name  # shared names such as GoogleLongrunningOperation
