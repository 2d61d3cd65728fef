"""The `vertex` backend's pure half: the spec as the CustomJob body Vertex AI is sent, as a plain dict.

Kept apart from the SDK-facing modules so a dry run never imports google-cloud-aiplatform: the
machine and accelerator come from this backend's catalog (catalog.csv) or the pinned machine_type,
checked against the pairs Vertex accepts, and every problem with the spec is reported at once.
Submit (backend.py) parses this body into the official proto, so a wrong field name fails there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.vertex.settings import project_from_environment, region_from_environment
from launcher import catalog
from launcher.backend import Request
from launcher.errors import Problem, SpecError
from launcher.node import Placement, job_files, node_environment

if TYPE_CHECKING:
    from launcher.accelerators import Accelerator
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

# this backend's instance types and list prices; the core merges them into `launch catalog` and `plan`
CATALOG_CSV = Path(__file__).with_name("catalog.csv")
CPU_MACHINE_TYPE = "n1-standard-4"  # a job that asks for no GPU; `launch plan` names it too
# underscores: label keys may hold "-", but Vertex's list-filter grammar is only documented for "_"
JOB_ID_LABEL = "launch_job_id"
IDEMPOTENCY_LABEL = "launch_idempotency_key"
DEFAULT_RUNTIME_S = 7 * 24 * 3600  # Vertex's own default timeout
DEFAULT_DISK_GB = 100
# How a node learns its place (sourced by bootstrap.sh through LAUNCH_TOPOLOGY). Vertex sets
# CLUSTER_SPEC: {"cluster":{"workerpool0":["host:port"],"workerpool1":[...]},"task":{"type":
# "workerpool1","index":0},...}. Pool 0 is the chief (rank 0); pool 1's replica i is rank 1+i;
# the master is pool 0's host; the node addresses are pool 0's and pool 1's hosts in that order.
TOPOLOGY = r"""if [ -n "${CLUSTER_SPEC:-}" ]; then
    topo_flat=$(printf '%s' "$CLUSTER_SPEC" | tr -d ' \n\t\r')
    topo_task=${topo_flat#*\"task\":}
    topo_type=$(printf '%s' "$topo_task" | sed -n 's/^{[^}]*"type":"\([^"]*\)".*/\1/p')
    topo_index=$(printf '%s' "$topo_task" | sed -n 's/^{[^}]*"index":\([0-9]*\).*/\1/p')
    topo_master=$(printf '%s' "$topo_flat" | sed -n 's/.*"workerpool0":\["\([^":]*\).*/\1/p')
    [ -n "$topo_master" ] && LAUNCH_MASTER_ADDR=$topo_master
    topo_pool0=$(printf '%s' "$topo_flat" | sed -n 's/.*"workerpool0":\[\([^]]*\)\].*/\1/p')
    topo_pool1=$(printf '%s' "$topo_flat" | sed -n 's/.*"workerpool1":\[\([^]]*\)\].*/\1/p')
    LAUNCH_NODE_ADDRS=$(printf '%s' "$topo_pool0${topo_pool1:+,$topo_pool1}" | tr -d '"' | tr ',' '\n' \
        | sed 's/:[0-9]*$//' | paste -sd, -)
    case "$topo_type" in
        workerpool0) LAUNCH_NODE_RANK=0 ;;
        workerpool1) LAUNCH_NODE_RANK=$((1 + ${topo_index:-0})) ;;
    esac
fi
"""
# machine families and the accelerator each may carry (Vertex rejects other pairs)
FAMILY_ACCELERATORS = {
    "a3-highgpu": {"NVIDIA_H100_80GB"},
    "a3-megagpu": {"NVIDIA_H100_MEGA_80GB"},
    "a2-ultragpu": {"NVIDIA_A100_80GB"},
    "a2-highgpu": {"NVIDIA_TESLA_A100"},
    "a2-megagpu": {"NVIDIA_TESLA_A100"},
    "g2-standard": {"NVIDIA_L4"},
    "n1-standard": {"NVIDIA_TESLA_T4", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_P4"},
    "n1-highmem": {"NVIDIA_TESLA_T4", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_P4"},
}
# TPU VM machine types -> (the TPU generation they carry, chips per host). A slice that fits one
# host takes the machine with exactly its chips; a bigger one takes 4-chip hosts, which Vertex starts
# from the tpu_topology (one worker pool of one replica: Vertex's TPU rule, configure-compute#tpu).
TPU_MACHINES = {
    "ct5lp-hightpu-1t": ("TPU-v5e", 1), "ct5lp-hightpu-4t": ("TPU-v5e", 4), "ct5lp-hightpu-8t": ("TPU-v5e", 8),
    "ct6e-standard-1t": ("TPU-v6e", 1), "ct6e-standard-4t": ("TPU-v6e", 4), "ct6e-standard-8t": ("TPU-v6e", 8),
    "ct5p-hightpu-4t": ("TPU-v5p", 4), "ct4p-hightpu-4t": ("TPU-v4", 4),
}
# TPU v2 and v3 are no TPU VM machine: machine_type cloud-tpu with accelerator_type and the slice's
# TensorCores as accelerator_count (8 for one device; every Pod slice size is a multiple of 32)
LEGACY_TPU_MACHINE = "cloud-tpu"
LEGACY_TPU_ACCELERATORS = {"TPU-v2": "TPU_V2", "TPU-v3": "TPU_V3"}
RESERVATION_TYPES = {"any": "ANY_RESERVATION", "none": "NO_RESERVATION"}
RESERVATION_KEY = "compute.googleapis.com/reservation-name"
G2_L4_COUNTS = {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1,
                "g2-standard-32": 1, "g2-standard-24": 2, "g2-standard-48": 4, "g2-standard-96": 8}
A3_COUNTS = {"a3-highgpu-1g": 1, "a3-highgpu-2g": 2, "a3-highgpu-4g": 4, "a3-highgpu-8g": 8}


def pair_problem(machine_type: str, accelerator_type: str, count: int) -> str | None:
    """Why Vertex would refuse this machine/accelerator pair, or None if it fits."""
    if machine_type in TPU_MACHINES or machine_type == LEGACY_TPU_MACHINE:
        generation = TPU_MACHINES.get(machine_type, ("TPU-v3", 0))[0]
        return f"{machine_type} is a TPU machine and takes no GPU; ask for its TPU slice (e.g. {generation}:8)"
    family = machine_type.rsplit("-", 1)[0]
    allowed = FAMILY_ACCELERATORS.get(family)
    if allowed is not None and accelerator_type and accelerator_type not in allowed:
        return f"{machine_type} takes {' or '.join(sorted(allowed))}, not {accelerator_type}"
    fixed = G2_L4_COUNTS.get(machine_type) or A3_COUNTS.get(machine_type)
    if family == "a3-highgpu" and machine_type not in A3_COUNTS:
        return "a3-highgpu comes only as a3-highgpu-1g, -2g, -4g and -8g"
    if fixed is not None and count != fixed:
        return f"{machine_type} has exactly {fixed} GPU(s), not {count}"
    match = re.fullmatch(r"a2-(?:ultra|high|mega)gpu-(\d+)g", machine_type)
    if match and int(match.group(1)) != count:
        return f"{machine_type} has exactly {match.group(1)} GPU(s), not {count}"
    return None


def tpu_problem(machine_type: str, accel: Accelerator) -> str | None:
    """Why Vertex would refuse this machine for this TPU slice, or None if it fits."""
    if machine_type == LEGACY_TPU_MACHINE:
        if accel.type not in LEGACY_TPU_ACCELERATORS:
            return f"{LEGACY_TPU_MACHINE} carries TPU v2 and v3 only; {accel.type} runs on {_tpu_machines(accel.type)}"
        return None
    carried = TPU_MACHINES.get(machine_type)
    if carried is None:
        return (f"{machine_type} has no TPU; {accel.type} runs on {_tpu_machines(accel.type)}"
                if accel.type not in LEGACY_TPU_ACCELERATORS else f"{accel.type} runs on {LEGACY_TPU_MACHINE}")
    generation, per_host = carried
    if generation != accel.type:
        return (f"{machine_type} carries {generation}, not {accel.type}; "
                f"{accel.type} runs on {_tpu_machines(accel.type)}")
    if accel.chips < per_host:
        return f"{machine_type} has {per_host} chips, more than {accel} ({accel.cloud_name}) has"
    if accel.chips > per_host and per_host != 4:
        return (f"{machine_type} runs single-host slices of {per_host} chip(s); {accel} ({accel.chips} chips) "
                "spans several hosts, which are 4-chip machines")
    return None


def _tpu_machines(generation: str) -> str:
    if generation in LEGACY_TPU_ACCELERATORS:
        return LEGACY_TPU_MACHINE
    return " or ".join(m for m, (g, _) in TPU_MACHINES.items() if g == generation) or "no Vertex machine"


def reservation_affinity(reservation: str) -> dict[str, Any]:
    """`backends.vertex.reservation` as the machine's reservation_affinity: any, none, or a
    reservation's full name (projects/P/zones/Z/reservations/R) to use that one only."""
    if reservation in RESERVATION_TYPES:
        return {"reservation_affinity_type": RESERVATION_TYPES[reservation]}
    return {"reservation_affinity_type": "SPECIFIC_RESERVATION", "key": RESERVATION_KEY, "values": [reservation]}


def label_value(text: str) -> str:
    """A label value Vertex accepts (lowercase, digits, _ and -, <= 63 chars); a value that had
    to change keeps a short hash so two different inputs never collide."""
    clean = re.sub(r"[^a-z0-9_-]", "-", text.lower())
    if clean == text and len(clean) <= 63:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{clean[:54]}-{digest}"


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
    """The CustomJob create request: pool 0 the chief, pool 1 the other nodes, uploads for the bucket."""
    problems: list[Problem] = []
    project = settings.get("project") or project_from_environment()
    region = settings.get("region") or region_from_environment()
    if not project:
        problems.append(spec.problem("backends.vertex.project", "Vertex needs a project: set project: "
                                     "my-project here or in config.toml, or `gcloud config set project`"))
    if not region:
        problems.append(spec.problem("backends.vertex.region", "Vertex needs a region, e.g. region: us-central1"))
    staging = (settings.get("staging_bucket") or "").removeprefix("gs://").strip("/")
    if not staging:
        problems.append(spec.problem("backends.vertex.staging_bucket",
                                     "Vertex reads the code from a staging bucket: set staging_bucket: gs://..."))
    if not spec.image:
        problems.append(spec.problem("image", "Vertex needs a container image, e.g. "
                                     "us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-3.py310:latest"))
    if spec.outputs and not spec.outputs.startswith("gs://"):
        problems.append(spec.problem("outputs", "Vertex writes outputs to Cloud Storage: use gs://bucket/path/"))
    machine = machine_spec(settings, spec, problems)
    if settings.get("reservation") and machine:
        machine["reservation_affinity"] = reservation_affinity(settings["reservation"])
    if problems:
        raise SpecError(problems)

    prefix = str(settings.get("prefix") or "launch").strip("/")
    fuse = f"/gcs/{staging}/"
    job_key = f"{prefix}/jobs/{job_id}/"
    where = Placement(f"gs://{staging}/{job_key}", fuse + job_key,
                      f"gs://{staging}/{prefix}/bundles/", f"{fuse}{prefix}/bundles/")
    uploads, files_env = job_files(spec, bundle, where, topology=TOPOLOGY)
    environment = {**node_environment(spec, job_id, secrets, output_dir="/tmp/launch/outputs",
                                      checkpoint_dir=spec.checkpoint_dir or "/tmp/launch/checkpoints",
                                      workdir="/tmp/launch/work"),
                   **files_env}
    if spec.resources.accelerators.is_tpu:  # no GPUs: torchrun starts one process per host, not per chip
        environment["LAUNCH_GPUS_PER_NODE"] = "0"

    pool = {
        "machine_spec": machine,
        "replica_count": 1,
        "disk_spec": {"boot_disk_type": settings.get("boot_disk_type") or "pd-ssd",
                      "boot_disk_size_gb": spec.resources.disk_gb or DEFAULT_DISK_GB},
        "container_spec": {
            "image_uri": spec.image,
            "command": ["/bin/sh", fuse + job_key + "bootstrap.sh"],
            "env": [{"name": k, "value": v} for k, v in environment.items()],
        },
    }
    pools = [pool]
    if spec.resources.nodes > 1:  # pool 0 is the chief; pool 1 the other nodes, same machines
        pools.append({**pool, "replica_count": spec.resources.nodes - 1})
    scheduling: dict[str, Any] = {"timeout": f"{spec.max_runtime or DEFAULT_RUNTIME_S}s"}
    if spec.spot:
        scheduling["strategy"] = "SPOT"
    if spec.retries:
        scheduling["restart_job_on_worker_restart"] = True
    job_spec: dict[str, Any] = {"worker_pool_specs": pools, "scheduling": scheduling}
    if spec.outputs:
        job_spec["base_output_directory"] = {"output_uri_prefix": spec.outputs}
    if settings.get("service_account"):
        job_spec["service_account"] = settings["service_account"]
    if settings.get("network"):
        job_spec["network"] = settings["network"]
    labels = {JOB_ID_LABEL: label_value(job_id)}
    if idempotency_key:
        labels[IDEMPOTENCY_LABEL] = label_value(idempotency_key)
    body = {"display_name": job_id, "labels": labels, "job_spec": job_spec}
    return Request("vertex", job_id, f"projects/{project}/locations/{region}/customJobs", body, tuple(uploads))


def machine_spec(settings: Mapping[str, Any], spec: JobSpec, problems: list[Problem]) -> dict[str, Any]:
    """The pool's machine_spec: the pinned machine_type or the catalog's pick, with the accelerator;
    a pair Vertex would refuse becomes a problem on the field that chose it."""
    accel = spec.resources.accelerators
    explicit = settings.get("machine_type")
    if not accel.is_gpu:
        return {"machine_type": explicit or CPU_MACHINE_TYPE}
    if accel.is_tpu:
        return tpu_machine_spec(explicit, spec, problems)
    if explicit:
        offers = [o for o in catalog.backend_offers("vertex") if o.accelerator == accel.type]
        accelerator_type = offers[0].provider_accelerator if offers else ""
        machine = {"machine_type": explicit, "accelerator_type": accelerator_type,
                   "accelerator_count": accel.count}
    else:
        try:  # the machine `launch plan` prices: the first meeting the cpus/memory minimums
            offer = catalog.choose("vertex", accel, cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb)
        except catalog.CatalogError as exc:
            field = "resources.accelerators" if not catalog.find("vertex", accel) else "resources"
            problems.append(spec.problem(field, f"{exc.message}; {exc.hint}"))
            return {}
        machine = {"machine_type": offer.instance_type, "accelerator_type": offer.provider_accelerator,
                   "accelerator_count": accel.count}
    why = pair_problem(machine["machine_type"], machine["accelerator_type"], accel.count)
    if why:
        problems.append(spec.problem("backends.vertex.machine_type" if explicit else "resources.accelerators",
                                     why))
    return machine


def tpu_machine_spec(explicit: str | None, spec: JobSpec, problems: list[Problem]) -> dict[str, Any]:
    """A TPU slice's machine_spec: a TPU VM machine type with the slice's tpu_topology (Vertex starts
    every host of a multi-host slice from it), or cloud-tpu with a TensorCore count for v2 and v3."""
    accel = spec.resources.accelerators
    if spec.resources.nodes > 1:
        problems.append(spec.problem("resources.nodes", f"a TPU slice is one node on Vertex (one worker pool of one "
                                     f"replica; Vertex starts its {accel.hosts} host(s) itself): set resources.nodes: "
                                     "1 and ask for a bigger slice for more chips"))
    if explicit:
        machine_type = str(explicit)
    else:
        try:
            machine_type = catalog.choose("vertex", accel, cpus=spec.resources.cpus,
                                          memory_gb=spec.resources.memory_gb).instance_type
        except catalog.CatalogError as exc:
            field = "resources.accelerators" if not catalog.find("vertex", accel) else "resources"
            problems.append(spec.problem(field, f"{exc.message}; {exc.hint}"))
            return {}
    why = tpu_problem(machine_type, accel)
    if why:
        problems.append(spec.problem("backends.vertex.machine_type" if explicit else "resources.accelerators", why))
    if machine_type == LEGACY_TPU_MACHINE:
        return {"machine_type": machine_type, "accelerator_type": LEGACY_TPU_ACCELERATORS.get(accel.type, ""),
                "accelerator_count": accel.count}
    return {"machine_type": machine_type, "tpu_topology": accel.topology}
