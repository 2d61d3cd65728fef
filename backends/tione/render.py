"""The `tione` backend's pure half: its settings and the exact CreateTrainingTask request (TI-ONE 2021-11-11).

Kept apart from the SDK-facing modules so a dry run never imports the Tencent Cloud SDK. The request
uses the API's own member names (PascalCase, as tccli's api.json for tione/v20211111 lists them);
submit hands it to the SDK's CreateTrainingTaskRequest unchanged. The job's files (bootstrap, run
command, code bundle) go to a COS bucket, which every node mounts through the task's DataConfigs (a
COS source at a MappingPath), so one content-addressed bundle serves every job that shares the code.
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

NAME = "tione"
# Tags: which launch job a training task is, and the idempotency key it was submitted with
JOB_ID_TAG = "launch-job-id"
IDEMPOTENCY_TAG = "launch-idempotency-key"
POSTPAID = "POSTPAID_BY_HOUR"
PREPAID = "PREPAID"
CPU_INSTANCE_TYPE = "TI.S.2XLARGE32.POST"  # a job that asks for no GPU (8 cores, 32 GB); `launch plan` names it too
DEFAULT_MOUNT = "/opt/ml/input/data/launch/"
MAX_NAME = 60  # CreateTrainingTask.Name: at most 60 characters, letters, digits, _ and -
# How a node learns its place (sourced by bootstrap.sh through LAUNCH_TOPOLOGY). TI-ONE's distributed-training
# guide (cloud.tencent.com/document/product/851/103087) lists what a DDP task's nodes get: MASTER_ADDR and
# MASTER_PORT of the master (RANK 0), WORLD_SIZE (nodes) and RANK (this node), besides NODE_LIST and INDEX.
TOPOLOGY = r"""[ -n "${RANK:-}" ] && LAUNCH_NODE_RANK=$RANK
[ -n "${WORLD_SIZE:-}" ] && LAUNCH_NUM_NODES=$WORLD_SIZE
[ -n "${MASTER_ADDR:-}" ] && LAUNCH_MASTER_ADDR=$MASTER_ADDR
[ -n "${MASTER_PORT:-}" ] && LAUNCH_MASTER_PORT=$MASTER_PORT
"""
# Tencent Cloud tag values: letters, digits, spaces and + - = . _ : / @ ( ) [ ], at most 255 characters
TAG_RE = re.compile(r"[\w +\-=.:/@()\[\]]{1,255}")
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,48}-\d{5,}")  # <name>-<APPID>, as COS names every bucket
IMAGE_TYPES = ("CUSTOM", "TCR", "CCR")


def configured_region(settings: Mapping[str, Any]) -> str | None:
    return settings.get("region") or os.environ.get("TENCENTCLOUD_REGION") or None


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.tione`: the region and workspace a task goes to, how it is paid for, the COS bucket for
    its files, what it runs on. Credentials come from Tencent Cloud's own chain, never from here."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class TioneSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        region: str | None = Field(None, pattern=r"^[a-z]{2}-[a-z0-9-]+$", examples=["ap-guangzhou"],
                                   description="default: TENCENTCLOUD_REGION")
        project_id: str | None = Field(None, pattern=r"^[0-9]+$", examples=["12345"],
                                       description="TiProjectId: a TI-ONE workspace other than the default one")
        charge_type: Literal["POSTPAID_BY_HOUR", "PREPAID"] = POSTPAID
        resource_group_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$", examples=["trsg-1368bcxs"],
                                              description="the PREPAID resource group the task runs in")
        instance_type: str | None = Field(None, pattern=r"^TI\.[A-Z0-9.]+$", examples=["TI.GN7.8XLARGE128.POST"],
                                          description="pins the instance type instead of the catalog")
        cos_bucket: str | None = Field(None, examples=["launch-1250000000"],
                                       description="COS bucket (<name>-<APPID>) for the job's files and bundles")
        prefix: str = Field("launch", pattern=r"^[A-Za-z0-9._/-]+$", examples=["launch", "team/launch"])
        mount_path: str = Field(DEFAULT_MOUNT, pattern=r"^/[A-Za-z0-9._/-]*/$", examples=[DEFAULT_MOUNT],
                                description="where every node mounts cos://<bucket>/<prefix>/")
        vpc: str | None = Field(None, pattern=r"^vpc-[a-z0-9]+$", examples=["vpc-abc123"])
        subnet: str | None = Field(None, pattern=r"^subnet-[a-z0-9]+$", examples=["subnet-abc123"])
        image_type: Literal["CUSTOM", "TCR", "CCR"] = "CUSTOM"
        registry_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$", examples=["tcr-abc123"],
                                        description="the TCR instance of a TCR image")
        image_secret: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", examples=["my-registry-credential"],
                                         description="the id of a stored registry credential for a private image")
        endpoint: str | None = Field(None, pattern=r"^[A-Za-z0-9.-]+(:[0-9]+)?$",
                                     examples=["tione.ap-guangzhou.tencentcloudapi.com"],
                                     description="TI-ONE API host[:port] (the scheme is `protocol`); default "
                                     "tione.tencentcloudapi.com")
        protocol: Literal["https", "http"] = "https"
        cos_endpoint: str | None = Field(None, pattern=r"^https?://",
                                         examples=["https://cos.ap-guangzhou.myqcloud.com"],
                                         description="COS's S3-compatible endpoint; default "
                                         "https://cos.<region>.myqcloud.com")

    return TioneSettings


def task_name(job_id: str) -> str:
    """CreateTrainingTask.Name (60 characters at most): the job id, shortened keeping its random end."""
    return job_id if len(job_id) <= MAX_NAME else f"{job_id[:MAX_NAME - 7]}-{job_id[-6:]}"


def choose_instance_type(settings: Mapping[str, Any], spec: JobSpec, problems: list[Problem]) -> tuple[str, Any]:
    """The pinned instance_type, else the catalog's first fit for the accelerators; with the offer."""
    accel = spec.resources.accelerators
    pinned = settings.get("instance_type")
    if pinned:
        return str(pinned), None
    if not accel.is_gpu:
        return CPU_INSTANCE_TYPE, None
    try:
        offer = catalog.choose(NAME, accel, cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb)
    except catalog.CatalogError as exc:
        field = "resources.accelerators" if not catalog.find(NAME, accel) else "resources"
        problems.append(spec.problem(field, f"{exc.message}; {exc.hint}"))
        return "", None
    return offer.instance_type, offer


def resource_config(settings: Mapping[str, Any], spec: JobSpec, problems: list[Problem]) -> dict[str, Any]:
    """One WORKER role of `nodes` instances. Pay-as-you-go names an instance type; a PREPAID resource
    group is asked for amounts in the API's units (1/1000 core, MB, 1/100 card)."""
    role: dict[str, Any] = {"Role": "WORKER", "InstanceNum": spec.resources.nodes}
    instance_type, offer = choose_instance_type(settings, spec, problems)
    if settings.get("charge_type") != PREPAID:
        role["InstanceType"] = instance_type
        return role
    accel = spec.resources.accelerators
    cpus = spec.resources.cpus or (offer.vcpus if offer else 8)
    memory_gb = spec.resources.memory_gb or (offer.memory_gb if offer else 32)
    role.update(Cpu=math.ceil(cpus * 1000), Memory=math.ceil(memory_gb * 1024))
    if accel.is_gpu:
        role.update(Gpu=accel.count * 100, GpuType=accel.type)
    return role


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
    """The CreateTrainingTask request, every problem at once."""
    problems: list[Problem] = []
    region = configured_region(settings)
    if not region:
        problems.append(spec.problem("backends.tione.region", "TI-ONE needs a region: set region: ap-guangzhou "
                                     "here or in config.toml, or export TENCENTCLOUD_REGION"))
        region = "REGION"
    bucket = settings.get("cos_bucket")
    if not bucket:
        problems.append(spec.problem("backends.tione.cos_bucket", "TI-ONE nodes read the job's files from COS: "
                                     "set cos_bucket: <name>-<APPID> (a bucket in the task's region)"))
    elif not BUCKET_RE.fullmatch(bucket):
        problems.append(spec.problem("backends.tione.cos_bucket", f"{bucket!r} is not a COS bucket name "
                                     "(<name>-<APPID>: lowercase letters, digits and -, then your APPID)"))
    charge = settings.get("charge_type") or POSTPAID
    if charge == PREPAID and not settings.get("resource_group_id"):
        problems.append(spec.problem("backends.tione.resource_group_id", "charge_type PREPAID runs in a resource "
                                     "group: set resource_group_id (DescribeBillingResourceGroups lists them)"))
    if settings.get("image_type") == "TCR" and not settings.get("registry_id"):
        problems.append(spec.problem("backends.tione.registry_id", "a TCR image needs its TCR instance: set "
                                     "registry_id: tcr-..."))
    if not spec.image:
        problems.append(spec.problem("image", "TI-ONE runs a container image, e.g. image: "
                                     "ccr.ccs.tencentyun.com/my-namespace/pytorch:2.3-cuda12.1"))
    if spec.spot:
        problems.append(spec.problem("spot", "the tione backend does not run spot jobs; remove spot: true"))
    if spec.outputs:
        problems.append(spec.problem("outputs", "the tione backend does not copy outputs yet; write them under "
                                     "the mounted COS path (LAUNCH_BUNDLE's parent) and remove outputs"))
    if spec.retries:
        problems.append(spec.problem("retries", "the tione backend does not retry jobs yet; remove retries"))
    if spec.max_runtime:
        problems.append(spec.problem("max_runtime", "TI-ONE's CreateTrainingTask has no run-time limit; "
                                     "remove max_runtime"))
    role = resource_config(settings, spec, problems)
    tags = [{"TagKey": JOB_ID_TAG, "TagValue": job_id}]
    if idempotency_key is not None:
        if not TAG_RE.fullmatch(idempotency_key):
            problems.append(Problem("--idempotency-key", None, "", "it becomes a Tencent Cloud tag value: at "
                                    "most 255 letters, digits, spaces and + - = . _ : / @ ( ) [ ]"))
        tags.append({"TagKey": IDEMPOTENCY_TAG, "TagValue": idempotency_key})
    if problems:
        raise SpecError(problems)

    prefix = str(settings.get("prefix") or "launch").strip("/")
    mount = str(settings.get("mount_path") or DEFAULT_MOUNT)
    where = Placement(f"cos://{bucket}/{prefix}/jobs/{job_id}/", f"{mount}jobs/{job_id}/",
                      f"cos://{bucket}/{prefix}/bundles/", f"{mount}bundles/")
    uploads, files_env = job_files(spec, bundle, where, topology=TOPOLOGY)
    # relative to the container's working directory: each node has its own file system
    environment = {**node_environment(spec, job_id, secrets, output_dir="launch/outputs",
                                      checkpoint_dir=spec.checkpoint_dir or "launch/checkpoints",
                                      workdir="launch/work"),
                   **files_env}
    image: dict[str, Any] = {"ImageType": settings.get("image_type") or "CUSTOM", "ImageUrl": spec.image}
    if settings.get("registry_id"):
        image.update(RegistryId=settings["registry_id"], RegistryRegion=region)
    if settings.get("image_secret"):
        image["ImageSecret"] = {"SecretId": settings["image_secret"]}
    payload: dict[str, Any] = {
        "Name": task_name(job_id),
        "ChargeType": charge,
        "ResourceConfigInfos": [role],
        "ImageInfo": image,
        "StartCmdInfo": {"StartCmd": f"/bin/sh {shlex.quote(where.job_path + 'bootstrap.sh')}"},
        # secrets are marked private: TI-ONE shows their names, never their values
        "Envs": [{"Name": k, "Value": v, **({"IsPrivate": True} if k in secrets else {})}
                 for k, v in environment.items()],
        "DataSource": "COS",
        "DataConfigs": [{"MappingPath": mount, "DataSourceType": "COS", "DataSourceUsage": "USER_DATA",
                         "COSSource": {"Bucket": bucket, "Region": region, "Paths": [f"{prefix}/"]}}],
        "Tags": tags,
    }
    if spec.resources.nodes > 1:
        payload["TrainingMode"] = "DDP"
    if settings.get("project_id"):
        payload["TiProjectId"] = settings["project_id"]
    if charge == PREPAID:
        payload["ResourceGroupId"] = settings["resource_group_id"]
    if settings.get("vpc"):
        payload["VpcId"] = settings["vpc"]
    if settings.get("subnet"):
        payload["SubnetId"] = settings["subnet"]
    return Request(NAME, job_id, "CreateTrainingTask", payload, tuple(uploads))
