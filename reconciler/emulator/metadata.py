"""The MetadataService context of a tuning job's `experiment`, as the service returns it.

The Vertex AI SDK's `job.refresh()` reads it (`GET /v1/{experiment}`) once a job runs and
insists on `schemaTitle: system.Experiment` and a `metadata` object (it raises otherwise).
"""

from __future__ import annotations

import hashlib
from typing import Any

from reconciler.emulator.clock import rfc3339

EXPERIMENT_SCHEMA = "system.Experiment"


def experiment_context(name: str, context_id: str, created: float, updated: float) -> dict[str, Any]:
    """The context `name` (canonical: project number), made when its job started running."""
    return {
        "name": name,
        "displayName": context_id,
        "etag": hashlib.sha256(f"{name}@{updated}".encode()).hexdigest()[:16],
        "createTime": rfc3339(created),
        "updateTime": rfc3339(updated),
        "schemaTitle": EXPERIMENT_SCHEMA,
        "schemaVersion": "0.0.1",
        "metadata": {"experiment_deleted": False},
    }
