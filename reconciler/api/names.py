"""Resource names and request ids: their shapes, checked before anything is sent."""

from __future__ import annotations

import re
import uuid

from reconciler.api.errors import ResourceNameError
from reconciler.model import REQUEST_LABEL

SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._~-]*"
PARENT = re.compile(rf"^projects/{SEGMENT}/locations/{SEGMENT}$")
JOB = re.compile(rf"^projects/{SEGMENT}/locations/{SEGMENT}/tuningJobs/{SEGMENT}$")
OPERATION = re.compile(rf"^projects/{SEGMENT}/locations/{SEGMENT}(?:/{SEGMENT})*/operations/{SEGMENT}$")
# A label value: what the request id must be to travel as one.
REQUEST_ID = re.compile(r"^[a-z0-9_-]{1,63}$")


def check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ResourceNameError(f"invalid {what} {value!r}")
    return value


def new_request_id() -> str:
    """A fresh request id: fits a label value, unique per create attempt series."""
    return uuid.uuid4().hex


def request_filter(request_id: str) -> str:
    return f'labels.{REQUEST_LABEL}="{request_id}"'


def with_labels(resource: dict | None, labels: dict[str, str]) -> dict:
    """A copy of `resource` with `labels` merged into its labels (the caller's dict is untouched)."""
    result = dict(resource or {})
    result["labels"] = {**(result.get("labels") or {}), **labels}
    return result




def check_request_id(request_id: str) -> None:
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise ValueError(
            f"invalid request id {request_id!r}: it travels as a label value "
            "(1-63 lowercase letters, digits, '_' or '-')"
        )
