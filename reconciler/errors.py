"""Expected errors: the CLI turns these into a message and exit 1, never a traceback."""

from __future__ import annotations


class ReconcilerError(Exception):
    """An error the user can act on. `str()` is the whole message shown to them."""


class ConfigError(ReconcilerError):
    """Missing or contradictory settings (project, location, endpoint, flags)."""


class ManifestError(ReconcilerError):
    """Manifests that cannot be loaded or validated; `problems` holds every finding."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class StateError(ReconcilerError):
    """A state file that is missing, corrupt, locked or from another lineage/version."""


class PlanError(ReconcilerError):
    """A plan that cannot be made or applied (lifecycle refusal, stale saved plan)."""
