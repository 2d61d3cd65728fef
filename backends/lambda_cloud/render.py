"""The `lambda_cloud` backend's pure half: its settings and the request a dry run shows.

Kept apart from backend.py so the request is built from settings alone, with no API call: the
instances to launch (names and tags; region and type only exist once capacity is found at submit)
and the ssh backend's start request on stand-in hosts, which submit places on the instances got.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from backends.lambda_cloud import instances as inst
from backends.ssh import SSHBackend
from launcher.backend import Request
from launcher.errors import SpecError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

NAME = "lambda_cloud"
DEFAULT_BASE_URL = "https://cloud.lambda.ai/api/v1"  # the api_url setting's default; api.py's client takes it too
STAND_IN = "lambda-node-{rank}"  # render's host names; submit puts the instances' addresses there
SSH_SETTINGS = ("identity_file", "ssh_config", "host_key_checking", "remote_root", "check_gpus", "cancel_grace")


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.lambda_cloud`: where to rent, which key the instances accept, and how to reach them."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    from launcher.spec import Duration as Seconds  # "2m" or 120, and the schema says so

    class LambdaSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        regions: list[str] = Field(default_factory=list, description="in order of preference; empty: any")
        instance_type: str | None = Field(None, description="e.g. gpu_8x_h100_sxm5; default: chosen from "
                                          "/instance-types for resources.accelerators")
        ssh_key_name: str | None = Field(None, description="an SSH key registered with Lambda Cloud")
        file_systems: list[str] = Field(default_factory=list)
        keep_instances: bool = Field(False, description="leave the instances running after the job "
                                     "(`launch cancel` still terminates them)")
        api_url: str = Field(DEFAULT_BASE_URL, pattern=r"^https?://", examples=[DEFAULT_BASE_URL])
        api_key: str | None = Field(None, description="config.toml only; else LAMBDA_API_KEY")
        ssh_user: str = Field("ubuntu", pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]*$", examples=["ubuntu"],
                              description="a login name: letters, digits and . _ -")
        ssh_port: int = Field(22, ge=1, le=65535)
        identity_file: str | None = None
        ssh_config: str | None = None
        host_key_checking: Literal["yes", "accept-new"] = "accept-new"
        remote_root: str = Field(".launch", pattern=r"^(/|[A-Za-z0-9._])", examples=[".launch", "/scratch/launch"],
                                 description="absolute, or relative to the login dir (no leading - or ~)")
        check_gpus: bool = True
        cancel_grace: Seconds = 10
        request_interval: float = Field(1.0, ge=0, description="seconds between API calls (Lambda: 1/s)")
        launch_interval: float = Field(12.0, ge=0, description="seconds between launches (Lambda: 1 per 12 s)")
        boot_timeout: Seconds = 1200
        boot_poll: float = Field(5.0, gt=0)
        self_terminate_after: Seconds = Field(120, description="a node waits this long after its job before "
                                              "terminating itself (a watching launcher does it sooner)")

    return LambdaSettings


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
    """The instances to launch (their names and tags, not yet their region or type) and the ssh start
    request on stand-in hosts, from validated settings."""
    nodes = spec.resources.nodes
    problems = []
    if not settings["ssh_key_name"]:
        problems.append(spec.problem("backends.lambda_cloud.ssh_key_name", "Lambda instances need an SSH key "
                                     "registered with Lambda Cloud: ssh_key_name: <its name>"))
    if not spec.resources.accelerators.is_gpu and not settings["instance_type"]:
        problems.append(spec.problem("resources.accelerators", "Lambda Cloud rents GPU instances: ask for "
                                     "a GPU (e.g. H100:8) or set backends.lambda_cloud.instance_type"))
    if problems:
        raise SpecError(problems)
    stand_ins = [f"{settings['ssh_user']}@{STAND_IN.format(rank=r)}:{settings['ssh_port']}" for r in range(nodes)]
    ssh_request = SSHBackend({**{k: settings[k] for k in SSH_SETTINGS}, "hosts": stand_ins}).render(
        spec, job_id, bundle, secrets, idempotency_key=idempotency_key)
    ssh_payload = ssh_request.payload
    if not settings["keep_instances"]:  # kept instances neither terminate themselves nor hold the key
        for node in ssh_payload["nodes"]:
            node["env"]["LAUNCH_ON_EXIT"] = f"{ssh_payload['job_dir']}/on_exit.sh"
    launches = []
    for rank in range(nodes):
        body: dict[str, Any] = {"ssh_key_names": [settings["ssh_key_name"]],
                                "name": inst.instance_name(job_id, rank),
                                "tags": inst.tags(job_id, rank, idempotency_key)}
        if settings["file_systems"]:
            body["file_system_names"] = list(settings["file_systems"])
        launches.append(body)
    accelerator = spec.resources.accelerators
    payload = {
        "api_url": settings["api_url"],
        "placement": {"regions": list(settings["regions"]), "instance_type": settings["instance_type"],
                      "accelerator": accelerator.type, "gpus": accelerator.count,
                      "min_vcpus": spec.resources.cpus, "min_memory_gib": spec.resources.memory_gb},
        "launch": launches,  # region_name and instance_type_name are added at submit
        "keep_instances": settings["keep_instances"],
        "self_terminate_after_s": settings["self_terminate_after"],
        "ssh": ssh_payload,
    }
    return Request(NAME, job_id, "lambda_launch_instances_then_ssh_start", payload, ssh_request.uploads)
