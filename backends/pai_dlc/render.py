"""The `pai_dlc` backend's pure half: its settings and the exact CreateJob body (POST /api/v1/jobs).

Kept apart from the SDK-facing modules so a dry run never imports the Alibaba Cloud SDK. The body
uses the API's own field names (PascalCase, as main.tea of alibabacloud-pai-dlc20201203 names them);
submit hands it to the SDK's CreateJobRequest.from_map unchanged. The job's files (bootstrap, run
command, code bundle) go to an OSS bucket, which every pod mounts through the job's DataSources.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from launcher import catalog
from launcher.backend import Request
from launcher.errors import Problem, SpecError
from launcher.node import Placement, job_files, node_environment

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

NAME = "pai_dlc"
JOB_TYPE = "PyTorchJob"
# Settings.Tags keys: which launch job a DLC job is, and the idempotency key it was submitted with
JOB_ID_TAG = "launch-job-id"
IDEMPOTENCY_TAG = "launch-idempotency-key"
CPU_ECS_SPEC = "ecs.g6.xlarge"  # a job that asks for no GPU (4 vCPU, 16 GiB); `launch plan` names it too
DEFAULT_MOUNT = "/mnt/launch/"
MAX_PRIORITY = 9
# How a node learns its place (sourced by bootstrap.sh through LAUNCH_TOPOLOGY). DLC runs a PyTorchJob
# like Kubeflow's PyTorch operator: every pod gets MASTER_ADDR/MASTER_PORT (worker 0's service), and
# WORLD_SIZE/RANK counting pods, not processes (worker 0 is rank 0 when the job has no Master).
TOPOLOGY = r"""[ -n "${RANK:-}" ] && LAUNCH_NODE_RANK=$RANK
[ -n "${WORLD_SIZE:-}" ] && LAUNCH_NUM_NODES=$WORLD_SIZE
[ -n "${MASTER_ADDR:-}" ] && LAUNCH_MASTER_ADDR=$MASTER_ADDR
[ -n "${MASTER_PORT:-}" ] && LAUNCH_MASTER_PORT=$MASTER_PORT
"""
TAG_RE = re.compile(r"[^\x00-\x1f\x7f]{1,128}")  # printable, one line, at most 128 characters
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def configured_region(settings: Mapping[str, Any]) -> str | None:
    return settings.get("region") or os.environ.get("ALIBABA_CLOUD_REGION_ID") or None


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.pai_dlc`: the workspace and region the job goes to, the OSS bucket for its files,
    what it runs on. Credentials come from Alibaba Cloud's own chain, never from here."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class PaiDlcSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        region: str | None = Field(None, pattern=r"^[a-z]{2}-[a-z0-9-]+$", examples=["cn-hangzhou"],
                                   description="default: ALIBABA_CLOUD_REGION_ID")
        workspace_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$", examples=["12345"],
                                         description="the PAI workspace")
        resource_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$", examples=["quota12345"],
                                        description="a resource quota (Lingjun or general); unset: "
                                        "pay-as-you-go public resources")
        ecs_spec: str | None = Field(None, pattern=r"^ecs\.[a-z0-9.-]+$", examples=["ecs.gn7i-c8g1.2xlarge"],
                                     description="pins the instance type instead of the catalog")
        bucket: str | None = Field(None, description="OSS bucket for the job's files and code bundles")
        prefix: str = Field("launch", pattern=r"^[A-Za-z0-9._/-]+$", examples=["launch", "team/launch"])
        mount_path: str = Field(DEFAULT_MOUNT, pattern=r"^/[A-Za-z0-9._/-]*/$", examples=[DEFAULT_MOUNT],
                                description="where every pod mounts oss://<bucket>/<prefix>/")
        data_sources: list[str] = Field(default_factory=list, description="PAI dataset ids to mount")
        priority: int | None = Field(None, ge=1, le=MAX_PRIORITY)
        endpoint: str | None = Field(None, description="DLC API host; default pai-dlc.<region>.aliyuncs.com")
        protocol: Literal["https", "http"] = "https"
        oss_endpoint: str | None = Field(None, pattern=r"^https?://",
                                         examples=["https://oss-cn-hangzhou.aliyuncs.com"],
                                         description="OSS's S3-compatible endpoint; default "
                                         "https://oss-<region>.aliyuncs.com")

    return PaiDlcSettings


def oss_host(settings: Mapping[str, Any], region: str) -> str:
    """The OSS host a pod mounts from: the region's internal endpoint (free traffic inside the region)."""
    return f"oss-{region}-internal.aliyuncs.com"


def choose_ecs_spec(settings: Mapping[str, Any], spec: JobSpec, problems: list[Problem]) -> tuple[str, Any]:
    """The pinned ecs_spec, else the catalog's first fit for the accelerators; with the offer (for quotas)."""
    accel = spec.resources.accelerators
    pinned = settings.get("ecs_spec")
    if pinned:
        return str(pinned), None
    if not accel.is_gpu:
        return CPU_ECS_SPEC, None
    try:
        offer = catalog.choose(NAME, accel, cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb)
    except catalog.CatalogError as exc:
        field = "resources.accelerators" if not catalog.find(NAME, accel) else "resources"
        problems.append(spec.problem(field, f"{exc.message}; {exc.hint}"))
        return "", None
    return offer.instance_type, offer


def _resource_config(spec: JobSpec, offer: Any) -> dict[str, str]:
    """A quota job asks for amounts, not an instance type: the spec's, else the catalog machine's."""
    accel = spec.resources.accelerators
    cpus = spec.resources.cpus or (offer.vcpus if offer else 4)
    memory = spec.resources.memory_gb or (offer.memory_gb if offer else 16)
    config = {"CPU": str(math.ceil(cpus)), "Memory": f"{math.ceil(memory)}Gi", "GPU": str(accel.count)}
    if accel.is_gpu and offer is not None:
        config["GPUType"] = offer.provider_accelerator
    return config


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
    """The CreateJob body: one Worker role of `nodes` pods (worker 0 is rank 0), every problem at once."""
    problems: list[Problem] = []
    region = configured_region(settings)
    if not region:
        problems.append(spec.problem("backends.pai_dlc.region", "PAI-DLC needs a region: set region: "
                                     "cn-hangzhou here or in config.toml, or export ALIBABA_CLOUD_REGION_ID"))
        region = "REGION"
    workspace = settings.get("workspace_id")
    if not workspace:
        problems.append(spec.problem("backends.pai_dlc.workspace_id", "PAI-DLC runs jobs in a workspace: "
                                     "set workspace_id: <id from the PAI console or ListWorkspaces>"))
    bucket = settings.get("bucket")
    if not bucket:
        problems.append(spec.problem("backends.pai_dlc.bucket", "PAI-DLC pods read the job's files from OSS: "
                                     "set bucket: <an OSS bucket in the job's region>"))
    elif not BUCKET_RE.fullmatch(bucket):
        problems.append(spec.problem("backends.pai_dlc.bucket", f"{bucket!r} is not an OSS bucket name "
                                     "(3-63 lowercase letters, digits and -)"))
    if not spec.image:
        problems.append(spec.problem("image", "PAI-DLC needs a container image, e.g. image: dsw-registry-vpc."
                                     "cn-hangzhou.cr.aliyuncs.com/pai/pytorch-training:2.3-gpu-py310-cu121"))
    if spec.spot:
        problems.append(spec.problem("spot", "the pai_dlc backend does not run spot jobs yet; remove spot: true"))
    if spec.outputs:
        problems.append(spec.problem("outputs", "the pai_dlc backend does not copy outputs yet; write them to a "
                                     "mounted data source (backends.pai_dlc.data_sources) and remove outputs"))
    if spec.retries:
        problems.append(spec.problem("retries", "the pai_dlc backend does not retry jobs yet; remove retries"))
    ecs_spec, offer = choose_ecs_spec(settings, spec, problems)
    tags = {JOB_ID_TAG: job_id}
    if idempotency_key is not None:
        if not TAG_RE.fullmatch(idempotency_key):
            problems.append(Problem("--idempotency-key", None, "", "it becomes a PAI-DLC tag value: at most "
                                    "128 printable characters on one line"))
        tags[IDEMPOTENCY_TAG] = idempotency_key
    if problems:
        raise SpecError(problems)

    prefix = str(settings.get("prefix") or "launch").strip("/")
    mount = str(settings.get("mount_path") or DEFAULT_MOUNT)
    where = Placement(f"oss://{bucket}/{prefix}/jobs/{job_id}/", f"{mount}jobs/{job_id}/",
                      f"oss://{bucket}/{prefix}/bundles/", f"{mount}bundles/")
    uploads, files_env = job_files(spec, bundle, where, topology=TOPOLOGY)
    # relative to the container's working directory: DLC gives each pod its own file system
    environment = {**node_environment(spec, job_id, secrets, output_dir="launch/outputs",
                                      checkpoint_dir=spec.checkpoint_dir or "launch/checkpoints",
                                      workdir="launch/work"),
                   **files_env}
    role: dict[str, Any] = {"Type": "Worker", "Image": spec.image, "PodCount": spec.resources.nodes}
    if settings.get("resource_id") and not settings.get("ecs_spec"):
        role["ResourceConfig"] = _resource_config(spec, offer)  # a quota is asked for amounts...
    else:
        role["EcsSpec"] = ecs_spec  # ...unless an instance type is pinned
    data_sources: list[dict[str, Any]] = [
        {"Uri": f"oss://{bucket}.{oss_host(settings, region)}/{prefix}/", "MountPath": mount}]
    data_sources += [{"DataSourceId": d} for d in settings.get("data_sources") or ()]
    payload: dict[str, Any] = {
        "WorkspaceId": workspace,
        "DisplayName": job_id,
        "JobType": JOB_TYPE,
        "JobSpecs": [role],
        "UserCommand": f"/bin/sh {shlex.quote(where.job_path + 'bootstrap.sh')}",
        "Envs": environment,
        "DataSources": data_sources,
        "Settings": {"Tags": tags},
    }
    if settings.get("resource_id"):
        payload["ResourceId"] = settings["resource_id"]
    if settings.get("priority"):
        payload["Priority"] = settings["priority"]
    if spec.max_runtime:
        payload["JobMaxRunningTimeMinutes"] = math.ceil(spec.max_runtime / 60)
    return Request(NAME, job_id, "CreateJob", payload, tuple(uploads))
