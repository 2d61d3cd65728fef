"""The `aihc` backend's pure half: its settings and the exact v2 CreateJob request.

Kept apart from the SDK-facing modules so a dry run never imports bce-python-sdk. The request is built
here, field by field, from the published API definition (baidubce/bce-openapi-meta, schema/aihc/
CreateJob.json): POST /?action=CreateJob&resourcePoolId=..&queueID=.. with `X-API-Version: v2` and a JSON
body. Not through the SDK's JobClient.CreateJob, which never sends the body's required `queue` and sends
`enableBccl`/`faultTolerance` as explicit nulls. The job's files (bootstrap, run command, code bundle)
go to a BOS bucket, which every pod mounts through a `bos` datasource.
"""

from __future__ import annotations

import functools
import hashlib
import math
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

NAME = "aihc"
ACTION = "CreateJob"
API_VERSION = "v2"
JOB_TYPE = "PyTorchJob"
# labels (Kubernetes labels on the PyTorchJob): which launch job an AIHC job is, and a digest of the
# idempotency key it was submitted with (a key is free text; a label value is not)
JOB_ID_LABEL = "launch-job-id"
IDEMPOTENCY_LABEL = "launch-idempotency-key"
DEFAULT_MOUNT = "/mnt/launch/"
REGIONS = ("bj", "gz", "su", "bd", "fwh", "yq")  # schema/products.json's aihc endpoints
# How a node learns its place (sourced by bootstrap.sh through LAUNCH_TOPOLOGY). AIHC runs a PyTorchJob
# with Kubeflow's PyTorch operator: every pod gets MASTER_ADDR/MASTER_PORT (the master pod's service) and
# WORLD_SIZE/RANK counting pods, not processes.
TOPOLOGY = r"""[ -n "${RANK:-}" ] && LAUNCH_NODE_RANK=$RANK
[ -n "${WORLD_SIZE:-}" ] && LAUNCH_NUM_NODES=$WORLD_SIZE
[ -n "${MASTER_ADDR:-}" ] && LAUNCH_MASTER_ADDR=$MASTER_ADDR
[ -n "${MASTER_PORT:-}" ] && LAUNCH_MASTER_PORT=$MASTER_PORT
"""

LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)")
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{2,61}[a-z0-9]")
SECRET_SETTINGS = ("access_key_id", "secret_access_key")


def endpoint_host(settings: Mapping[str, Any]) -> str:
    return str(settings.get("endpoint") or f"aihc.{settings.get('region') or 'bj'}.baidubce.com")


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.aihc`: the resource pool and queue the job runs in, the BOS bucket for its files, what it
    runs on. Credentials come from BCE_ACCESS_KEY_ID / BCE_SECRET_ACCESS_KEY or config.toml, never a spec."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class AihcSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        region: Literal[REGIONS] = Field("bj", description="AIHC's region: aihc.<region>.baidubce.com")  # type: ignore[valid-type]
        endpoint: str | None = Field(None, pattern=r"^[A-Za-z0-9.-]+(:\d+)?$", examples=["aihc.bj.baidubce.com"],
                                     description="the API host; default aihc.<region>.baidubce.com")
        protocol: Literal["https", "http"] = "https"
        resource_pool_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$",
                                             examples=["cce-1uji3ib5", "aihc-serverless"],
                                             description="a self-managed pool's id, or aihc-serverless")
        queue: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", examples=["default"],
                                  description="the queue's name (self-managed pool) or id (aihc-serverless)")
        bos_bucket: str | None = Field(None, description="BOS bucket for the job's files and code bundles")
        prefix: str = Field("launch", pattern=r"^[A-Za-z0-9._/-]+$", examples=["launch", "team/launch"])
        mount_path: str = Field(DEFAULT_MOUNT, pattern=r"^/[A-Za-z0-9._/-]*/$", examples=[DEFAULT_MOUNT],
                                description="where every pod mounts bos://<bos_bucket>/<prefix>/")
        bos_endpoint: str | None = Field(None, pattern=r"^https?://", examples=["https://s3.bj.bcebos.com"],
                                         description="BOS's S3-compatible endpoint; default "
                                         "https://s3.<region>.bcebos.com")
        resource_name: str | None = Field(None, pattern=r"^[a-z0-9.-]+/[a-z0-9_]+$",
                                          examples=["baidu.com/a800_80g_cgpu"],
                                          description="pins the GPU resource name instead of the catalog")
        enable_rdma: bool = False
        priority: Literal["high", "normal", "low"] | None = None
        access_key_id: str | None = Field(None, description="config.toml only; else BCE_ACCESS_KEY_ID")
        secret_access_key: str | None = Field(None, description="config.toml only; else BCE_SECRET_ACCESS_KEY")

    return AihcSettings


def idempotency_label(key: str) -> str:
    """The label value for an idempotency key: a digest, as a key may hold what a label may not."""
    return "k" + hashlib.sha256(key.encode()).hexdigest()[:40]


def job_name(job_id: str) -> str:
    """AIHC's `name` for the job (a Kubernetes object name: lowercase letters, digits and -)."""
    return re.sub(r"[^a-z0-9-]+", "-", job_id.lower()).strip("-")[:63].rstrip("-") or "launch-job"


def choose_resource(settings: Mapping[str, Any], spec: JobSpec, problems: list[Problem]) -> str | None:
    """The pinned resource name, else the catalog's for the accelerator; None for a CPU-only job."""
    accel = spec.resources.accelerators
    if settings.get("resource_name"):
        return str(settings["resource_name"])
    if not accel.is_gpu:
        return None
    try:
        return catalog.choose(NAME, accel).instance_type
    except catalog.CatalogError as exc:
        problems.append(spec.problem("resources.accelerators", f"{exc.message}; {exc.hint}"))
        return None


def _credentials_in_spec(spec: JobSpec) -> list[str]:
    """The credential settings that came from the spec (or --set), not config.toml: render sees the two
    merged, so a value config.toml does not hold is the spec's."""
    from launcher import config

    section, configured = spec.backends.get(NAME) or {}, config.backend_settings(NAME)
    return [key for key in SECRET_SETTINGS if section.get(key) and section.get(key) != configured.get(key)]


def _settings_problems(settings: Mapping[str, Any], spec: JobSpec, problems: list[Problem]) -> None:
    for key in _credentials_in_spec(spec):
        problems.append(spec.problem(f"backends.aihc.{key}", "credentials never go in a spec (it is shared and "
                                     "stored): export BCE_ACCESS_KEY_ID and BCE_SECRET_ACCESS_KEY, or set "
                                     f"{key} in [backends.aihc] of config.toml"))
    if not settings.get("resource_pool_id"):
        problems.append(spec.problem("backends.aihc.resource_pool_id", "AIHC runs jobs in a resource pool: set "
                                     "resource_pool_id: <cce-... from the AIHC console, or aihc-serverless>"))
    if not settings.get("queue"):
        problems.append(spec.problem("backends.aihc.queue", "AIHC queues every job: set queue: <the queue's name "
                                     "(self-managed pool) or id (aihc-serverless)>"))
    bucket = settings.get("bos_bucket")
    if not bucket:
        problems.append(spec.problem("backends.aihc.bos_bucket", "AIHC pods read the job's files from BOS: set "
                                     "bos_bucket: <a BOS bucket in the pool's region>"))
    elif not BUCKET_RE.fullmatch(bucket):
        problems.append(spec.problem("backends.aihc.bos_bucket", f"{bucket!r} is not a BOS bucket name "
                                     "(4-63 lowercase letters, digits and -)"))


def _spec_problems(spec: JobSpec, job_id: str, problems: list[Problem]) -> None:
    if not spec.image:
        problems.append(spec.problem("image", "AIHC needs a container image, e.g. image: registry.baidubce.com/"
                                     "aihcp-public/pytorch:2.3.0-cu121"))
    if spec.spot:
        problems.append(spec.problem("spot", "AIHC runs on your resource pool, which has no spot capacity; "
                                     "remove spot: true"))
    if spec.outputs:
        problems.append(spec.problem("outputs", "the aihc backend does not copy outputs yet; write them under "
                                     "the BOS mount (LAUNCH_BOS_MOUNT) and remove outputs"))
    if spec.retries:
        problems.append(spec.problem("retries", "the aihc backend does not retry jobs yet; remove retries"))
    if spec.max_runtime:
        problems.append(spec.problem("max_runtime", "AIHC's CreateJob has no run-time limit; remove max_runtime"))
    if not LABEL_VALUE.fullmatch(job_id):
        problems.append(spec.problem("name", f"the job id {job_id!r} cannot be an AIHC label value (at most 63 "
                                     "letters, digits, '.', '_' and '-'): shorten the spec's name"))


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
    """The CreateJob request: one PyTorchJob of `nodes` replicas (the master pod is rank 0), every problem
    at once. The payload is the whole request: its query, the version header and the body."""
    problems: list[Problem] = []
    _settings_problems(settings, spec, problems)
    _spec_problems(spec, job_id, problems)
    resource = choose_resource(settings, spec, problems)
    if problems:
        raise SpecError(problems)

    bucket = str(settings["bos_bucket"])
    prefix = str(settings.get("prefix") or "launch").strip("/")
    mount = str(settings.get("mount_path") or DEFAULT_MOUNT)
    where = Placement(f"bos://{bucket}/{prefix}/jobs/{job_id}/", f"{mount}jobs/{job_id}/",
                      f"bos://{bucket}/{prefix}/bundles/", f"{mount}bundles/")
    uploads, files_env = job_files(spec, bundle, where, topology=TOPOLOGY)
    environment = {**node_environment(spec, job_id, secrets, output_dir="launch/outputs",
                                      checkpoint_dir=spec.checkpoint_dir or "launch/checkpoints",
                                      workdir="launch/work"),
                   **files_env, "LAUNCH_BOS_MOUNT": mount}
    resources: list[dict[str, Any]] = []
    if resource:
        resources.append({"name": resource, "quantity": spec.resources.accelerators.count})
    if spec.resources.cpus:
        resources.append({"name": "cpu", "quantity": math.ceil(spec.resources.cpus)})
    if spec.resources.memory_gb:
        resources.append({"name": "memory", "quantity": math.ceil(spec.resources.memory_gb)})
    job_spec: dict[str, Any] = {"image": spec.image, "replicas": spec.resources.nodes,
                                "envs": [{"name": k, "value": v} for k, v in environment.items()],
                                "enableRDMA": bool(settings.get("enable_rdma"))}
    if resources:
        job_spec["resources"] = resources
    labels = [{"key": JOB_ID_LABEL, "value": job_id}]
    if idempotency_key is not None:
        labels.append({"key": IDEMPOTENCY_LABEL, "value": idempotency_label(idempotency_key)})
    body: dict[str, Any] = {
        "name": job_name(job_id),
        "queue": settings["queue"],
        "jobType": JOB_TYPE,
        "jobSpec": job_spec,
        "command": f"/bin/sh {shlex.quote(where.job_path + 'bootstrap.sh')}",
        "labels": labels,
        "datasources": [{"type": "bos", "name": bucket, "sourcePath": f"bos://{bucket}/{prefix}/",
                         "mountPath": mount}],
    }
    if settings.get("priority"):
        body["priority"] = settings["priority"]
    query = {"action": ACTION, "resourcePoolId": settings["resource_pool_id"], "queueID": settings["queue"]}
    payload = {"method": "POST", "path": "/", "query": query, "headers": {"X-API-Version": API_VERSION},
               "body": body}
    return Request(NAME, job_id, ACTION, payload, tuple(uploads))
