"""The `kubernetes` backend's pure half: its settings, the names it gives objects, and the manifests.

Kept apart from backend.py so a dry run builds the exact objects submit creates without importing
the `kubernetes` client: an Indexed Job (one pod per node, `JOB_COMPLETION_INDEX` is the rank), a
headless Service that gives rank 0 a stable DNS name, a ConfigMap with the job's files (bootstrap,
run/setup commands, topology, and at submit the code bundle as binaryData) and a Secret for
`secrets:` read through `envFrom`, so no secret value is ever a literal in the pod spec. The Job is
created suspended; submit then creates the other objects owned by it (they go with it on delete)
and resumes it, unless a Kueue queue admits it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.backend import Request
from launcher.errors import Problem, SpecError
from launcher.node import BUNDLE_VARIABLES, Placement, job_files, master_port, node_environment, upload_text

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

NAME = "kubernetes"
CATALOG_CSV = Path(__file__).with_name("catalog.csv")
OPERATION = "create_suspended_job_then_owned_objects_then_resume"
MANAGED_BY = "app.kubernetes.io/managed-by"
JOB_LABEL = "launch.dev/job"
KEY_LABEL = "launch.dev/idempotency-key"  # a label value (hashed when the key is not one)
JOB_ID_ANNOTATION = "launch.dev/job-id"
KEY_ANNOTATION = "launch.dev/idempotency-key"  # the key itself
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
FILES_DIR = "/launch/files"  # the ConfigMap, read-only
WORK_DIR = "/launch/job"  # an emptyDir: the unpacked code, outputs, checkpoints
BUNDLE_KEY = "bundle.tar.gz"
OVERLAY_KEY = "overlay.tar.gz"
CONFIGMAP_LIMIT = 750 * 1024  # a ConfigMap holds 1 MiB; base64 and the other files need the rest
BUNDLE_URL_ENV = "LAUNCH_BUNDLE_URL"
OVERLAY_URL_ENV = "LAUNCH_BUNDLE_OVERLAY_URL"
# each piece of the bundle (Bundle.pieces order): its ConfigMap key / file name, and its URL's variable
PIECE_KEYS = (BUNDLE_KEY, OVERLAY_KEY)
PIECE_URL_ENVS = (BUNDLE_URL_ENV, OVERLAY_URL_ENV)
PRESIGNED = "<a presigned GET URL of the bundle, made at submit>"
# A bundle in the bucket: the pod fetches each piece with what the image has, then runs bootstrap.sh
# beside this file.
FETCH = r"""fetch() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --retry 5 -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1"
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import sys, urllib.request as u; u.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2"
    else
        echo "[launch] the image has no curl, wget or python3 to fetch the code bundle" >&2
        exit 2
    fi || { echo "[launch] could not fetch the code bundle from the bundle_store" >&2; exit 2; }
}
fetch "$LAUNCH_BUNDLE_URL" "$LAUNCH_BUNDLE"
if [ -n "${LAUNCH_BUNDLE_OVERLAY_URL:-}" ]; then fetch "$LAUNCH_BUNDLE_OVERLAY_URL" "$LAUNCH_BUNDLE_OVERLAY"; fi
unset LAUNCH_BUNDLE_URL LAUNCH_BUNDLE_OVERLAY_URL
exec /bin/sh "$(dirname "$0")/bootstrap.sh"
"""
# the node label each preset selects GPUs by, and the value it gives each accelerator
GPU_LABELS: dict[str, tuple[str, dict[str, str]]] = {
    "nvidia": ("nvidia.com/gpu.product", {  # NVIDIA GPU feature discovery's product names
        "H100": "NVIDIA-H100-80GB-HBM3", "A100-80GB": "NVIDIA-A100-SXM4-80GB", "A100-40GB": "NVIDIA-A100-SXM4-40GB",
        "L40S": "NVIDIA-L40S", "L4": "NVIDIA-L4", "A10G": "NVIDIA-A10G", "A10": "NVIDIA-A10", "T4": "Tesla-T4",
        "V100": "Tesla-V100-SXM2-16GB"}),
    # CoreWeave's node label (catalog.csv's provider_accelerator); H200 as SkyPilot's CoreWeave label formatter
    # selects it. B200 and GH200 have no value here: no public source gives theirs (catalog.csv's notes say so)
    "coreweave": ("gpu.nvidia.com/class", {
        "H100": "H100_NVLINK_80GB", "H200": "H200", "A100-80GB": "A100_NVLINK_80GB", "A100-40GB": "A100_NVLINK",
        "L40S": "L40S"}),
}
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
QUANTITY = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?|m)?$"


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.kubernetes`: which cluster and namespace, and what the pods ask the scheduler for."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    from launcher.spec import Duration as Seconds

    dns_name = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

    class KubernetesSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kubeconfig: str | None = Field(None, description="default: $KUBECONFIG, ~/.kube/config, or in-cluster")
        context: str | None = Field(None, description="a kubeconfig context; default: the current one")
        namespace: str | None = Field(None, pattern=dns_name, max_length=63, examples=["default"],
                                      description="default: the context's namespace, else default")
        service_account: str | None = Field(None, pattern=dns_name, max_length=253, examples=["trainer"])
        node_selector: dict[str, str] = Field(default_factory=dict)
        tolerations: list[dict[str, Any]] = Field(default_factory=list,
                                                  description="as in a pod spec: key, operator, value, effect")
        priority_class: str | None = Field(None, pattern=dns_name, max_length=253, examples=["high-priority"])
        queue: str | None = Field(None, description="a Kueue LocalQueue: the Job waits suspended until admitted")
        image_pull_secrets: list[str] = Field(default_factory=list)
        gpu_label: Literal["none", "nvidia", "coreweave"] | None = Field(
            None, description="select GPU nodes by nvidia.com/gpu.product (GPU feature discovery) or "
                              "gpu.nvidia.com/class (CoreWeave); none: only request nvidia.com/gpu; "
                              "default: none (coreweave on the coreweave backend)")
        gpu_class: str | None = Field(None, description="the gpu_label's value, overriding the preset's")
        shm_size: str | None = Field(None, pattern=QUANTITY, examples=["64Gi"],
                                     description="/dev/shm size limit; default: no limit (node memory)")
        rdma: bool = Field(False, description="request rdma/ib (InfiniBand) for each pod")
        bundle_store: str | None = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$",
                                         examples=["s3://team-bucket/launch"],
                                         description="an S3-compatible bucket for code bundles over 750 KiB; each "
                                                     "pod fetches its bundle by a presigned URL")
        endpoint_url: str | None = Field(None, pattern=r"^https?://", examples=["https://minio.example.com:9000"],
                                         description="the bundle_store's S3 endpoint "
                                         "(CoreWeave AI Object Storage, MinIO); default: AWS")
        bundle_url_ttl: Seconds = Field(7 * 86400, description="how long a pod (or a retry) can fetch the bundle")
        pending_timeout: Seconds = Field(600, description="a job whose pods cannot be scheduled or pull their "
                                         "image for this long is FAILED")

    return KubernetesSettings


def kube_name(job_id: str, nodes: int) -> str:
    """The Job's (and Service's) name: the job id when it is a DNS-1035 label short enough that every
    pod's hostname `<name>-<index>` is one too; else a cleaned, cut form with a hash of the id."""
    limit = 63 - 1 - len(str(max(nodes - 1, 0)))
    clean = re.sub(r"[^a-z0-9-]+", "-", job_id.lower()).strip("-")
    if not clean[:1].isalpha():
        clean = "j" + clean
    if clean == job_id and len(clean) <= limit:
        return clean
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:8]
    return f"{clean[:limit - 9].rstrip('-')}-{digest}"


def label_value(text: str) -> str:
    """`text` as a label value (63 characters of [A-Za-z0-9._-]), or its hash when it is not one."""
    if LABEL_VALUE.fullmatch(text) and len(text) <= 63:
        return text
    return "h-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def topology(name: str, nodes: int) -> str:
    """How a pod learns its place: the Job controller sets JOB_COMPLETION_INDEX; the pod of index i answers
    at `<job>-i.<service>` (its hostname in the headless Service's subdomain), rank 0 being the master."""
    addresses = ",".join(f"{name}-{index}.{name}" for index in range(nodes))
    return (f'LAUNCH_NODE_RANK=${{JOB_COMPLETION_INDEX:-0}}\nLAUNCH_MASTER_ADDR={name}-0.{name}\n'
            f'LAUNCH_NODE_ADDRS={addresses}\n')


def _quantity_gb(value: float) -> str:
    return f"{int(value)}Gi" if float(value).is_integer() else f"{int(value * 1024)}Mi"


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None,
           namespace: str = "default", backend: str = NAME) -> Request:
    """The objects submit creates, in creation order, in the payload's `manifests`."""
    problems: list[Problem] = []
    if not spec.image:
        problems.append(spec.problem("image", "a Kubernetes pod runs a container image: set image: "
                                     "e.g. pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"))
    store = settings.get("bundle_store")
    if bundle is not None and bundle.total_size > CONFIGMAP_LIMIT and not store:
        problems.append(spec.problem("code", f"the code bundle is {bundle.total_size // 1024} KiB; a ConfigMap carries "
                                     f"up to {CONFIGMAP_LIMIT // 1024} KiB: set backends.{backend}.bundle_store: "
                                     "s3://bucket (and endpoint_url), or leave data and checkpoints out of code: "
                                     "(.launchignore)"))
    selector = dict(settings.get("node_selector") or {})
    accel = spec.resources.accelerators
    preset = settings.get("gpu_label") or "none"
    if accel.is_gpu and preset != "none":
        label, values = GPU_LABELS[preset]
        value = settings.get("gpu_class") or values.get(accel.type)
        if value is None:
            problems.append(spec.problem("resources.accelerators", f"no {preset} GPU class known for {accel.type}: "
                                         f"set backends.{backend}.gpu_class to the node label {label}'s value"))
        else:
            selector.setdefault(label, value)
    if problems:
        raise SpecError(problems)

    name = kube_name(job_id, spec.resources.nodes)
    nodes = spec.resources.nodes
    files_name, secret_name = f"{name}-files", f"{name}-secrets"
    where = Placement(f"configmap:{files_name}/", f"{FILES_DIR}/", f"configmap:{files_name}/", f"{FILES_DIR}/")
    uploads, files_env = job_files(spec, bundle, where, topology=topology(name, spec.resources.nodes))
    data, kept = {}, []
    pieces = {piece.path: n for n, piece in enumerate(bundle.pieces)} if bundle is not None else {}
    for upload in uploads:
        key = upload.destination.rsplit("/", 1)[-1]
        if upload.content is not None:
            data[key] = upload.content
        elif upload.source in pieces and bundle is not None:
            n = pieces[upload.source]
            if bundle.total_size > CONFIGMAP_LIMIT:
                # the bucket, content-addressed; each pod fetches it by a presigned URL made at submit
                kept.append(type(upload)(upload.source, f"{store.rstrip('/')}/bundles/{bundle.pieces[n].name}"))
                files_env[BUNDLE_VARIABLES[n]] = f"{WORK_DIR}/{PIECE_KEYS[n]}"
                files_env[PIECE_URL_ENVS[n]] = PRESIGNED
                data["fetch.sh"] = FETCH
            else:  # binaryData, filled at submit
                kept.append(type(upload)(upload.source, f"configmap:{files_name}/{PIECE_KEYS[n]}"))
                files_env[BUNDLE_VARIABLES[n]] = f"{FILES_DIR}/{PIECE_KEYS[n]}"
        else:  # bootstrap.sh, package data: its text is part of the manifest
            data[key] = upload_text(upload)
    environment = {**node_environment(spec, job_id, {}, output_dir=f"{WORK_DIR}/outputs",
                                      checkpoint_dir=spec.checkpoint_dir or f"{WORK_DIR}/checkpoints",
                                      workdir=f"{WORK_DIR}/code", port=master_port(job_id)),
                   **files_env}

    labels = {MANAGED_BY: "launch", JOB_LABEL: name}
    annotations = {JOB_ID_ANNOTATION: job_id}
    if idempotency_key:
        labels[KEY_LABEL] = label_value(idempotency_key)
        annotations[KEY_ANNOTATION] = idempotency_key
    job_labels = dict(labels)
    if settings.get("queue"):
        job_labels[QUEUE_LABEL] = settings["queue"]
    meta = {"namespace": namespace, "labels": labels}

    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if accel.is_gpu:
        limits["nvidia.com/gpu"] = str(accel.count)
    if settings.get("rdma"):
        limits["rdma/ib"] = "1"
    if spec.resources.cpus:
        cpus = float(spec.resources.cpus)
        requests["cpu"] = str(int(cpus)) if cpus.is_integer() else f"{int(cpus * 1000)}m"
    if spec.resources.memory_gb:
        requests["memory"] = _quantity_gb(spec.resources.memory_gb)
    if spec.resources.disk_gb:
        requests["ephemeral-storage"] = f"{spec.resources.disk_gb}Gi"
    container: dict[str, Any] = {
        "name": "job", "image": spec.image,
        "command": ["/bin/sh", f"{FILES_DIR}/{'fetch.sh' if 'fetch.sh' in data else 'bootstrap.sh'}"],
        "env": [{"name": k, "value": v} for k, v in environment.items()],
        "volumeMounts": [{"name": "files", "mountPath": FILES_DIR, "readOnly": True},
                         {"name": "work", "mountPath": WORK_DIR},
                         {"name": "shm", "mountPath": "/dev/shm"}],
    }
    if secrets:
        container["envFrom"] = [{"secretRef": {"name": secret_name}}]
    if limits or requests:
        container["resources"] = {k: v for k, v in (("limits", limits), ("requests", requests)) if v}
    shm: dict[str, Any] = {"medium": "Memory"}
    if settings.get("shm_size"):
        shm["sizeLimit"] = settings["shm_size"]
    pod: dict[str, Any] = {
        "restartPolicy": "Never", "subdomain": name, "containers": [container],
        "volumes": [{"name": "files", "configMap": {"name": files_name}},
                    {"name": "work", "emptyDir": {}}, {"name": "shm", "emptyDir": shm}],
    }
    for key, field in (("service_account", "serviceAccountName"), ("priority_class", "priorityClassName")):
        if settings.get(key):
            pod[field] = settings[key]
    if selector:
        pod["nodeSelector"] = selector
    if settings.get("tolerations"):
        pod["tolerations"] = [dict(t) for t in settings["tolerations"]]
    if settings.get("image_pull_secrets"):
        pod["imagePullSecrets"] = [{"name": s} for s in settings["image_pull_secrets"]]
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed", "completions": nodes, "parallelism": nodes,
        "backoffLimit": spec.retries, "suspend": True,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
    }
    if spec.max_runtime:
        job_spec["activeDeadlineSeconds"] = int(spec.max_runtime)
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, **meta, "labels": job_labels, "annotations": annotations}, "spec": job_spec}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, **meta},
               "spec": {"clusterIP": "None", "selector": {JOB_LABEL: name}, "publishNotReadyAddresses": True}}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": files_name, **meta},
                 "data": dict(sorted(data.items()))}
    manifests = [job, service, configmap]
    if secrets:
        manifests.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name, **meta},
                          "type": "Opaque", "stringData": dict(secrets)})
    payload = {"context": settings.get("context"), "namespace": namespace, "name": name,
               "resume": not settings.get("queue"), "manifests": manifests}
    return Request(backend, job_id, OPERATION, payload, tuple(kept))
