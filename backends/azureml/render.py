"""The `azureml` backend's pure half: settings, the workspace a job goes to, and the exact ARM body.

Kept apart from backends/azureml/backend.py so a dry run never imports azure-ai-ml (~1.3 s on its
own): the body is built here as a plain dict, field for field what the SDK puts on the wire
for the command job submit builds from it (a test captures the SDK's PUT and compares).
"""

from __future__ import annotations

import base64
import functools
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher import catalog, logs
from launcher.backend import Request, Upload
from launcher.errors import Problem, SpecError
from launcher.node import BUNDLE_VARIABLES, Placement, job_files, node_environment

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

JOB_ID_TAG = "launch_job_id"
IDEMPOTENCY_TAG = "launch_idempotency_key"
# Upload destinations of the bundle file(s): the job's code asset holds them and nothing else, so the SDK finds
# an asset of the same content hash on a re-submit of an unchanged tree and uploads nothing.
CODE_DIR = "code/"
# An overlay (what changed since the base was packed, launcher/bundle.py) rides in the command as base64 text the
# node decodes, so the code asset stays the base alone: an asset of base + overlay has a new content hash, and the
# SDK would upload the whole base again with every edit. It does so while the whole command stays within this many
# bytes, well under Linux's 128 KiB for one argument (MAX_ARG_STRLEN), should a node pass the command to a shell as
# one; a larger overlay goes into the asset with the base (the whole bundle is sent once more).
COMMAND_BUDGET = 100 * 1024
# The job's own small files (bootstrap.sh, run.sh, setup.sh, topology.sh) differ from job to job: they travel
# inside the command, which writes them here (relative to the node's working directory, the code asset's copy).
JOB_DIR = ".launch-job/"
DEFAULT_CPU_SIZE = "Standard_DS3_v2"  # serverless VM for a job that asks for no GPU (4 vCPU, 14 GiB)
DEFAULT_GPU_SHM = "16g"  # Azure's 2g default starves PyTorch DataLoader workers
# Filled in by the SDK at submit (the code asset and the environment it registers); shown as such on a dry run.
CODE_ID = "<code asset holding the bundle: the one of the same content hash, else the SDK uploads it>"
ENVIRONMENT_ID = "<environment the SDK registers for image {image}>"
SERVICE_ASSIGNED = ("codeId", "environmentId")
# How every node starts, in its working directory (where Azure ML puts the code asset's files), once the job's
# files are written. Azure ML's PyTorch distribution (one process per node) exports NODE_RANK, MASTER_ADDR and
# MASTER_PORT; bootstrap.sh reads the LAUNCH_* names.
NODE_COMMAND = ('LAUNCH_NODE_RANK="${NODE_RANK:-0}" LAUNCH_MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}" '
                'LAUNCH_MASTER_PORT="${MASTER_PORT:-29500}" exec sh ' + JOB_DIR + 'bootstrap.sh')
# Azure ML reads `${{...}}` in a command as a binding to the job's inputs/outputs; file text must never form one.
BINDING = "${{"
AZUREML_CONFIG_FILES = ("config.json", ".azureml/config.json")


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.azureml`: which workspace, which compute, and how the job is queued."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class AzureMLSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        subscription_id: str | None = Field(None, pattern=r"^[0-9A-Fa-f-]{36}$",
                                            examples=["00000000-1111-2222-3333-444444444444"],
                                            description="the subscription GUID")
        # the lengths as min/max_length, not {m,n}: a bounded repeat of the Unicode class \w costs pydantic-core's
        # regex engine ~40 ms to compile (a tenth of every command that builds this model); the same check
        resource_group: str | None = Field(None, pattern=r"^[-\w._()]+$", max_length=90, examples=["my-rg"],
                                           description="up to 90 letters, digits and - _ . ( )")
        workspace_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w-]+$", min_length=3, max_length=33,
                                           examples=["my-workspace"], description="3-33 letters, digits, _ and -")
        compute: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9-]{1,31}$", examples=["gpu-cluster"],
                                    description="A compute cluster of the workspace; default: serverless compute")
        instance_type: str | None = Field(None, pattern=r"^Standard_[A-Za-z0-9_]+$",
                                          examples=["Standard_NC24ads_A100_v4"],
                                          description="Serverless VM size; overrides the catalog")
        job_tier: Literal["Basic", "Standard", "Premium"] | None = Field(
            None, description="Serverless queue tier; spot: true asks for the Spot tier")
        shm_size: str | None = Field(None, pattern=r"^\d+[bkmg]$", examples=["16g"],
                                     description="/dev/shm size: a number and b, k, m or g")
        endpoint: str | None = Field(None, pattern=r"^https://", examples=["https://management.azure.com/"],
                                     description="Azure Resource Manager URL (sovereign clouds, tests); "
                                                 "default https://management.azure.com/")

    return AzureMLSettings


@dataclass(frozen=True)
class Workspace:
    subscription_id: str
    resource_group: str
    workspace_name: str

    @property
    def arm_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{self.workspace_name}")


WORKSPACE_KEYS = {
    "subscription_id": "the subscription id (a GUID)",
    "resource_group": "the resource group",
    "workspace_name": "the Azure ML workspace",
}


def config_file_values(directory: Path | None = None) -> dict[str, str]:
    """The workspace an Azure ML `config.json` names (./config.json, then ./.azureml/config.json), the
    file the studio's "download config.json" gives; a file that is not such a config is ignored."""
    base = directory or Path.cwd()
    for name in AZUREML_CONFIG_FILES:
        try:
            data = json.loads((base / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and any(k in data for k in WORKSPACE_KEYS):
            aliases = {"workspace_name": data.get("workspace_name") or data.get("workspace"),
                       "resource_group": data.get("resource_group"), "subscription_id": data.get("subscription_id")}
            return {k: str(v) for k, v in aliases.items() if v}
    return {}


def workspace_values(settings: Mapping[str, Any]) -> dict[str, str]:
    """Spec over user config (already merged into `settings`) over config.json."""
    found = config_file_values()
    return {key: str(settings.get(key) or found.get(key) or "") for key in WORKSPACE_KEYS}


def missing_workspace_hint(missing: list[str]) -> str:
    return (f"set {', '.join(f'backends.azureml.{k}' for k in missing)} in the spec or under [backends.azureml] in "
            "config.toml, or put the workspace's config.json (Azure ML studio: Download config file) in the "
            "current directory or ./.azureml/")


def iso_duration(seconds: int) -> str:
    """Seconds as the ISO 8601 duration the SDK writes (isodate's form: P1DT2H3M4S, zero parts left out)."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time_part = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    return "P" + (f"{days}D" if days or not time_part else "") + (f"T{time_part}" if time_part else "")


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
    """The ARM `PUT .../workspaces/{ws}/jobs/{job_id}` body for the spec; every problem at once."""
    problems: list[Problem] = []
    values = workspace_values(settings)
    for key, what in WORKSPACE_KEYS.items():
        if not values[key]:
            problems.append(spec.problem(f"backends.azureml.{key}", f"Azure ML needs {what}: "
                                         + missing_workspace_hint([key])))
    if not spec.image:
        problems.append(spec.problem("image", "Azure ML runs the job in a container image: set image:, e.g. "
                                     "mcr.microsoft.com/azureml/curated/acpt-pytorch-2.2-cuda12.1:latest"))
    if spec.outputs:  # a spec written for another cloud still runs here: its outputs are kept the Azure ML way
        logs.get().warning("outputs: %s is not used on azureml: Azure ML keeps what the job writes to "
                           "$LAUNCH_OUTPUT_DIR (./outputs) with the job's run history", spec.outputs)
    resources = _resources(settings, spec, problems)
    if problems:
        raise SpecError(problems)
    if spec.retries:
        logs.get().warning("Azure ML command jobs have no restart setting; retries: %d is not applied on azureml",
                           spec.retries)

    workspace = Workspace(**values)
    uploads, files_env = job_files(spec, bundle, Placement(JOB_DIR, JOB_DIR, CODE_DIR, ""))
    code = tuple(u for u in uploads if u.destination.startswith(CODE_DIR))  # the bundle: one file or more
    own = [u for u in uploads if not u.destination.startswith(CODE_DIR)]
    command = node_command(own)
    overlay = _inline_overlay(command, bundle)
    if overlay is not None:
        command = node_command(own, overlay_step(overlay.destination, _overlay_text(overlay)))
        code = code[:-1]  # the pieces' order: the base, then the overlay
        files_env[BUNDLE_VARIABLES[1]] = overlay.destination
    environment = {**node_environment(spec, job_id, secrets, output_dir="outputs",
                                      checkpoint_dir=spec.checkpoint_dir or "/tmp/launch/checkpoints",
                                      workdir="/tmp/launch/work"),
                   **files_env}
    tags = {JOB_ID_TAG: job_id}
    if idempotency_key:
        tags[IDEMPOTENCY_TAG] = idempotency_key
    properties: dict[str, Any] = {
        "command": command,
        **({"codeId": CODE_ID} if code else {}),
        "properties": {},
        "experimentName": spec.name,
        "isArchived": False,
        "inputs": {},
        "outputs": {},
        "environmentId": ENVIRONMENT_ID.format(image=spec.image),
        "tags": tags,
        "environmentVariables": environment,
        "resources": resources,
        "jobType": "Command",
        "displayName": job_id,
    }
    if settings.get("compute"):
        properties["computeId"] = f"{workspace.arm_id}/computes/{settings['compute']}"
    if spec.resources.nodes > 1 or spec.distributed == "torchrun":
        # one process per node: bootstrap.sh starts torchrun itself with one worker per GPU
        properties["distribution"] = {"distributionType": "PyTorch", "processCountPerInstance": 1}
    if spec.max_runtime:
        properties["limits"] = {"timeout": iso_duration(spec.max_runtime), "jobLimitsType": "Command"}
    tier = "Spot" if spec.spot else settings.get("job_tier")
    if tier:
        properties["queueSettings"] = {"jobTier": tier}
    operation = f"PUT {workspace.arm_id}/jobs/{job_id}"
    return Request("azureml", job_id, operation, {"properties": properties}, code)


def node_command(files: list[Upload], overlay_step: str | None = None) -> str:
    """The job's command: write the job's own files (each quoted as one shell word, text for text) and the
    inline overlay if any, then start bootstrap.sh. They ride in the command rather than in the code asset, so
    that asset is the bundle's base alone and stays the same while only the job's command changes; Azure ML
    documents no limit on a command's length (its resource limits list none), while environment values are
    capped."""
    steps = [f"mkdir -p {JOB_DIR.rstrip('/')}"]
    for upload in files:
        text = upload.content if upload.content is not None else Path(upload.source).read_text(encoding="utf-8")
        steps.append(f"printf '%s' {_shell_text(text)} > {shlex.quote(upload.destination)}")
    if overlay_step is not None:
        steps.append(overlay_step)
    return " && ".join([*steps, NODE_COMMAND])


def _inline_overlay(command: str, bundle: Bundle | None) -> Upload | None:
    """The bundle's overlay as a job file the command writes, when there is one and the command stays within
    COMMAND_BUDGET with it (its base64 is 4/3 of its size)."""
    if bundle is None or bundle.overlay is None:
        return None
    destination = JOB_DIR + bundle.overlay.name
    encoded_size = 4 * -(-bundle.overlay.size // 3)
    if len(command.encode()) + len(" && " + overlay_step(destination, "")) + encoded_size > COMMAND_BUDGET:
        return None
    return Upload(bundle.overlay.path, destination)


# What a dry run writes where the overlay's base64 would be (it packs without writing the overlay). A real submit
# whose command holds it is refused before anything is sent (backend.py).
OVERLAY_PLACEHOLDER = "'<the overlay {name}, base64: written at submit>'"


def holds_overlay_placeholder(command: str) -> bool:
    """Whether a rendered command holds the dry run's placeholder for the overlay. The placeholder's closing
    quote followed by the pipe cannot come from a job file's text, whose every `'` is escaped."""
    return "base64: written at submit>' | base64 -d" in command


NO_BASE64 = shlex.quote("launch: this image has no base64 command (coreutils or busybox), which the job's code "
                        "overlay needs: add it to the image")


def _overlay_text(overlay: Upload) -> str:
    """The overlay's bytes as base64 ([A-Za-z0-9+/=]: one shell word as it is, and never a `${{` binding)."""
    assert overlay.source is not None
    try:
        return base64.b64encode(Path(overlay.source).read_bytes()).decode()
    except FileNotFoundError:  # a dry run packs without writing: its overlay is counted, not on disk
        return OVERLAY_PLACEHOLDER.format(name=Path(overlay.destination).name)


def overlay_step(destination: str, encoded: str) -> str:
    """The command's step that writes the overlay, decoded by the node's `base64`; an image without one is told
    what is missing rather than failing with a bare `not found`."""
    return (f"{{ command -v base64 >/dev/null || {{ echo {NO_BASE64} >&2; exit 127; }}; }} && "
            f"printf '%s' {encoded} | base64 -d > {shlex.quote(destination)}")


def _shell_text(text: str) -> str:
    """`text` as one single-quoted shell word in which no `${{` appears: `$''{{` is the same word to a shell
    (an empty quoted string between `$` and `{{`), while Azure ML no longer reads it as a binding."""
    return shlex.quote(text).replace(BINDING, "$''{{")


def _resources(settings: Mapping[str, Any], spec: JobSpec, problems: list[Problem]) -> dict[str, Any]:
    """instanceCount, the serverless VM size (none on a named cluster: its VMs are fixed) and /dev/shm."""
    accel = spec.resources.accelerators
    resources: dict[str, Any] = {"instanceCount": spec.resources.nodes}
    if not settings.get("compute"):
        instance_type = settings.get("instance_type")
        if not instance_type and accel.is_gpu:
            try:  # the size `launch plan` prices: the first catalog offer meeting the cpus/memory minimums
                instance_type = catalog.choose("azureml", accel, cpus=spec.resources.cpus,
                                               memory_gb=spec.resources.memory_gb).instance_type
            except catalog.CatalogError as exc:
                field = "resources.accelerators" if not catalog.find("azureml", accel) else "resources"
                problems.append(spec.problem(field, f"{exc.message}; pick another accelerator or set "
                                             "backends.azureml.instance_type (a serverless VM size)"))
        if not instance_type and not accel.is_gpu:
            instance_type = DEFAULT_CPU_SIZE
        if instance_type:
            resources["instanceType"] = instance_type
    resources["properties"] = {}
    shm = settings.get("shm_size") or (DEFAULT_GPU_SHM if accel.is_gpu else None)
    if shm:
        resources["shmSize"] = shm
    return resources

