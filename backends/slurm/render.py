"""The `slurm` backend's pure half: its settings and the batch script a dry run prints.

The request is the exact batch script sbatch gets, the sbatch command-line arguments and the job's
files in `work_dir` (a directory every node sees: bootstrap.sh, the commands, the environment file).
No clock, network or randomness here: a dry run shows what submit sends, secrets masked.
"""

from __future__ import annotations

import functools
import hashlib
import math
import shlex
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from launcher.backend import Request, Upload, job_name
from launcher.errors import SpecError
from launcher.node import Placement, job_files, master_port, node_environment

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

NAME = "slurm"
COMMENT_PREFIX = "launch"
DEFAULT_CANCEL_GRACE_S = 10
SLURM_WORD = r"^[A-Za-z0-9_][A-Za-z0-9._,:|&!*=+\[\]()-]*$"  # a value that goes on an #SBATCH line as is
# what launch itself decides; a user flag for one of these would break finding or reading the job
MANAGED_FLAGS = ("--comment", "--output", "-o", "--error", "-e", "--export", "--wrap", "--parsable", "--chdir",
                 "-D", "--job-name", "-J", "--nodes", "-N", "--ntasks-per-node", "--array", "-a")


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.slurm`: where sbatch runs and the scheduler's own knobs."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field, field_validator

    from launcher.spec import Duration

    def word(description: str, example: str) -> Any:
        return Field(None, pattern=SLURM_WORD, max_length=256, description=description, examples=[example])

    class SlurmSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        login: str | None = Field(None, description="user@host[:port] of the login node; unset: sbatch runs "
                                  "on this machine (SLURM_CONF honoured)")
        partition: str | None = word("sbatch --partition", "gpu")
        account: str | None = word("sbatch --account", "my-team")
        qos: str | None = word("sbatch --qos", "high")
        reservation: str | None = word("sbatch --reservation", "maint")
        constraint: str | None = word("sbatch --constraint (node features)", "h100&ib")
        work_dir: str = Field(".launch", pattern=r"^(/|[A-Za-z0-9._])", examples=[".launch", "/shared/launch"],
                              description="a directory every node sees; absolute, or relative to the home "
                              "directory on the login node (no leading - or ~)")
        container: Literal["none", "pyxis"] = Field("none", description="pyxis: srun --container-image=<image> "
                                                    "(SUNK); none: run on the host (image is ignored)")
        gres_style: Literal["gpus-per-node", "gres"] = Field("gpus-per-node", description="--gpus-per-node=N, "
                                                             "or --gres=gpu:N for older clusters")
        sbatch_args: list[str] = Field(default_factory=list, description="extra sbatch flags, one per item")
        ssh_config: str | None = None
        identity_file: str | None = None
        host_key_checking: Literal["yes", "accept-new"] = "yes"
        cancel_grace: Duration = DEFAULT_CANCEL_GRACE_S

        @field_validator("login")
        @classmethod
        def _parses(cls, value: str | None) -> str | None:
            if value is not None:
                from backends.remote.transport import Host

                Host.parse(value)
            return value

        @field_validator("sbatch_args")
        @classmethod
        def _not_managed(cls, value: list[str]) -> list[str]:
            for arg in value:
                flag = arg.split("=", 1)[0]
                if flag in MANAGED_FLAGS:
                    raise ValueError(f"{flag} is set by launch itself (it finds and reads the job by it); "
                                     "remove it from sbatch_args")
                if not arg.startswith("-") or "\n" in arg or "\0" in arg:
                    raise ValueError(f"{arg!r} is not a flag: each item is one sbatch option, e.g. "
                                     "--exclusive or --time-min=10")
            return value

    return SlurmSettings


def comment(job_id: str, idempotency_key: str | None) -> str:
    """`launch:<job id>:<key digest>`: what squeue shows of a launch job, to find it by its id or key.
    The key itself may hold anything; its digest is one safe word on an #SBATCH line."""
    return f"{COMMENT_PREFIX}:{job_id}:{key_digest(idempotency_key) if idempotency_key else '-'}"


def key_digest(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


def parse_comment(text: str) -> tuple[str, str | None] | None:
    """(job id, key digest) of a launch comment, or None for anyone else's job."""
    parts = text.strip().split(":")
    if len(parts) != 3 or parts[0] != COMMENT_PREFIX:
        return None
    return parts[1], (None if parts[2] == "-" else parts[2])


def time_limit(seconds: float) -> str:
    """sbatch --time as minutes (Slurm counts whole minutes): never shorter than max_runtime. The
    node's own watchdog (bootstrap.sh) stops the job at max_runtime to the second; Slurm's limit is
    the backstop, a minute later."""
    return str(math.ceil(seconds / 60) + 1)


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
    """The batch script, the sbatch arguments and the job's files, as submit sends them."""
    problems = []
    if spec.spot:
        problems.append(spec.problem("spot", "Slurm has no spot capacity here; use a preemptible partition "
                                     "(backends.slurm.partition) or qos instead, and set spot: false"))
    if settings["container"] == "pyxis" and not spec.image:
        problems.append(spec.problem("image", "container: pyxis runs the job in an image: set image:"))
    if problems:
        raise SpecError(problems)
    root = str(PurePosixPath(settings["work_dir"]))
    job_dir = f"{root}/jobs/{job_id}"
    where = Placement(job_dir + "/", job_dir + "/", f"{root}/bundles/", f"{root}/bundles/")
    uploads, files_env = job_files(spec, bundle, where, topology=TOPOLOGY)
    env = {**node_environment(spec, job_id, secrets, output_dir=f"{job_dir}/outputs",
                              checkpoint_dir=spec.checkpoint_dir or f"{job_dir}/checkpoints", workdir="",
                              port=master_port(job_id)),
           **files_env, "LAUNCH_MAX_RUNTIME": str(spec.max_runtime or "")}
    env.pop("LAUNCH_WORKDIR")  # per node, set by the srun line
    plain = {k: v for k, v in env.items() if k not in secrets}
    batch = batch_script(settings, spec, job_id, job_dir, idempotency_key)
    uploads += [Upload(None, f"{job_dir}/env.sh", content=_exports(plain)),
                Upload(None, f"{job_dir}/secrets.env", content=_exports({k: env[k] for k in secrets})),
                Upload(None, f"{job_dir}/job.sbatch", content=batch)]
    sbatch = ["sbatch", "--parsable", *settings["sbatch_args"], f"{job_dir}/job.sbatch"]
    payload = {
        "login": settings.get("login"),
        "work_dir": root,
        "job_dir": job_dir,
        "nodes": spec.resources.nodes,
        "comment": comment(job_id, idempotency_key),
        "idempotency_key": idempotency_key,
        "cancel_grace_s": settings["cancel_grace"],
        "sbatch": sbatch,  # run on the login node as these words, each quoted
        "secret_names": sorted(secrets),
        "script": batch,
    }
    return Request(NAME, job_id, "sbatch", payload, tuple(uploads))


def _exports(env: Mapping[str, str]) -> str:
    """`export K='v'`, always single-quoted: a masked value (dry run) and the real one quote alike."""
    return "".join(f"export {k}='" + v.replace("'", "'\"'\"'") + "'\n" for k, v in env.items())


# Sourced by bootstrap.sh on each node (LAUNCH_TOPOLOGY): its place in the job, from Slurm.
TOPOLOGY = ('LAUNCH_NODE_RANK=${SLURM_NODEID:-0}\n'
            'LAUNCH_NUM_NODES=${SLURM_JOB_NUM_NODES:-1}\n')


def batch_script(settings: Mapping[str, Any], spec: JobSpec, job_id: str, job_dir: str,
                 idempotency_key: str | None) -> str:
    """The exact script sbatch gets. Directives take no shell quoting, so every value on them is
    one checked word (settings' pattern, the job id, numbers)."""
    res = spec.resources
    gpus = res.accelerators.count
    lines = ["#!/bin/sh", f"#SBATCH --job-name={job_name(job_id)}", f"#SBATCH --nodes={res.nodes}",
             "#SBATCH --ntasks-per-node=1"]
    if gpus:
        lines.append(f"#SBATCH --gpus-per-node={gpus}" if settings["gres_style"] == "gpus-per-node"
                     else f"#SBATCH --gres=gpu:{gpus}")
    if res.cpus:
        lines.append(f"#SBATCH --cpus-per-task={math.ceil(res.cpus)}")
    if res.memory_gb:
        lines.append(f"#SBATCH --mem={math.ceil(res.memory_gb * 1024)}M")
    if spec.max_runtime:
        lines.append(f"#SBATCH --time={time_limit(spec.max_runtime)}")
    if spec.retries:
        lines.append("#SBATCH --requeue")
    for setting in ("partition", "account", "qos", "reservation", "constraint"):
        if settings.get(setting):
            lines.append(f"#SBATCH --{setting}={settings[setting]}")
    lines += [f"#SBATCH --comment={comment(job_id, idempotency_key)}", f"#SBATCH --output={job_dir}/batch.log",
              "#SBATCH --open-mode=append"]
    container = ""
    if settings["container"] == "pyxis" and spec.image:
        container = (" " + shlex.quote(f"--container-image={spec.image}")
                     + ' --container-mounts="$work_root:$work_root" --container-workdir="$PWD"')
    lines += [
        "",
        "# The job's environment, then its secrets: read here on the first node and deleted at once (srun",
        "# hands them to every node through Slurm, never on a command line). A requeued job runs without them.",
        f"job_dir={shlex.quote(job_dir)}",
        f"work_root={shlex.quote(str(PurePosixPath(job_dir).parent.parent))}",
        'case $job_dir in /*) ;; *) job_dir=$PWD/$job_dir; work_root=$PWD/$work_root ;; esac',
        'set -a; . "$job_dir/env.sh" || exit 2',
        'if [ -f "$job_dir/secrets.env" ]; then . "$job_dir/secrets.env"; rm -f "$job_dir/secrets.env"',
        'else echo "[launch] no secrets file: read by an earlier start of this job" >&2; fi; set +a',
        "",
        "# Each node's NodeAddr is what the others reach (node names need not resolve), in SLURM_NODEID order;",
        "# the master is the first node.",
        "addrs=",
        'for host in $(scontrol show hostnames "$SLURM_JOB_NODELIST"); do',
        '    addr=$(scontrol show node "$host" -o 2>/dev/null | tr " " "\\n" | sed -n "s/^NodeAddr=//p")',
        '    addrs="${addrs:+$addrs,}${addr:-$host}"',
        "done",
        'export LAUNCH_NODE_ADDRS="$addrs" LAUNCH_MASTER_ADDR="${addrs%%,*}"',
        "",
        "# One bootstrap.sh per node, each with its own log and exit file; one failed node stops the rest.",
        f"srun --nodes={res.nodes} --ntasks-per-node=1 --kill-on-bad-exit=1{container} \\",
        '    --output="$job_dir/node-%n.log" \\',
        "    sh -c 'd=$1/node-$SLURM_NODEID; export LAUNCH_WORKDIR=$d/work LAUNCH_EXIT_FILE=$d.exit "
        "LAUNCH_LOG_FILE=$d.log; exec sh \"$1/bootstrap.sh\"' launch-node \"$job_dir\"",
        "",
    ]
    return "\n".join(lines)
