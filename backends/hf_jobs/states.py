"""What a Hugging Face job's stage means to launch, and one state for a launch job of several nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from launcher.backend import Handle, JobState, Status, map_state

# huggingface_hub's JobStage, every value (a test holds this table to the enum)
STATES: dict[str, JobState] = {
    "SCHEDULING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "CANCELED": JobState.CANCELLED,
    "ERROR": JobState.FAILED,
    "DELETED": JobState.CANCELLED,
}
STATE_MESSAGES = {"DELETED": "the job was deleted on Hugging Face"}


def raw_stage(info: Any) -> str:
    stage = info.status.stage
    return str(getattr(stage, "value", stage))


def status_of_job(info: Any) -> Status:
    """One node's Status from its JobInfo, the provider's message kept."""
    raw = raw_stage(info)
    state = map_state(STATES, raw)
    message = info.status.message or STATE_MESSAGES.get(raw, "")
    started = info.started_at.timestamp() if info.started_at else None
    ended = info.finished_at.timestamp() if info.finished_at and state.is_terminal else None
    return Status(state, raw, message, exit_code=0 if state is JobState.SUCCEEDED else None,
                  started_at=started, ended_at=ended, url=getattr(info, "url", None))


def judge(infos: Sequence[Any], handle: Handle) -> Status:
    """The launch job's state from its nodes': a node failed or gone -> FAILED (at once: its peers would
    wait for it); all succeeded -> SUCCEEDED; a cancelled node -> CANCELLED once none runs; else the
    least advanced node's state. One node: its own Status."""
    if len(infos) == 1 and infos[0] is not None:
        return status_of_job(infos[0])
    nodes = [status_of_job(i) if i is not None else Status(JobState.UNKNOWN, "NOT_FOUND",
                                                           "Hugging Face no longer knows this job")
             for i in infos]
    first = nodes[0]
    raw = ",".join(n.raw_state for n in nodes)
    failed = [(rank, n) for rank, n in enumerate(nodes) if n.state is JobState.FAILED]
    if failed:
        rank, node = failed[0]
        return Status(JobState.FAILED, raw, f"node {rank} failed: {node.message or node.raw_state}".rstrip(": "),
                      started_at=first.started_at, url=first.url)
    if all(n.state is JobState.SUCCEEDED for n in nodes):
        return Status(JobState.SUCCEEDED, raw, "", exit_code=0, started_at=first.started_at,
                      ended_at=max(n.ended_at or 0 for n in nodes) or None, url=first.url)
    if any(n.state is JobState.UNKNOWN for n in nodes):
        return Status(JobState.UNKNOWN, raw, next(n.message for n in nodes if n.state is JobState.UNKNOWN))
    if all(n.state.is_terminal for n in nodes):
        return Status(JobState.CANCELLED, raw, "", started_at=first.started_at, url=first.url)
    order = [JobState.PENDING, JobState.STARTING, JobState.RUNNING, JobState.CANCELLING]
    live = [n.state for n in nodes if not n.state.is_terminal]
    state = JobState.CANCELLING if any(n.state is JobState.CANCELLED for n in nodes) else min(live, key=order.index)
    return Status(state, raw, "", started_at=first.started_at, url=first.url)
