"""What a 2xx answer must look like before we plan on it: anything else is a
MalformedResponseError, never a guess (a running job taken for finished bills twice)."""

from __future__ import annotations

import re

import httpx

from reconciler.api.errors import MalformedResponseError, snippet
from reconciler.api.names import JOB
from reconciler.model import JOB_STATES, short_state

_JOB_TIMES = ("createTime", "updateTime", "startTime", "endTime")
# A list page of 1,000 jobs is a few MB; anything near this is a broken or hostile server.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def kind_of(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def check_tuning_job(job: object, where: str, require_state: bool = True, require_name: bool = True) -> dict:
    """`job` if it has the documented shape of the fields we plan with; else MalformedResponseError.

    An unknown `state` is refused rather than guessed at: treating a running job as finished
    (or the reverse) would plan a duplicate billed job or a wrong cancel.
    """
    def bad(field: str, problem: str) -> MalformedResponseError:
        return MalformedResponseError(f"{where}{field}: {problem}")

    if not isinstance(job, dict):
        raise bad("", f"expected a TuningJob object, got {kind_of(job)}")
    name = job.get("name")
    if name is None and require_name:
        raise bad(".name", "missing")
    if name is not None and (not isinstance(name, str) or not JOB.match(name)):
        raise bad(".name", f"not a tuning job name: {snippet(repr(name), 80)}")
    state = job.get("state")
    if state is None and require_state:
        raise bad(".state", "missing")
    if state is not None and not isinstance(state, str):
        raise bad(".state", f"expected a string, got {kind_of(state)}")
    if state is not None and state not in JOB_STATES:
        raise bad(".state", f"unknown value {snippet(repr(state), 80)} (this version knows "
                            f"{', '.join(sorted(map(short_state, JOB_STATES)))}); "
                            "upgrade tuning-reconciler if the API has added a state")
    tuning_state = job.get("tuningJobState")  # v1beta1: shown, never planned on
    if tuning_state is not None and not isinstance(tuning_state, str):
        raise bad(".tuningJobState", f"expected a string, got {kind_of(tuning_state)}")
    labels = job.get("labels", {})
    if not isinstance(labels, dict):
        raise bad(".labels", f"expected an object, got {kind_of(labels)}")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise bad(f".labels[{snippet(repr(key), 80)}]", f"expected a string, got {kind_of(value)}")
    for field_name in _JOB_TIMES:
        if field_name in job and not isinstance(job[field_name], str):
            raise bad(f".{field_name}", f"expected a timestamp string, got {kind_of(job[field_name])}")
    error = job.get("error")
    if error is not None and not isinstance(error, dict):
        raise bad(".error", f"expected an object, got {kind_of(error)}")
    return job


def _selected(fields: str | None, name: str) -> bool:
    """Whether a partial-response selection (None: everything) keeps the job field `name`."""
    return fields is None or re.search(rf"[(,]{name}[,)]", fields) is not None


def check_page(page: dict, key: str, where: str, fields: str | None = None) -> list:
    items = page.get(key, [])
    if not isinstance(items, list):
        raise MalformedResponseError(f"{where}: {key}: expected a list, got {kind_of(items)}")
    token = page.get("nextPageToken")
    if token is not None and not isinstance(token, str):
        raise MalformedResponseError(f"{where}: nextPageToken: expected a string, got {kind_of(token)}")
    for i, item in enumerate(items):
        if key == "tuningJobs":
            check_tuning_job(item, f"{where}: {key}[{i}]", require_state=_selected(fields, "state"),
                             require_name=_selected(fields, "name"))
        elif not isinstance(item, dict):
            raise MalformedResponseError(f"{where}: {key}[{i}]: expected an object, got {kind_of(item)}")
    return items


def page_size_param(page_size: int | None) -> dict[str, str]:
    """The pageSize query parameter of a list call ({} for the server's default)."""
    if page_size is None:
        return {}
    if page_size < 1:
        raise ValueError("page_size must be positive")
    return {"pageSize": str(page_size)}




def read_bounded(response: httpx.Response, context: str, limit: int | None = None) -> httpx.Response:
    """Read a streamed answer whole, refusing one over `limit` bytes instead of exhausting memory."""
    limit = MAX_RESPONSE_BYTES if limit is None else limit
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise MalformedResponseError(
                    f"malformed answer to {context}: larger than {limit // (1024 * 1024)} MiB; refused")
            chunks.append(chunk)
    finally:
        response.close()
    # The body is decoded already: drop the headers that describe the wire encoding.
    headers = [(k, v) for k, v in response.headers.multi_items()
               if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
    return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks),
                          request=response.request, extensions=response.extensions)
