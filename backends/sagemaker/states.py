"""SageMaker's job states and what `launch status` shows for a DescribeTrainingJob answer.

Pure (the answer is a dict boto3 already parsed), so one table serves status and list alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from launcher.backend import JobState, Status

# (TrainingJobStatus, SecondaryStatus or None for "any") -> our state.
STATES: dict[tuple[str, str | None], JobState] = {
    ("InProgress", "Pending"): JobState.PENDING,
    ("InProgress", "Starting"): JobState.STARTING,
    ("InProgress", "LaunchingMLInstances"): JobState.STARTING,
    ("InProgress", "PreparingTrainingStack"): JobState.STARTING,
    ("InProgress", "Downloading"): JobState.STARTING,
    ("InProgress", "DownloadingTrainingImage"): JobState.STARTING,
    ("InProgress", "Interrupted"): JobState.STARTING,  # spot capacity lost; SageMaker waits for more
    ("InProgress", "Restarting"): JobState.STARTING,
    ("InProgress", "Stopping"): JobState.CANCELLING,
    ("InProgress", "Training"): JobState.RUNNING,
    ("InProgress", "Uploading"): JobState.RUNNING,
    ("InProgress", "Updating"): JobState.RUNNING,
    ("InProgress", None): JobState.RUNNING,
    ("Completed", None): JobState.SUCCEEDED,
    ("Failed", None): JobState.FAILED,
    ("Stopping", None): JobState.CANCELLING,
    ("Stopped", "MaxRuntimeExceeded"): JobState.FAILED,
    ("Stopped", "MaxWaitTimeExceeded"): JobState.FAILED,
    ("Stopped", None): JobState.CANCELLED,
}
TIMEOUT_MESSAGES = {
    "MaxRuntimeExceeded": "timed out: the job ran longer than max_runtime",
    "MaxWaitTimeExceeded": "timed out: spot capacity plus training took longer than backends.sagemaker.max_wait",
}


def map_state(status: str, secondary: str | None) -> JobState:
    """One table for all of SageMaker's states; anything new reads as UNKNOWN."""
    return STATES.get((status, secondary)) or STATES.get((status, None)) or JobState.UNKNOWN


def console_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{name}"


def status_of(job: Mapping[str, Any], region: str) -> Status:
    """A DescribeTrainingJob answer as a Status; a stop for a time limit reads as a failure that says so."""
    status = job.get("TrainingJobStatus", "")
    secondary = job.get("SecondaryStatus")
    state = map_state(status, secondary)
    message = job.get("FailureReason") or ""
    if secondary in TIMEOUT_MESSAGES and status == "Stopped":
        message = TIMEOUT_MESSAGES[secondary] + (f" ({message})" if message else "")
    started, ended = job.get("TrainingStartTime"), job.get("TrainingEndTime")
    return Status(state, f"{status}/{secondary}" if secondary else status, message,
                  exit_code=0 if state is JobState.SUCCEEDED else None,
                  started_at=started.timestamp() if started else None,
                  ended_at=ended.timestamp() if ended and state.is_terminal else None,
                  url=console_url(region, job.get("TrainingJobName", "")))
