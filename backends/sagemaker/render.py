"""The `sagemaker` backend's pure half: settings, names, tags, the instance, and the exact CreateTrainingJob body.

The code bundle and the bootstrap travel as S3 input channels, so every node finds them under
/opt/ml/input/data/ and runs the same bootstrap.sh as every other backend; SageMaker's resourceconfig.json
gives the rank and the master. Kept apart from the modules that talk to AWS so a dry run renders the exact
request without boto3: nothing here imports an SDK, reads the clock or touches the network.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from backends.sagemaker.instance_types import TRAINING_INSTANCE_TYPES
from launcher import catalog, durations
from launcher.backend import Request, Upload
from launcher.errors import Problem, SpecError
from launcher.node import BUNDLE_VARIABLES, Placement, job_files, node_environment

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

NAME = "sagemaker"
CPU_INSTANCE_TYPE = "ml.m5.xlarge"  # a job that asks for no GPU; `launch plan` names it too
# the dry run's bucket when none is configured: submit fills in the account (launch-<account>-<region>)
BUCKET_PLACEHOLDER = "launch-{account}-"
JOB_ID_TAG = "launch:job-id"
IDEMPOTENCY_TAG = "launch:idempotency-key"
CHANNEL_DIR = "/opt/ml/input/data"
DEFAULT_RUNTIME_S = 24 * 3600
DEFAULT_VOLUME_GB = 100
MAX_RUNTIME_S = 28 * 86400  # AWS's cap on MaxRuntimeInSeconds
MAX_VOLUME_GB = 16384
ROLE_RE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
ENV_KEY_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
ENV_MAX_ENTRIES = 100
ENV_MAX_LENGTH = 512
TAG_VALUE_MAX = 256
TAG_PUNCTUATION = frozenset("_.:/=+-@")
# How a node learns its place (sourced by bootstrap.sh through LAUNCH_TOPOLOGY). SageMaker names
# its hosts algo-1..algo-N in resourceconfig.json: rank = position of current_host among the
# top-level hosts in numeric order, master = the first of them, node count = how many there are, node
# addresses = all of them in that order.
TOPOLOGY = r"""topo_config=${LAUNCH_SAGEMAKER_RESOURCE_CONFIG:-/opt/ml/input/config/resourceconfig.json}
if [ -f "$topo_config" ]; then
    topo_flat=$(tr -d ' \n\t\r' < "$topo_config")
    # heterogeneous clusters add instance_groups[].hosts: read only the top-level keys
    topo_top=$(printf '%s' "$topo_flat" | sed 's/"instance_groups":\[.*//')
    topo_current=$(printf '%s' "$topo_top" | sed -n 's/.*"current_host":"\([^"]*\)".*/\1/p')
    topo_hosts=$(printf '%s' "$topo_top" | sed -n 's/.*"hosts":\[\([^]]*\)\].*/\1/p' | tr -d '"' | tr ',' '\n' \
        | sort -V | tr '\n' ' ')
    topo_rank=0
    topo_first=
    topo_addrs=
    set -f  # a host name is never a pattern
    for topo_host in $topo_hosts; do
        [ -n "$topo_first" ] || topo_first=$topo_host
        topo_addrs=${topo_addrs:+$topo_addrs,}$topo_host
        [ "$topo_host" = "$topo_current" ] && LAUNCH_NODE_RANK=$topo_rank
        topo_rank=$((topo_rank + 1))
    done
    set +f
    [ -n "$topo_first" ] && LAUNCH_MASTER_ADDR=$topo_first
    LAUNCH_NODE_ADDRS=$topo_addrs
    [ "$topo_rank" -gt 0 ] && LAUNCH_NUM_NODES=$topo_rank
fi
"""


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.sagemaker`: where and as whom the job runs."""
    from pydantic import BaseModel, ConfigDict, Field

    from launcher.spec import Duration  # "4h" or seconds, and the schema says so

    class Vpc(BaseModel):
        model_config = ConfigDict(extra="forbid")
        subnets: list[str] = Field(min_length=1, max_length=16)
        security_group_ids: list[str] = Field(min_length=1, max_length=5)

    class SageMakerSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", examples=["us-east-1"],
                                   description="an AWS region")
        role_arn: str | None = Field(None, description="IAM role SageMaker assumes for the job",
                                     examples=["arn:aws:iam::123456789012:role/Train"])
        bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", examples=["my-training-bucket"],
                                   description="S3 bucket for bundles; default launch-<account>-<region>")
        prefix: str = Field("launch", pattern=r"^[A-Za-z0-9._/-]+$", examples=["launch", "team/runs"],
                            description="letters, digits and . _ / -")
        instance_type: str | None = Field(None, description="Overrides the catalog, e.g. ml.g5.2xlarge")
        volume_size_gb: int | None = Field(None, ge=1, le=16384)
        max_wait: Duration | None = Field(
            None, description="Spot only: longest wait for capacity plus training (>= max_runtime)")
        vpc: Vpc | None = None
        profile: str | None = None
        endpoint_url: str | None = Field(None, description="A custom SageMaker endpoint (VPC endpoint)")

    return SageMakerSettings


def tag_text_ok(text: str) -> bool:
    r"""AWS's tag pattern, `[\p{L}\p{Z}\p{N}_.:/=+\-@]*` in botocore's model: letters, separators and numbers
    of any script, and _ . : / = + - @. Python's `[\w\s]` is not it: `\s` also takes tabs, newlines and other
    control characters, which AWS refuses."""
    return all(unicodedata.category(char)[0] in "LZN" or char in TAG_PUNCTUATION for char in text)


def training_job_name(job_id: str) -> str:
    """The launcher id as a SageMaker name: at most 63 of [a-zA-Z0-9-], no leading/trailing
    dash. Over-long ids lose characters from the name part, never from the unique tail."""
    clean = re.sub(r"[^a-zA-Z0-9-]+", "-", job_id).strip("-") or "job"
    if len(clean) <= 63:
        return clean
    head, tail = clean[:-23], clean[-23:]  # tail: YYYYMMDD-HHMMSS-xxxxxx
    return (head[: 63 - len(tail) - 1].rstrip("-") + "-" + tail.lstrip("-"))[:63]


def configured_region(settings: Mapping[str, Any]) -> str | None:
    """The region from the settings, else the AWS environment; None when neither names one."""
    return settings.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
    """The CreateTrainingJob request, field for field as submit sends it, or every problem with it at once."""
    problems: list[Problem] = []
    name = training_job_name(job_id)
    region = configured_region(settings)
    if not region:  # reported with the other problems: one round of fixes, not one per run
        problems.append(spec.problem("backends.sagemaker.region", "SageMaker needs a region: set region: "
                                     "us-east-1 here or in config.toml, or export AWS_REGION"))
        region = "REGION"
    bucket = settings.get("bucket") or BUCKET_PLACEHOLDER + region
    prefix = str(settings.get("prefix") or "launch").strip("/")
    job_prefix = f"s3://{bucket}/{prefix}/jobs/{name}/"

    if not spec.image:
        problems.append(spec.problem("image", "SageMaker needs a container image (an ECR URI for a "
                                     "training image), e.g. image: 763104351884.dkr.ecr...pytorch-training"))
    role = settings.get("role_arn")
    if not role:
        problems.append(spec.problem("backends.sagemaker.role_arn", "SageMaker needs an execution role; "
                                     "set role_arn: arn:aws:iam::<account>:role/<name> here or in config.toml"))
    elif not ROLE_RE.fullmatch(role) or len(role) > 2048:
        problems.append(spec.problem("backends.sagemaker.role_arn",
                                     f"{role!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/Name)"))
    instance_type = choose_instance(settings, spec, problems)
    runtime = spec.max_runtime or DEFAULT_RUNTIME_S
    if runtime > MAX_RUNTIME_S:
        problems.append(spec.problem("max_runtime", f"SageMaker stops training jobs after at most 28 days; "
                                     f"{durations.format_seconds(runtime)} is longer (checkpoint and resubmit)"))
    volume = settings.get("volume_size_gb") or spec.resources.disk_gb or DEFAULT_VOLUME_GB
    if volume > MAX_VOLUME_GB:
        problems.append(spec.problem("resources.disk_gb", f"SageMaker volumes hold at most {MAX_VOLUME_GB} GB"))
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": runtime}
    if spec.spot:
        wait = settings.get("max_wait") or runtime
        if wait < runtime:
            problems.append(spec.problem("backends.sagemaker.max_wait", (
                f"max_wait ({durations.format_seconds(wait)}) must be at least max_runtime "
                f"({durations.format_seconds(runtime)}): it covers waiting for spot capacity plus training")))
        stopping["MaxWaitTimeInSeconds"] = wait
    elif settings.get("max_wait"):
        problems.append(spec.problem("backends.sagemaker.max_wait", "max_wait applies to spot jobs only; "
                                     "set spot: true or remove it"))

    channel = f"{CHANNEL_DIR}/launch/"
    where = Placement(job_prefix, channel, f"s3://{bucket}/{prefix}/bundles/", f"{CHANNEL_DIR}/code/")
    uploads, files_env = job_files(spec, bundle, where, topology=TOPOLOGY)
    channels = [_channel("launch", job_prefix)]
    if bundle is not None:  # one channel per piece: a channel is one S3 prefix, a piece one object
        for channel_name, piece, variable in zip(("code", "overlay"), bundle.pieces, BUNDLE_VARIABLES, strict=False):
            channels.append(_channel(channel_name, where.bundles_uri + piece.name))
            files_env[variable] = f"{CHANNEL_DIR}/{channel_name}/{piece.name}"
    environment = {**node_environment(spec, job_id, secrets, output_dir="/opt/ml/model",
                                      checkpoint_dir=spec.checkpoint_dir or "/opt/ml/checkpoints",
                                      workdir="/opt/ml/launch/work"),
                   **files_env}
    problems.extend(_environment_problems(spec, environment))

    tags = [{"Key": JOB_ID_TAG, "Value": job_id}]
    if idempotency_key:
        if len(idempotency_key) > TAG_VALUE_MAX or not tag_text_ok(idempotency_key):
            raise SpecError([Problem("--idempotency-key", None, "", f"SageMaker tag values allow at most "
                                     f"{TAG_VALUE_MAX} letters, digits, spaces and _ . : / = + - @ "
                                     "(no tabs, newlines or other punctuation)")])
        tags.append({"Key": IDEMPOTENCY_TAG, "Value": idempotency_key})
    output = spec.outputs or f"s3://{bucket}/{prefix}/outputs/"
    if not output.startswith("s3://"):
        problems.append(spec.problem("outputs", "SageMaker writes outputs to S3: use an s3://bucket/path/ URI"))
    if problems:
        raise SpecError(problems)

    payload: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": role,
        "AlgorithmSpecification": {
            "TrainingImage": spec.image,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["/bin/sh", f"{channel}bootstrap.sh"],
        },
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": spec.resources.nodes,
            "VolumeSizeInGB": volume,
        },
        "StoppingCondition": stopping,
        "Environment": environment,
        "Tags": tags,
    }
    if spec.spot:
        payload["EnableManagedSpotTraining"] = True
    if spec.checkpoint_dir:
        payload["CheckpointConfig"] = {"S3Uri": f"{output.rstrip('/')}/{name}/checkpoints/",
                                       "LocalPath": spec.checkpoint_dir}
    if spec.retries:
        payload["RetryStrategy"] = {"MaximumRetryAttempts": spec.retries}
    if settings.get("vpc"):
        payload["VpcConfig"] = {"SecurityGroupIds": list(settings["vpc"]["security_group_ids"]),
                                "Subnets": list(settings["vpc"]["subnets"])}
    return Request(NAME, job_id, "CreateTrainingJob", payload, tuple(uploads))


def choose_instance(settings: Mapping[str, Any], spec: JobSpec, problems: list[Problem]) -> str:
    """The configured instance type (checked against botocore's enum, vendored), else the one
    `launch plan` prices for the accelerators; a problem is added, not raised, so that all come at once."""
    accel = spec.resources.accelerators
    explicit = settings.get("instance_type")
    if explicit:
        if explicit not in TRAINING_INSTANCE_TYPES:
            close = difflib.get_close_matches(explicit, TRAINING_INSTANCE_TYPES, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "e.g. ml.g5.2xlarge"
            problems.append(spec.problem("backends.sagemaker.instance_type",
                                         f"{explicit!r} is not a SageMaker training instance type; {hint}"))
        return str(explicit)
    if not accel.is_gpu:
        return CPU_INSTANCE_TYPE
    try:  # the instance `launch plan` prices: the first meeting the cpus/memory minimums
        return catalog.choose(NAME, accel, cpus=spec.resources.cpus,
                              memory_gb=spec.resources.memory_gb).instance_type
    except catalog.CatalogError as exc:
        field = "resources.accelerators" if not catalog.find(NAME, accel) else "resources"
        problems.append(spec.problem(field, f"{exc.message}; {exc.hint}"))
        return ""


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {"ChannelName": name, "InputMode": "File", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}}


def _environment_problems(spec: JobSpec, environment: Mapping[str, str]) -> list[Problem]:
    """What botocore does not check: SageMaker's limits on Environment."""
    problems = []
    for key, value in environment.items():
        field = f"env.{key}" if key in spec.env else ("secrets" if key in spec.secrets else "")
        if not ENV_KEY_RE.match(key):
            problems.append(spec.problem(field, f"{key!r}: SageMaker environment names allow only letters, "
                                         "digits and _ and must not start with a digit"))
        if len(value) > ENV_MAX_LENGTH:
            problems.append(spec.problem(field, f"{key}: SageMaker caps environment values at "
                                         f"{ENV_MAX_LENGTH} characters (this one has {len(value)})"))
    if len(environment) > ENV_MAX_ENTRIES:
        problems.append(spec.problem("env", f"SageMaker allows {ENV_MAX_ENTRIES} environment variables; "
                                     f"with launch's own {len(environment) - len(spec.env) - len(spec.secrets)} "
                                     f"this job has {len(environment)}"))
    return problems


def fill_bucket(value: Any, bucket: str) -> Any:
    """Swap the dry run's launch-{account}-<region> placeholder for the real bucket (submit knows the account)."""
    if isinstance(value, str):
        return re.sub(r"launch-\{account\}-[a-z0-9-]+", bucket, value)
    if isinstance(value, list):
        return [fill_bucket(v, bucket) for v in value]
    if isinstance(value, dict):
        return {k: fill_bucket(v, bucket) for k, v in value.items()}
    return value


def fill_upload(upload: Upload, bucket: str) -> Upload:
    return Upload(upload.source, fill_bucket(upload.destination, bucket), upload.content)
