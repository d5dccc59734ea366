"""A small client for the emulator's admin API (`/__emulator/*`), over real HTTP.

Tests and benchmarks use it to seed jobs, move the virtual clock, change faults, force a
job's state out of band and read request counters.
"""

from __future__ import annotations

from typing import Any

import httpx

from reconciler import jsonio


class AdminError(RuntimeError):
    """The admin API refused a request; the message carries its status and reason."""


class EmulatorAdmin:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token or 'emulator'}"}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, f"/__emulator/{path}", json=body)
        if response.status_code != 200:
            try:
                message = jsonio.loads(response.content)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise AdminError(f"admin {path}: HTTP {response.status_code}: {message}")
        return jsonio.loads(response.content)

    def seed(
        self,
        parent: str,
        count: int = 1,
        labels: dict[str, str] | None = None,
        state: str | None = None,
        spec: dict[str, Any] | None = None,
        specs: list[dict[str, Any]] | None = None,
    ) -> list[str]:
        """Bulk-create jobs; `{n}` in a label value becomes the index. Returns their names.
        `specs`: one spec per job (their labels kept, `labels` added) instead of `count` alike."""
        body: dict[str, Any] = {"parent": parent, "count": len(specs) if specs is not None else count}
        if specs is not None:
            body["specs"] = specs
        if labels is not None:
            body["labels"] = labels
        if state is not None:
            body["state"] = state
        if spec is not None:
            body["spec"] = spec
        return list(self._call("POST", "seed", body)["names"])

    def advance(self, seconds: float) -> float:
        """Move the emulator clock forward; returns the new time (seconds since the epoch)."""
        return float(self._call("POST", "advance", {"seconds": seconds})["now"])

    def set_state(self, job: str, state: str) -> dict[str, Any]:
        """Force a job (full name or numeric id) into `state`; returns the job."""
        result: dict[str, Any] = self._call("POST", f"jobs/{job}:setState", {"state": state})
        return result

    def faults(self, **settings: Any) -> dict[str, Any]:
        """Change fault settings (latency_ms, error_rate, drop_rate, retry_after, seed)."""
        result: dict[str, Any] = self._call("POST", "faults", settings)
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "stats")
        return result

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
