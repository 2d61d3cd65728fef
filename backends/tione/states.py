"""TI-ONE's training-task states and what `launch status` shows for a DescribeTrainingTask(s) answer.

Pure (the answer is the SDK model's JSON as a dict), so one table serves status and list alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from launcher.backend import JobState, Status, map_state
from launcher.durations import iso_timestamp

# Every Status api.json documents for a task (TrainingTaskDetail.Status, TrainingTaskSetItem.Status)
STATES: dict[str, JobState] = {
    "SUBMITTING": JobState.PENDING,
    "PENDING": JobState.PENDING,
    "STARTING": JobState.STARTING,
    "RUNNING": JobState.RUNNING,
    "STOPPING": JobState.CANCELLING,
    "STOPPED": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    "SUBMIT_FAILED": JobState.FAILED,
    "SUCCEED": JobState.SUCCEEDED,
}


def console_url(region: str, task_id: str) -> str:
    return f"https://console.cloud.tencent.com/tione/v2/job/detail/{task_id}?regionId={region}"



def status_of(task: Mapping[str, Any], region: str) -> Status:
    """A task as a Status; TI-ONE's failure reason (or its message) is kept as the message."""
    raw = str(task.get("Status") or "")
    state = map_state(STATES, raw)
    reason = " ".join(str(task[k]) for k in ("FailureReason", "Message") if task.get(k))
    return Status(state, raw, reason,
                  exit_code=0 if state is JobState.SUCCEEDED else None,
                  started_at=iso_timestamp(task.get("StartTime")),
                  ended_at=iso_timestamp(task.get("EndTime")) if state.is_terminal else None,
                  url=console_url(region, str(task.get("Id") or "")))
