"""Fine-tuning job states and what `launch status` shows for a job as the API returns it.

Pure (the job is the client's `to_dict()`), so one table serves status and list alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from launcher.backend import JobState, Status, map_state

# Azure's FineTuningState (2024-10-21: created, pending, running, succeeded, cancelled, failed) and
# OpenAI's job statuses (validating_files, queued, running, succeeded, failed, cancelled), in order.
STATES: dict[str, JobState] = {
    "created": JobState.PENDING,
    "validating_files": JobState.PENDING,
    "pending": JobState.PENDING,
    "queued": JobState.PENDING,
    "running": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}


def cost(tokens: int | None, usd_per_1m: float | None) -> str:
    if not tokens:
        return ""
    estimate = f" (~${tokens * usd_per_1m / 1e6:,.2f} at ${usd_per_1m:g}/1M tokens)" if usd_per_1m else ""
    return f"{tokens:,} trained tokens{estimate}"


def status_of(job: Mapping[str, Any], usd_per_1m: float | None = None) -> Status:
    """The job as a Status: on success the message names the fine-tuned model (what a deployment
    needs) and the tokens billed; on failure, the service's reason."""
    raw = str(job.get("status") or "")
    state = map_state(STATES, raw)
    parts = []
    if job.get("fine_tuned_model"):
        parts.append(f"fine_tuned_model: {job['fine_tuned_model']}")
    error = job.get("error") or {}
    if state is JobState.FAILED and isinstance(error, Mapping) and error.get("message"):
        parts.append(" ".join(str(error[k]) for k in ("code", "message") if error.get(k)))
    billed = cost(job.get("trained_tokens"), usd_per_1m)
    if billed:
        parts.append(billed)
    created, finished = job.get("created_at"), job.get("finished_at")
    return Status(state, raw, "; ".join(parts),
                  exit_code=0 if state is JobState.SUCCEEDED else None,
                  started_at=float(created) if isinstance(created, (int, float)) else None,
                  ended_at=float(finished) if state.is_terminal and isinstance(finished, (int, float)) else None)
