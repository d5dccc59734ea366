"""The API's errors, one class per canonical status, built from Google's JSON error body or a
long-running operation's `error` (a google.rpc.Status)."""

from __future__ import annotations

import httpx

from reconciler import jsonio
from reconciler.errors import ReconcilerError
from reconciler.redact import redact
from reconciler.text import shorten, some

# google.rpc.Code numbers (operation errors carry these, HTTP errors carry the HTTP status).
RPC_CODES: dict[int, str] = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
# For error bodies that are not Google JSON (a proxy's HTML page, say).
HTTP_STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}



class ApiError(ReconcilerError):
    """A Google API error. `code` is the HTTP status (or the google.rpc code for an
    operation's error), `status` the canonical name (NOT_FOUND, ...)."""

    def __init__(
        self, code: int, status: str, message: str, details: list | None = None, *, context: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.details = details or []
        self.context = context

    def field_violations(self) -> list[tuple[str, str]]:
        """(field, description) pairs from `google.rpc.BadRequest` details."""
        found = []
        for detail in self.details:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.BadRequest"):
                for violation in detail.get("fieldViolations") or []:
                    if isinstance(violation, dict):
                        found.append((str(violation.get("field", "")), str(violation.get("description", ""))))
        return found

    def __str__(self) -> str:
        # What a server says is quoted, not trusted: bounded in length and count.
        text = f"{shorten(self.status, 80)} ({self.code}): {shorten(self.message.strip(), 1000)}"
        violations = self.field_violations()
        if violations:
            text += "; " + some((f"{name}: {why}" for name, why in violations), sep="; ")
        if self.context:
            text += f" [{self.context}]"
        return redact(text)  # details and status are the server's words too


class NotFoundError(ApiError):
    pass


class FailedPreconditionError(ApiError):
    pass


class InvalidArgumentError(ApiError):
    pass


class ResourceExhaustedError(ApiError):
    pass


class UnavailableError(ApiError):
    pass


class UnauthenticatedError(ApiError):
    pass


class PermissionDeniedError(ApiError):
    pass


class MalformedResponseError(ReconcilerError):
    """A 2xx answer whose content is not what the API documents: planning on it could be wrong."""


class TransportError(ReconcilerError):
    """The server could not be reached or did not answer, and retries are exhausted."""


class OperationTimeoutError(ReconcilerError):
    """A long-running operation was still not done when `wait_operation` gave up."""


class ResourceNameError(ReconcilerError, ValueError):
    """A resource name or parent that does not have the expected shape."""


_ERROR_CLASSES: dict[str, type[ApiError]] = {
    "NOT_FOUND": NotFoundError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "INVALID_ARGUMENT": InvalidArgumentError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "UNAVAILABLE": UnavailableError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "PERMISSION_DENIED": PermissionDeniedError,
}


def make_api_error(
    code: int, status: str, message: str, details: list | None = None, *, context: str = ""
) -> ApiError:
    """The typed ApiError subclass for `status`."""
    return _ERROR_CLASSES.get(status, ApiError)(code, status, message, details, context=context)


def snippet(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def error_from_response(response: httpx.Response, context: str = "") -> ApiError:
    """Parse Google's JSON error body; anything else still gives a readable ApiError. Our own
    credentials are redacted from all of it first (a server may echo the request back)."""
    http_code = response.status_code
    fallback_status = HTTP_STATUSES.get(http_code, "UNKNOWN")
    try:
        payload = jsonio.loads(redact(response.content.decode("utf-8", "replace"))) if response.content else None
    except jsonio.JsonError:
        payload = None  # not Google JSON (or nested past reason): described as text below
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        status = error.get("status")
        details = error.get("details")
        return make_api_error(
            code if isinstance(code, int) else http_code,
            redact(status) if isinstance(status, str) and status else fallback_status,
            redact(str(error.get("message") or response.reason_phrase or "no message")),
            details if isinstance(details, list) else [],
            context=context,
        )
    body = snippet(redact(response.text)) if response.content else ""
    message = f"HTTP {http_code} {response.reason_phrase} with a non-JSON body"
    return make_api_error(http_code, fallback_status, message + (f": {body}" if body else ""), context=context)


def operation_error(operation: dict, context: str = "") -> ApiError:
    """The ApiError for a done operation's `error` (a google.rpc.Status)."""
    error = operation.get("error") or {}
    code = error.get("code") if isinstance(error.get("code"), int) else 2
    return make_api_error(
        code,
        RPC_CODES.get(code, "UNKNOWN"),
        str(error.get("message") or "operation failed"),
        error.get("details") if isinstance(error.get("details"), list) else [],
        context=context,
    )
