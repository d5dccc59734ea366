"""Settings of one emulator instance (the CLI flags and the in-process API share them)."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PAGE_SIZE = 50  # list: pageSize 0 or absent (nothing public documents Vertex's value)
MAX_PAGE_SIZE = 1000  # list: larger pageSize values are lowered to this (AIP-158)


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port chosen by the OS
    token: str | None = "emulator-token"  # None: any bearer token is accepted (but one is required)
    job_duration: float = 2.0  # seconds of emulator clock from create to SUCCEEDED/FAILED
    start_delay: float | None = None  # PENDING -> RUNNING after this; None: 10% of job_duration
    cancel_delay: float | None = None  # CANCELLING -> CANCELLED after this; None: 10% of job_duration
    latency_ms: float = 0.0  # added to every /v1 and /ui request (asyncio.sleep, never blocking)
    error_rate: float = 0.0  # share of /v1 requests answered 429 or 503 (half each)
    drop_rate: float = 0.0  # share of creates/rebases committed and then dropped without answer
    retry_after: int = 1  # Retry-After seconds sent with injected 429s
    seed: int = 0  # seeds fault decisions and ids: the same seed gives the same run
    data_file: str | None = None  # persist jobs and operations here (atomic writes)
    virtual_clock: bool = False  # True: time moves only via advance()
    project_numbers: dict[str, str] = field(default_factory=dict)  # project id -> number
    default_page_size: int = DEFAULT_PAGE_SIZE
    max_page_size: int = MAX_PAGE_SIZE

    def validate(self) -> None:
        """ValueError naming the setting that is out of range."""
        checks = [
            ("job_duration", self.job_duration >= 0),
            ("start_delay", self.start_delay is None or self.start_delay >= 0),
            ("cancel_delay", self.cancel_delay is None or self.cancel_delay >= 0),
            ("latency_ms", self.latency_ms >= 0),
            ("error_rate", 0.0 <= self.error_rate <= 1.0),
            ("drop_rate", 0.0 <= self.drop_rate <= 1.0),
            ("retry_after", self.retry_after >= 0),
            ("port", 0 <= self.port <= 65535),
            ("default_page_size", 1 <= self.default_page_size <= self.max_page_size),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"emulator setting {name}={getattr(self, name)!r} is out of range")
        for project, number in self.project_numbers.items():
            if not number.isdigit():
                raise ValueError(f"project number for {project!r} must be digits, got {number!r}")

    @property
    def effective_start_delay(self) -> float:
        return self.job_duration * 0.1 if self.start_delay is None else min(self.start_delay, self.job_duration)

    @property
    def effective_cancel_delay(self) -> float:
        return self.job_duration * 0.1 if self.cancel_delay is None else self.cancel_delay
