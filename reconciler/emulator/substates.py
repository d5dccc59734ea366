"""v1beta1's `tuningJobState`: the finer state of a job the overall state calls PENDING or
RUNNING, as a pure schedule.

A PENDING job waits for quota. A RUNNING job, between its start and its end (create time +
job duration), processes its dataset, waits for capacity, tunes and post-processes, each
stage starting at a fixed share of that span. Finished jobs have none (the field is left
out). The shares are the emulator's choice: nothing public says how long each stage takes.
"""

from __future__ import annotations

WAITING_FOR_QUOTA = "TUNING_JOB_STATE_WAITING_FOR_QUOTA"
PROCESSING_DATASET = "TUNING_JOB_STATE_PROCESSING_DATASET"
WAITING_FOR_CAPACITY = "TUNING_JOB_STATE_WAITING_FOR_CAPACITY"
TUNING = "TUNING_JOB_STATE_TUNING"
POST_PROCESSING = "TUNING_JOB_STATE_POST_PROCESSING"

# (stage, share of the running span at which it begins)
RUNNING_STAGES: tuple[tuple[str, float], ...] = (
    (PROCESSING_DATASET, 0.0),
    (WAITING_FOR_CAPACITY, 0.1),
    (TUNING, 0.2),
    (POST_PROCESSING, 0.9),
)
FIRST_RUNNING = RUNNING_STAGES[0][0]


def next_stage(start: float, end: float, current: str | None) -> tuple[float, str] | None:
    """When the RUNNING job in stage `current` moves on and to what, or None when the next
    thing that happens to it is its end. A stage that would begin at or after `end` is skipped."""
    names = [name for name, _ in RUNNING_STAGES]
    index = names.index(current) + 1 if current in names else 0
    for name, share in RUNNING_STAGES[index:]:
        due = start + share * (end - start)
        if due < end:
            return due, name
    return None
