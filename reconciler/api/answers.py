"""What a 2xx answer must look like before we plan on it: anything else is a
MalformedResponseError, never a guess (a running job taken for finished bills twice)."""

from __future__ import annotations

import re
import threading

import httpx

from reconciler.api.errors import MalformedResponseError, snippet
from reconciler.api.names import JOB
from reconciler.model import JOB_STATES, short_state

_JOB_TIMES = ("createTime", "updateTime", "startTime", "endTime")
# A list page of 1,000 jobs is a few MB; anything near this is a broken or hostile server.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# More jobs than any project+location holds (quotas allow ~60 submissions a minute): a list
# that goes on past this is a server that never stops paging.
MAX_LISTED_ITEMS = 1_000_000
DEFAULT_PAGE_SIZE = 100  # what Google APIs commonly serve when no pageSize is asked for
# Fields a list answer may have: one with none of them (and not `{}`) is not a list answer.
LIST_FIELDS = ("nextPageToken", "unreachable")


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


def max_pages(page_size: int | None) -> int:
    """How many pages one list may take: MAX_LISTED_ITEMS at the page size asked for (or the
    usual default), so that a server handing out endless page tokens is stopped."""
    return -(-MAX_LISTED_ITEMS // (page_size or DEFAULT_PAGE_SIZE)) + 1


def check_page(page: dict, key: str, where: str, fields: str | None = None) -> list:
    """The items of one list page. `{}` is an empty page (proto3 JSON leaves out empty
    lists); an object with none of a list answer's fields is not a list answer at all."""
    if page and key not in page and not any(f in page for f in LIST_FIELDS):
        raise MalformedResponseError(f"{where}: not a list answer: it has no `{key}` and no `nextPageToken` "
                                     f"(fields: {snippet(', '.join(map(str, page)), 120)})")
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


class Owners:
    """Checks that a job named in an answer belongs to the project and location asked about.

    Vertex names jobs by project *number* even when asked by project id, and the number of an
    id cannot be known offline. So for a request by id, a name may carry the id itself or a
    number; the first number seen for an id is pinned, and a later answer naming another
    number for the same id is refused (jobs of two projects in answers about one). A request
    by number must get that number back; the location must always match. The number state
    recorded for an id (`pin`) counts as seen. Thread-safe; one per client, so the pin holds
    across the pages and calls of one run."""

    def __init__(self) -> None:
        self._numbers: dict[str, str] = {}
        self._lock = threading.Lock()

    def number_of(self, project: str) -> str | None:
        with self._lock:
            return self._numbers.get(project)

    def pin(self, project: str, number: str) -> None:
        if not project.isdigit() and number.isdigit():
            with self._lock:
                self._numbers.setdefault(project, number)

    def check(self, name: object, parent: str, where: str) -> None:
        if not isinstance(name, str) or not JOB.match(name):
            return  # not selected (partial response); its shape is checked elsewhere
        _, project, _, location = parent.split("/")
        _, got_project, _, got_location, _, _ = name.split("/")
        shown = snippet(name, 200)
        if got_location != location:
            raise MalformedResponseError(f"{where}.name: {shown} is in location {snippet(got_location, 80)}, "
                                         f"not {location} (the one asked about)")
        if got_project == project:
            return
        if project.isdigit() or not got_project.isdigit():
            raise MalformedResponseError(f"{where}.name: {shown} belongs to project {snippet(got_project, 80)}, "
                                         f"not {project} (the one asked about)")
        with self._lock:
            known = self._numbers.setdefault(project, got_project)
        if known != got_project:
            raise MalformedResponseError(
                f"{where}.name: {shown} carries project number {got_project}, but project {project}'s jobs "
                f"carried {known} (in earlier answers, or as state recorded them): jobs of two projects")


def page_size_param(page_size: int | None) -> dict[str, str]:
    """The pageSize query parameter of a list call ({} for the server's default)."""
    if page_size is None:
        return {}
    if page_size < 1:
        raise ValueError("page_size must be positive")
    return {"pageSize": str(page_size)}




def read_bounded(response: httpx.Response, context: str, limit: int | None = None) -> httpx.Response:
    """Read a streamed answer whole, refusing one over `limit` bytes instead of exhausting
    memory. (Its time is bounded by the request's deadline: `api/deadline.py`.)"""
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
