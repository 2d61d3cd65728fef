"""What a CustomJob's state means to launch: the JobState, the message, the times and the console link."""

from __future__ import annotations

from typing import Any

from launcher.backend import Handle, JobState, Status

STATES: dict[str, JobState] = {
    "JOB_STATE_QUEUED": JobState.PENDING,
    "JOB_STATE_PENDING": JobState.PENDING,
    "JOB_STATE_RUNNING": JobState.RUNNING,
    "JOB_STATE_SUCCEEDED": JobState.SUCCEEDED,
    "JOB_STATE_FAILED": JobState.FAILED,
    "JOB_STATE_CANCELLING": JobState.CANCELLING,
    "JOB_STATE_CANCELLED": JobState.CANCELLED,
    "JOB_STATE_PAUSED": JobState.PENDING,
    "JOB_STATE_EXPIRED": JobState.FAILED,
    "JOB_STATE_UPDATING": JobState.RUNNING,
    "JOB_STATE_PARTIALLY_SUCCEEDED": JobState.FAILED,
}
STATE_MESSAGES = {
    "JOB_STATE_EXPIRED": "expired before it could run",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "only some workers succeeded",
}


def map_state(raw: str) -> JobState:
    return STATES.get(raw, JobState.UNKNOWN)


def status_of(job: Any, handle: Handle) -> Status:
    """The Status of a CustomJob proto (as get and list return it)."""
    raw = job.state.name if hasattr(job.state, "name") else str(job.state)
    state = map_state(raw)
    message = (job.error.message if job.error and job.error.message else "") or STATE_MESSAGES.get(raw, "")
    started = job.start_time.timestamp() if job.start_time else None
    ended = job.end_time.timestamp() if job.end_time and state.is_terminal else None
    url = (f"https://console.cloud.google.com/vertex-ai/locations/{handle.data['region']}/training/"
           f"{handle.data['id']}/cpu?project={handle.data['project']}")
    return Status(state, raw, message, exit_code=0 if state is JobState.SUCCEEDED else None,
                  started_at=started, ended_at=ended, url=url)
