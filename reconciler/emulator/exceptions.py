"""Wire errors of the emulated service: one class per (HTTP code, google.rpc status) pair.

The backend raises these; the HTTP layer turns them into Google's JSON error body
`{"error": {"code", "message", "status", "details"}}`.
"""

from __future__ import annotations

from typing import Any

BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"


class ApiError(Exception):
    """An error the emulated API returns to its caller."""

    http_code: int = 500
    status: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.http_code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InvalidArgument(ApiError):
    http_code = 400
    status = "INVALID_ARGUMENT"


class FailedPrecondition(ApiError):
    http_code = 400
    status = "FAILED_PRECONDITION"


class OutOfRange(ApiError):
    http_code = 400
    status = "OUT_OF_RANGE"


class Unauthenticated(ApiError):
    http_code = 401
    status = "UNAUTHENTICATED"


class PermissionDenied(ApiError):
    http_code = 403
    status = "PERMISSION_DENIED"


class NotFound(ApiError):
    http_code = 404
    status = "NOT_FOUND"


class AlreadyExists(ApiError):
    http_code = 409
    status = "ALREADY_EXISTS"


class Aborted(ApiError):
    http_code = 409
    status = "ABORTED"


class ResourceExhausted(ApiError):
    http_code = 429
    status = "RESOURCE_EXHAUSTED"


class Internal(ApiError):
    http_code = 500
    status = "INTERNAL"


class Unimplemented(ApiError):
    http_code = 501
    status = "UNIMPLEMENTED"


class Unavailable(ApiError):
    http_code = 503
    status = "UNAVAILABLE"


class DeadlineExceeded(ApiError):
    http_code = 504
    status = "DEADLINE_EXCEEDED"


def field_violations(violations: list[tuple[str, str]]) -> InvalidArgument:
    """The service's validation error: numbered message plus google.rpc.BadRequest details."""
    listed = "".join(f"\t{i}.Field: {field}; Message: {msg}" for i, (field, msg) in enumerate(violations, 1))
    return InvalidArgument(
        f"List of found errors:{listed}\t",
        details=[
            {
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": f, "description": m} for f, m in violations],
            }
        ],
    )


def bad_payload(field: str, message: str) -> InvalidArgument:
    """The front end's JSON-decoding error ("Invalid JSON payload received. ...")."""
    return InvalidArgument(
        message,
        details=[{"@type": BAD_REQUEST_TYPE, "fieldViolations": [{"field": field, "description": message}]}],
    )
