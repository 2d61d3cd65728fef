"""DLC's job states and what `launch status` shows for a GetJob / ListJobs answer.

Pure (the answer is the SDK model's `to_map()`), so one table serves status and list alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from launcher.backend import JobState, Status, map_state
from launcher.durations import iso_timestamp

# Every Status DLC documents for a job (GetJob's `Status`), in the order a job moves through them.
# The *Reserving states keep the machines for inspection after the command ended (Settings.
# JobReservedMinutes); the command's result is already known, so they read as the end.
STATES: dict[str, JobState] = {
    "Creating": JobState.PENDING,
    "Queuing": JobState.PENDING,
    "Dequeued": JobState.PENDING,
    "Bidding": JobState.PENDING,  # spot: waiting for a bid to be won
    "EnvPreparing": JobState.STARTING,
    "SanityChecking": JobState.STARTING,
    "Restarting": JobState.STARTING,
    "Running": JobState.RUNNING,
    "Stopping": JobState.CANCELLING,
    "SucceededReserving": JobState.SUCCEEDED,
    "FailedReserving": JobState.FAILED,
    "Succeeded": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "Stopped": JobState.CANCELLED,
}


def console_url(region: str, workspace_id: str, dlc_job_id: str) -> str:
    return (f"https://pai.console.aliyun.com/?regionId={region}&workspaceId={workspace_id}"
            f"#/dlc/jobs/{dlc_job_id}")



def status_of(job: Mapping[str, Any], region: str) -> Status:
    """A GetJob answer as a Status; the reason DLC gives is kept as the message."""
    raw = str(job.get("Status") or "")
    state = map_state(STATES, raw)
    reason = " ".join(str(job[k]) for k in ("ReasonCode", "ReasonMessage") if job.get(k))
    return Status(state, raw, reason,
                  exit_code=0 if state is JobState.SUCCEEDED else None,
                  started_at=iso_timestamp(job.get("GmtRunningTime")),
                  ended_at=iso_timestamp(job.get("GmtFinishTime")) if state.is_terminal else None,
                  url=console_url(region, str(job.get("WorkspaceId") or ""), str(job.get("JobId") or "")))
