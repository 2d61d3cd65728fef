"""The node contract: what every backend sends to the machines that run a job.

Every backend, local included, runs the same bootstrap.sh on each node with the same
files (bootstrap, run/setup commands, code bundle) and the same LAUNCH_* environment
(DESIGN.md: "the environment every node sees"); only where the files land and how a
node learns its place in the job differ. The second part is the backend's own: it
hands bootstrap.sh a *topology* snippet (shell code sourced on the node through the
one provider-neutral `LAUNCH_TOPOLOGY` hook) or sets rank and master itself, so
bootstrap.sh names no provider. Public to backends, like launcher.backend and
launcher.errors.

A node's place is LAUNCH_NODE_RANK, LAUNCH_NUM_NODES, LAUNCH_MASTER_ADDR, LAUNCH_MASTER_PORT and
LAUNCH_NODE_ADDRS: every node's address in rank order, comma-separated, the first being the master.
A backend that knows its hosts sets it; a topology snippet sets it where the provider tells each node
every address (a cluster document the provider puts on each node). Those backends declare
`Capabilities.node_addresses`; the others leave it empty, and the core refuses the frameworks that need it
(NEEDS_NODE_ADDRESSES) on several nodes there. From these bootstrap.sh derives each framework's own contract
(`distributed:`): torchrun's and paddle's launcher flags, JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES
/ JAX_PROCESS_ID, TensorFlow's TF_CONFIG (every worker, so the only one that needs the address list).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.backend import Upload

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

MANAGED_MASTER_PORT = 29500  # a managed provider gives each job its own machines
# the frameworks bootstrap.sh sets up from LAUNCH_NODE_ADDRS (every node's address, not only the master's)
NEEDS_NODE_ADDRESSES = ("tensorflow",)
# Where bootstrap.sh finds each piece of the code bundle, in Bundle.pieces order: the base, then
# the overlay of what changed since it was packed (launcher/bundle.py).
BUNDLE_VARIABLES = ("LAUNCH_BUNDLE", "LAUNCH_BUNDLE_OVERLAY")


def bootstrap_upload(destination: str) -> Upload:
    """bootstrap.sh, found as package data (installed wheels, zips), to be placed at `destination`.
    A file on disk travels as its path (the dry run names it); otherwise as its text."""
    script = _bootstrap_script()
    if isinstance(script, Path):
        return Upload(script, destination)
    return Upload(None, destination, content=script.read_text())


def upload_text(upload: Upload) -> str:
    """The text of a job file (written inline where a provider takes no files: a command's words, a
    ConfigMap): its content, or the file it names, bootstrap.sh's read once per process (package data
    does not change under a running process, as its code does not)."""
    if upload.content is not None:
        return upload.content
    assert upload.source is not None
    return _package_text(str(upload.source)) if Path(upload.source) == _bootstrap_script() else \
        Path(upload.source).read_text()


@functools.cache
def _package_text(path: str) -> str:
    return Path(path).read_text()


@functools.cache
def _bootstrap_script() -> Any:
    """Where bootstrap.sh is (package data does not move while a process runs; its text is read where used)."""
    return resources.files("launcher").joinpath("bootstrap.sh")


@dataclass(frozen=True)
class Placement:
    """Where the job's files are uploaded (`*_uri`) and where nodes read them (`*_path`)."""

    job_uri: str        # e.g. s3://bucket/launch/jobs/<id>/  (ends with /)
    job_path: str       # the same directory as the nodes see it
    bundles_uri: str    # e.g. s3://bucket/launch/bundles/
    bundles_path: str


def job_files(spec: JobSpec, bundle: Bundle | None, where: Placement, *,
              topology: str | None = None) -> tuple[list[Upload], dict[str, str]]:
    """The uploads and the LAUNCH_* variables that point bootstrap.sh at them. Commands travel
    as files: providers cap environment values (some at 512 characters). `topology` is the
    backend's shell snippet that sets LAUNCH_NODE_RANK / LAUNCH_NUM_NODES / LAUNCH_MASTER_ADDR
    from what its provider tells a node; bootstrap.sh sources it before anything else. The bundle
    travels as one upload per piece, each named by its digest under `bundles_uri` (a piece already
    there from an earlier job need not be sent again)."""
    uploads = [bootstrap_upload(where.job_uri + "bootstrap.sh"),
               Upload(None, where.job_uri + "run.sh", content=spec.run)]
    env = {"LAUNCH_RUN_FILE": where.job_path + "run.sh"}
    if spec.setup:
        uploads.append(Upload(None, where.job_uri + "setup.sh", content=spec.setup))
        env["LAUNCH_SETUP_FILE"] = where.job_path + "setup.sh"
    if topology:
        uploads.append(Upload(None, where.job_uri + "topology.sh", content=topology))
        env["LAUNCH_TOPOLOGY"] = where.job_path + "topology.sh"
    if bundle is not None:
        for piece, variable in zip(bundle.pieces, BUNDLE_VARIABLES, strict=False):
            uploads.append(Upload(piece.path, where.bundles_uri + piece.name))
            env[variable] = where.bundles_path + piece.name
    return uploads, env


def master_port(job_id: str) -> int:
    """A rendezvous port per job, stable for the job, so two multi-node jobs sharing a host
    (local runs, pools of hosts) do not both listen on 29500. Managed providers give each job its
    own machines and keep 29500."""
    return MANAGED_MASTER_PORT + zlib.crc32(job_id.encode()) % 10000


def node_environment(spec: JobSpec, job_id: str, secrets: Mapping[str, str], *, output_dir: str,
                     checkpoint_dir: str, workdir: str, port: int = MANAGED_MASTER_PORT) -> dict[str, str]:
    """The spec's env, its secrets and the LAUNCH_* contract every node sees. Rank and master
    address are the backend's to add: per node in this environment (hosts it chose) or on the node
    through its topology snippet (managed providers). `checkpoint_dir` is the directory the
    node uses, already decided by the backend (spec.checkpoint_dir where it honours one)."""
    return {
        **spec.env,
        **secrets,
        "LAUNCH_JOB_ID": job_id,
        "LAUNCH_NUM_NODES": str(spec.resources.nodes),
        "LAUNCH_GPUS_PER_NODE": str(spec.resources.accelerators.count),
        "LAUNCH_MASTER_PORT": str(port),
        "LAUNCH_OUTPUT_DIR": output_dir,
        "LAUNCH_CHECKPOINT_DIR": checkpoint_dir,
        "LAUNCH_WORKDIR": workdir,
        "LAUNCH_DISTRIBUTED": spec.distributed or "",
    }
