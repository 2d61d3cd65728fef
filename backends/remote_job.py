"""What every backend that runs bootstrap.sh on provider machines sends alongside the job.

The files (bootstrap, run/setup commands, code bundle) and the LAUNCH_* environment are
the same for SageMaker, Vertex and later remote backends; only where the files land and
how the nodes see them differ. Keeping them here gives every node, on every provider,
the same contract (DESIGN.md: "the environment every node sees").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from launcher.backend import Upload

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

BOOTSTRAP = Path(__file__).resolve().parent.parent / "launcher" / "bootstrap.sh"


@dataclass(frozen=True)
class Placement:
    """Where the job's files are uploaded (`*_uri`) and where nodes read them (`*_path`)."""

    job_uri: str        # e.g. s3://bucket/launch/jobs/<id>/  (ends with /)
    job_path: str       # the same directory as the nodes see it
    bundles_uri: str    # e.g. s3://bucket/launch/bundles/
    bundles_path: str


def job_files(spec: JobSpec, bundle: Bundle | None, where: Placement) -> tuple[list[Upload], dict[str, str]]:
    """The uploads and the LAUNCH_* variables that point bootstrap.sh at them. Commands travel
    as files: providers cap environment values (SageMaker: 512 characters)."""
    uploads = [Upload(BOOTSTRAP, where.job_uri + "bootstrap.sh"),
               Upload(None, where.job_uri + "run.sh", content=spec.run)]
    env = {"LAUNCH_RUN_FILE": where.job_path + "run.sh"}
    if spec.setup:
        uploads.append(Upload(None, where.job_uri + "setup.sh", content=spec.setup))
        env["LAUNCH_SETUP_FILE"] = where.job_path + "setup.sh"
    if bundle is not None:
        uploads.append(Upload(bundle.path, f"{where.bundles_uri}{bundle.digest}.tar.gz"))
        env["LAUNCH_BUNDLE"] = f"{where.bundles_path}{bundle.digest}.tar.gz"
    return uploads, env


def master_port(job_id: str) -> int:
    """A rendezvous port per job, stable for the job, so two multi-node jobs sharing a host
    (local runs, ssh pools) do not both listen on 29500. Managed providers give each job its
    own machines and keep 29500."""
    import zlib

    return 29500 + zlib.crc32(job_id.encode()) % 10000


def node_environment(spec: JobSpec, job_id: str, secrets: Mapping[str, str], *, platform: str,
                     output_dir: str, checkpoint_dir: str, workdir: str, port: int = 29500) -> dict[str, str]:
    """The spec's env, its secrets and the LAUNCH_* contract; rank and master address are
    filled in on the node by bootstrap.sh from what the provider tells it."""
    return {
        **spec.env,
        **secrets,
        "LAUNCH_JOB_ID": job_id,
        "LAUNCH_NUM_NODES": str(spec.resources.nodes),
        "LAUNCH_GPUS_PER_NODE": str(spec.resources.accelerators.count),
        "LAUNCH_MASTER_PORT": str(port),
        "LAUNCH_OUTPUT_DIR": output_dir,
        "LAUNCH_CHECKPOINT_DIR": spec.checkpoint_dir or checkpoint_dir,
        "LAUNCH_PLATFORM": platform,
        "LAUNCH_WORKDIR": workdir,
        "LAUNCH_DISTRIBUTED": spec.distributed or "",
    }
