"""Slurm's job states (squeue %T, sacct State, scontrol JobState) in launch's terms, in one table."""

from __future__ import annotations

from launcher.backend import JobState

STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "CONFIGURING": JobState.STARTING,
    "RESIZING": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "REVOKED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
}

# why a job ended without a node's exit code to explain it
ENDED_BECAUSE = {
    "TIMEOUT": "exceeded max_runtime (Slurm TIMEOUT: the job's --time ran out)",
    "NODE_FAIL": "a node of the job failed (Slurm NODE_FAIL)",
    "PREEMPTED": "preempted by a higher-priority job (Slurm PREEMPTED)",
    "OUT_OF_MEMORY": "ran out of memory (Slurm OUT_OF_MEMORY: raise resources.memory_gb)",
    "BOOT_FAIL": "a node failed to boot (Slurm BOOT_FAIL)",
    "DEADLINE": "missed its deadline (Slurm DEADLINE)",
    "SUSPENDED": "suspended by the scheduler",
    "STOPPED": "stopped by the scheduler",
}

# squeue's pending reasons, said so that a user knows what to change
PENDING_BECAUSE = {
    "Resources": "waiting for nodes to free up (Resources)",
    "Priority": "waiting behind higher-priority jobs (Priority)",
    "QOSMaxGRESPerUser": "the QOS caps your GPUs in use (QOSMaxGRESPerUser): wait for your other jobs",
    "ReqNodeNotAvail": "a required node is unavailable (ReqNodeNotAvail)",
    "PartitionNodeLimit": "the partition has fewer nodes than asked for (PartitionNodeLimit): lower "
                          "resources.nodes or pick another partition",
    "PartitionConfig": "the job asks for more than the partition has (PartitionConfig): lower "
                       "resources.nodes or accelerators, or pick another partition",
    "BeginTime": "waiting for its start time (BeginTime)",
    "Dependency": "waiting for a job it depends on (Dependency)",
    "JobHeldUser": "held by you (JobHeldUser): scontrol release <id>",
    "JobHeldAdmin": "held by an administrator (JobHeldAdmin)",
}


def pending_message(reason: str) -> str:
    reason = reason.strip()
    if not reason or reason == "None":
        return "waiting to be scheduled"
    return PENDING_BECAUSE.get(reason, f"waiting: {reason}")
