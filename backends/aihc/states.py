"""AIHC's job states and what `launch status` shows for a DescribeJob / DescribeJobs answer.

Pure (the answer is the parsed JSON), so one table serves status and list alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from launcher.backend import JobState, Status, map_state
from launcher.durations import iso_timestamp

# The `status` values AIHC's job pages show for a training job (a Kubeflow PyTorchJob underneath, plus
# AIHC's own queueing states), in the order a job moves through them. Any other value is kept raw and
# read as UNKNOWN (map_state), so a state Baidu adds later is shown, never guessed.
STATES: dict[str, JobState] = {
    "Created": JobState.PENDING,      # accepted, not yet in the queue
    "Pending": JobState.PENDING,      # queued: waiting for the pool's GPUs
    "Enqueued": JobState.PENDING,
    "Suspended": JobState.PENDING,    # held back by the queue (priority preemption)
    "Scheduled": JobState.STARTING,   # pods placed on nodes: pulling the image, mounting data
    "Creating": JobState.STARTING,
    "Restarting": JobState.STARTING,  # fault tolerance replaced a pod
    "Running": JobState.RUNNING,
    "Terminating": JobState.CANCELLING,
    "Stopping": JobState.CANCELLING,
    "Succeeded": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "Stopped": JobState.CANCELLED,
    "Deleted": JobState.CANCELLED,
}


def console_url(region: str, resource_pool_id: str, job_id: str) -> str:
    return (f"https://console.bce.baidu.com/aihc/job/detail?jobId={job_id}&resourcePoolId={resource_pool_id}"
            f"&region={region}")



def status_of(job: Mapping[str, Any], region: str, resource_pool_id: str) -> Status:
    """A DescribeJob answer as a Status; a failed pod's reason is kept as the message."""
    raw = str(job.get("status") or "")
    state = map_state(STATES, raw)
    pods = ((job.get("podList") or {}).get("pods") or []) if isinstance(job.get("podList"), Mapping) else []
    reasons = [f"{(p.get('objectMeta') or {}).get('name', '?')}: {p['reason']}" for p in pods
               if isinstance(p, Mapping) and p.get("reason")]
    return Status(state, raw, "; ".join(reasons),
                  exit_code=0 if state is JobState.SUCCEEDED else None,
                  started_at=iso_timestamp(job.get("runningAt")),
                  ended_at=iso_timestamp(job.get("finishedAt")) if state.is_terminal else None,
                  url=console_url(region, resource_pool_id, str(job.get("jobId") or "")))
