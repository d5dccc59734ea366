"""check_tuning_job: v1beta1's tuningJobState is shown, so it must be text (or absent)."""

from __future__ import annotations

import pytest

from reconciler.api.answers import check_tuning_job
from reconciler.api.errors import MalformedResponseError

JOB = {"name": "projects/1/locations/us-central1/tuningJobs/2", "state": "JOB_STATE_RUNNING"}


def test_tuning_job_state_is_text_or_absent() -> None:
    assert check_tuning_job(JOB, "answer") is JOB
    with_state = {**JOB, "tuningJobState": "TUNING_JOB_STATE_TUNING"}
    assert check_tuning_job(with_state, "answer") is with_state
    # An unknown finer state is shown as it is: nothing is planned on it.
    assert check_tuning_job({**JOB, "tuningJobState": "TUNING_JOB_STATE_NEW"}, "answer")
    for bad in (3, {"x": 1}, ["TUNING"]):
        with pytest.raises(MalformedResponseError, match=r"answer\.tuningJobState: expected a string"):
            check_tuning_job({**JOB, "tuningJobState": bad}, "answer")
