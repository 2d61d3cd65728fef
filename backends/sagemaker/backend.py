"""The `sagemaker` backend: the spec as one SageMaker CreateTrainingJob.

The code bundle and the bootstrap travel as S3 input channels, so every node
finds them under /opt/ml/input/data/ and runs the same bootstrap.sh as every
other backend; SageMaker's resourceconfig.json gives the rank and the master.
boto3 is imported only inside the methods that talk to AWS: a dry run renders
the exact request without it.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import unicodedata
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.sagemaker.instance_types import TRAINING_INSTANCE_TYPES
from launcher import catalog, durations, logs
from launcher.backend import (
    Backend,
    Capabilities,
    Handle,
    JobState,
    LazySettings,
    LogLine,
    Readiness,
    Request,
    Status,
    Summary,
    Upload,
    job_name,
)
from launcher.errors import (
    BackendError,
    BackendUnreachable,
    CapacityError,
    LaunchError,
    Problem,
    SpecError,
    TransientBackendError,
    UsageError,
    translated,
)
from launcher.node import Placement, job_files, node_environment
from launcher.sdk import Sdk

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

SDK = Sdk("sagemaker", "boto3", ("boto3", "botocore"))
# this backend's instance types and list prices; the core merges them into `launch catalog` and `plan`
CATALOG_CSV = Path(__file__).with_name("catalog.csv")
JOB_ID_TAG = "launch:job-id"
IDEMPOTENCY_TAG = "launch:idempotency-key"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
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
# reading one stream stops after this many pages in a row without events although the token moved
# (the next read goes on from there: the cursor keeps the token)
MAX_EMPTY_PAGES = 50
# How a node learns its place (sourced by bootstrap.sh through LAUNCH_TOPOLOGY). SageMaker names
# its hosts algo-1..algo-N in resourceconfig.json: rank = position of current_host among the
# top-level hosts in numeric order, master = the first of them, node count = how many there are.
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
    for topo_host in $topo_hosts; do
        [ -n "$topo_first" ] || topo_first=$topo_host
        [ "$topo_host" = "$topo_current" ] && LAUNCH_NODE_RANK=$topo_rank
        topo_rank=$((topo_rank + 1))
    done
    [ -n "$topo_first" ] && LAUNCH_MASTER_ADDR=$topo_first
    [ "$topo_rank" -gt 0 ] && LAUNCH_NUM_NODES=$topo_rank
fi
"""

# (TrainingJobStatus, SecondaryStatus or None for "any") -> our state.
STATES: dict[tuple[str, str | None], JobState] = {
    ("InProgress", "Pending"): JobState.PENDING,
    ("InProgress", "Starting"): JobState.STARTING,
    ("InProgress", "LaunchingMLInstances"): JobState.STARTING,
    ("InProgress", "PreparingTrainingStack"): JobState.STARTING,
    ("InProgress", "Downloading"): JobState.STARTING,
    ("InProgress", "DownloadingTrainingImage"): JobState.STARTING,
    ("InProgress", "Interrupted"): JobState.STARTING,  # spot capacity lost; SageMaker waits for more
    ("InProgress", "Restarting"): JobState.STARTING,
    ("InProgress", "Stopping"): JobState.CANCELLING,
    ("InProgress", "Training"): JobState.RUNNING,
    ("InProgress", "Uploading"): JobState.RUNNING,
    ("InProgress", "Updating"): JobState.RUNNING,
    ("InProgress", None): JobState.RUNNING,
    ("Completed", None): JobState.SUCCEEDED,
    ("Failed", None): JobState.FAILED,
    ("Stopping", None): JobState.CANCELLING,
    ("Stopped", "MaxRuntimeExceeded"): JobState.FAILED,
    ("Stopped", "MaxWaitTimeExceeded"): JobState.FAILED,
    ("Stopped", None): JobState.CANCELLED,
}
TIMEOUT_MESSAGES = {
    "MaxRuntimeExceeded": "timed out: the job ran longer than max_runtime",
    "MaxWaitTimeExceeded": "timed out: spot capacity plus training took longer than backends.sagemaker.max_wait",
}
# refusals for want of quota or machines: nothing was created, another backend may have them
CAPACITY_CODES = {"ResourceLimitExceeded", "CapacityError", "InsufficientCapacityError"}
TRANSIENT_CODES = {"ThrottlingException", "Throttling", "ServiceUnavailable", "InternalFailure",
                   "InternalServerError", "RequestTimeout", "SlowDown", "TooManyRequestsException"}
CREDENTIAL_CODES = {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
                    "ExpiredTokenException", "InvalidSignatureException", "SignatureDoesNotMatch"}


def map_state(status: str, secondary: str | None) -> JobState:
    """One table for all of SageMaker's states; anything new reads as UNKNOWN."""
    return STATES.get((status, secondary)) or STATES.get((status, None)) or JobState.UNKNOWN


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


def console_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{name}"


class SageMakerBackend(Backend):
    name: ClassVar[str] = "sagemaker"
    capabilities: ClassVar[Capabilities] = Capabilities(spot=True, log_settle_s=5.0, log_poll_s=1.0)
    cpu_instance_type: ClassVar[str] = "ml.m5.xlarge"  # a job that asks for no GPU; `launch plan` names it too
    settings_model = LazySettings(settings_model)

    @classmethod
    def catalog_rows(cls) -> tuple[catalog.SourcedRow, ...]:
        """SageMaker training instance types with list prices, source and as-of date: backends/sagemaker/catalog.csv."""
        return catalog.rows_from_csv(CATALOG_CSV)

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # Validated here too: status/logs/cancel build the backend from config.toml alone.
        self.settings = settings_model().model_validate(dict(settings or {})).model_dump()
        self._clients: dict[str, Any] = {}
        if client is not None:
            self._clients["sagemaker"] = client

    # -- configuration -----------------------------------------------------------

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        """Cheap checks only (no boto3 import, no network): SDK present, credentials and role findable."""
        if (absent := SDK.readiness()) is not None:
            return absent
        has_credentials = bool(
            os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE") or settings.get("profile")
            or os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") or os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            or Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")).expanduser().exists()
            or Path(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")).expanduser().exists())
        region = settings.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        missing = []
        if not has_credentials:
            missing.append("AWS credentials (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID)")
        if not region:
            missing.append("a region (backends.sagemaker.region or AWS_REGION)")
        if not settings.get("role_arn"):
            missing.append("an execution role (backends.sagemaker.role_arn)")
        if missing:
            return Readiness(True, False, "not configured", "set " + "; ".join(missing))
        return Readiness(True, True, f"region {region}, role {settings['role_arn']}")

    def _configured_region(self) -> str | None:
        return self.settings.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")

    def _region(self) -> str:
        region = self._configured_region()
        if not region:
            raise UsageError("no AWS region for SageMaker",
                             "set backends.sagemaker.region in the spec or config.toml, or AWS_REGION")
        return str(region)

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        settings = self.settings
        problems: list[Problem] = []
        name = training_job_name(job_id)
        region = self._configured_region()
        if not region:  # reported with the other problems: one round of fixes, not one per run
            problems.append(spec.problem("backends.sagemaker.region", "SageMaker needs a region: set region: "
                                         "us-east-1 here or in config.toml, or export AWS_REGION"))
            region = "REGION"
        bucket = settings.get("bucket") or "launch-{account}-" + region
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
        instance_type = self._instance(spec, problems)
        runtime = spec.max_runtime or DEFAULT_RUNTIME_S
        if runtime > MAX_RUNTIME_S:
            problems.append(spec.problem("max_runtime", f"SageMaker stops training jobs after at most 28 days; "
                                         f"{durations.format_seconds(runtime)} is longer (checkpoint and resubmit)"))
        volume = self.settings.get("volume_size_gb") or spec.resources.disk_gb or DEFAULT_VOLUME_GB
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
        environment = {**node_environment(spec, job_id, secrets, output_dir="/opt/ml/model",
                                          checkpoint_dir=spec.checkpoint_dir or "/opt/ml/checkpoints",
                                          workdir="/opt/ml/launch/work"),
                       **files_env}
        channels = [_channel("launch", job_prefix)]
        if bundle is not None:
            channels.append(_channel("code", f"{where.bundles_uri}{bundle.digest}.tar.gz"))
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
        return Request(self.name, job_id, "CreateTrainingJob", payload, tuple(uploads))

    def _instance(self, spec: JobSpec, problems: list[Problem]) -> str:
        accel = spec.resources.accelerators
        explicit = self.settings.get("instance_type")
        if explicit:
            if explicit not in TRAINING_INSTANCE_TYPES:
                close = difflib.get_close_matches(explicit, TRAINING_INSTANCE_TYPES, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "e.g. ml.g5.2xlarge"
                problems.append(spec.problem("backends.sagemaker.instance_type",
                                             f"{explicit!r} is not a SageMaker training instance type; {hint}"))
            return str(explicit)
        if not accel.is_gpu:
            return self.cpu_instance_type
        try:  # the instance `launch plan` prices: the first meeting the cpus/memory minimums
            return catalog.choose(self.name, accel, cpus=spec.resources.cpus,
                                  memory_gb=spec.resources.memory_gb).instance_type
        except catalog.CatalogError as exc:
            field = "resources.accelerators" if not catalog.find(self.name, accel) else "resources"
            problems.append(spec.problem(field, f"{exc.message}; {exc.hint}"))
            return ""

    # -- AWS clients -------------------------------------------------------------

    def _client(self, service: str, region: str | None = None) -> Any:
        SDK.require()
        if service not in self._clients:
            endpoint = self.settings.get("endpoint_url") if service == "sagemaker" else None
            aws_environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
            self._clients[service] = _aws_client(self.settings.get("profile"), region or self._region(),
                                                 service, endpoint, aws_environment)
        return self._clients[service]

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Upload what is missing, then create the job. A create retried after a lost answer
        meets ResourceInUse; if that job carries our job-id tag it is ours, not an error."""
        payload = request.payload
        region = self._region()
        with _aws_errors("SageMaker"):
            bucket = self._ensure_bucket(payload)
            if "{account}" in str(payload):
                payload = _fill_bucket(payload, bucket)
            uploads = [_fill_upload(u, bucket) for u in request.uploads]
            s3 = self._client("s3", region)
            for upload in uploads:
                _upload(s3, upload)
            client = self._client("sagemaker", region)
            name = payload["TrainingJobName"]
            try:
                arn = client.create_training_job(**payload)["TrainingJobArn"]
            except client.exceptions.ResourceInUse:
                arn = self._adopt(client, name, request.job_id)
        return Handle(self.name, request.job_id, {"region": region, "name": name, "arn": arn,
                                                  "nodes": payload["ResourceConfig"]["InstanceCount"]})

    def _adopt(self, client: Any, name: str, job_id: str) -> str:
        arn = client.describe_training_job(TrainingJobName=name)["TrainingJobArn"]
        tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=arn).get("Tags", [])}
        if tags.get(JOB_ID_TAG) != job_id:
            raise BackendError(f"a SageMaker training job named {name} already exists and is not {job_id}",
                               "submit again: the next job id differs")
        return str(arn)

    def _ensure_bucket(self, payload: dict[str, Any]) -> str:
        """The configured bucket, or launch-<account>-<region>, created on first use."""
        if self.settings.get("bucket"):
            return str(self.settings["bucket"])
        region = self._region()
        account = self._client("sts", region).get_caller_identity()["Account"]
        bucket = f"launch-{account}-{region}"
        s3 = self._client("s3", region)
        from botocore.exceptions import ClientError

        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            logs.get().warning("creating S3 bucket %s for launch's code bundles (set backends.sagemaker.bucket "
                               "to use another)", bucket)
            extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            s3.create_bucket(Bucket=bucket, **extra)
        return bucket

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        with _aws_errors("SageMaker"):
            client = self._client("sagemaker", handle.data["region"])
            try:
                job = client.describe_training_job(TrainingJobName=handle.data["name"])
            except client.exceptions.ClientError as exc:
                if not _not_found(exc):
                    raise
                return Status(JobState.UNKNOWN, "NotFound", "SageMaker no longer knows this job")
        return _status_of(job, handle.data["region"])

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Generator[LogLine, None, dict[str, str]]:
        """New lines of every node's CloudWatch stream, merged in time order. The cursor is
        {stream: forward token}; CloudWatch resumes per page, not per line, so every line of
        one read carries the cursor after the whole read. Pages without events do not mean the
        end (CloudWatch gives them while the token moves on), so the cursor is also the generator's
        return value: a read that moved on without a line still moves whoever follows. Streams not
        created yet give nothing."""
        name = handle.data["name"]
        cursor: dict[str, str] = dict(since or {})
        events: list[tuple[int, int, str]] = []
        with _aws_errors("CloudWatch Logs"):
            client = self._client("logs", handle.data["region"])
            try:
                streams = _log_streams(client, name)
            except client.exceptions.ResourceNotFoundException:
                return cursor
            for stream in streams:
                rank = _stream_rank(name, stream)
                if rank is None or (node is not None and rank != node):
                    continue
                found, token = _read_stream(client, stream, cursor.get(stream))
                events.extend((timestamp, rank, message) for timestamp, message in found)
                if token:
                    cursor[stream] = token
        events.sort(key=lambda event: (event[0], event[1]))
        for _, rank, message in events:
            yield LogLine(message.rstrip("\n"), rank, cursor)
        return cursor

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """StopTrainingJob; a job that already ended (or is stopping) is left as it is."""
        with _aws_errors("SageMaker"):
            client = self._client("sagemaker", handle.data["region"])
            try:
                client.stop_training_job(TrainingJobName=handle.data["name"])
            except client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ValidationException":
                    raise
                # AWS answers ValidationException for a job that is no longer InProgress.

    # -- list --------------------------------------------------------------------

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        """Training jobs carrying our job-id tag, for `launch list --sync`."""
        region = self._region()
        with _aws_errors("SageMaker"):
            client = self._client("sagemaker", region)
            kwargs: dict[str, Any] = {"MaxResults": 100, "SortBy": "CreationTime", "SortOrder": "Descending"}
            if since:
                import datetime

                kwargs["CreationTimeAfter"] = datetime.datetime.fromtimestamp(since, tz=datetime.UTC)
            found = []
            for page in client.get_paginator("list_training_jobs").paginate(**kwargs):
                for item in page.get("TrainingJobSummaries", []):
                    tags = {t["Key"]: t["Value"]
                            for t in client.list_tags(ResourceArn=item["TrainingJobArn"]).get("Tags", [])}
                    if JOB_ID_TAG not in tags:
                        continue
                    job = client.describe_training_job(TrainingJobName=item["TrainingJobName"])
                    found.append((tags, job))
        for tags, job in found:
            job_id = tags[JOB_ID_TAG]
            handle = Handle(self.name, job_id, {"region": region, "name": job["TrainingJobName"],
                                                "arn": job["TrainingJobArn"],
                                                "nodes": job["ResourceConfig"]["InstanceCount"]})
            created = job.get("CreationTime")
            yield Summary(handle=handle, name=job_name(job_id), status=_status_of(job, region),
                          created_at=created.timestamp() if created else None,
                          idempotency_key=tags.get(IDEMPOTENCY_TAG))


def _not_found(exc: Any) -> bool:
    """AWS answers a missing training job with ValidationException "Requested resource not
    found." (the API reference says ResourceNotFound): accept both."""
    error = exc.response.get("Error", {})
    return error.get("Code") == "ResourceNotFound" or (
        error.get("Code") == "ValidationException" and "not found" in str(error.get("Message", "")).lower())


@functools.cache
def _aws_session(profile: str | None, region: str, aws_environment: tuple[tuple[str, str], ...]) -> Any:
    import boto3

    return boto3.session.Session(profile_name=profile, region_name=region)


@functools.cache
def _aws_client(profile: str | None, region: str, service: str, endpoint: str | None,
                aws_environment: tuple[tuple[str, str], ...]) -> Any:
    """One client per service for the whole process: building one loads botocore's service
    model from disk (~200 ms), which would dominate a sweep of submits. Clients are thread-safe.
    `aws_environment` (the AWS_* variables) is part of the key: they choose credentials and endpoints."""
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=60)
    return _aws_session(profile, region, aws_environment).client(service, endpoint_url=endpoint, config=config)


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


def _fill_bucket(value: Any, bucket: str) -> Any:
    """Swap the dry run's launch-{account}-<region> placeholder for the real bucket."""
    if isinstance(value, str):
        return re.sub(r"launch-\{account\}-[a-z0-9-]+", bucket, value)
    if isinstance(value, list):
        return [_fill_bucket(v, bucket) for v in value]
    if isinstance(value, dict):
        return {k: _fill_bucket(v, bucket) for k, v in value.items()}
    return value


def _fill_upload(upload: Upload, bucket: str) -> Upload:
    return Upload(upload.source, _fill_bucket(upload.destination, bucket), upload.content)


def _upload(s3: Any, upload: Upload) -> None:
    """Put one object. Bundles are content-addressed: one already there is not sent again.
    The job's own small files are new by construction, so they skip that round trip."""
    bucket, _, key = upload.destination.removeprefix("s3://").partition("/")
    if upload.content is not None:
        s3.put_object(Bucket=bucket, Key=key, Body=upload.content.encode())
        return
    assert upload.source is not None
    if "/bundles/" not in key:
        s3.put_object(Bucket=bucket, Key=key, Body=upload.source.read_bytes())
        return
    from botocore.exceptions import ClientError

    try:
        if s3.head_object(Bucket=bucket, Key=key).get("ContentLength") == upload.source.stat().st_size:
            return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.upload_file(str(upload.source), bucket, key)  # multipart for big bundles


def _status_of(job: Mapping[str, Any], region: str) -> Status:
    status = job.get("TrainingJobStatus", "")
    secondary = job.get("SecondaryStatus")
    state = map_state(status, secondary)
    message = job.get("FailureReason") or ""
    if secondary in TIMEOUT_MESSAGES and status == "Stopped":
        message = TIMEOUT_MESSAGES[secondary] + (f" ({message})" if message else "")
    started, ended = job.get("TrainingStartTime"), job.get("TrainingEndTime")
    return Status(state, f"{status}/{secondary}" if secondary else status, message,
                  exit_code=0 if state is JobState.SUCCEEDED else None,
                  started_at=started.timestamp() if started else None,
                  ended_at=ended.timestamp() if ended and state.is_terminal else None,
                  url=console_url(region, job.get("TrainingJobName", "")))


def _log_streams(client: Any, name: str) -> list[str]:
    streams: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{name}/"}
    while True:
        page = client.describe_log_streams(**kwargs)
        streams.extend(s["logStreamName"] for s in page.get("logStreams", []))
        if not page.get("nextToken"):
            return sorted(streams)
        kwargs["nextToken"] = page["nextToken"]


def _read_stream(client: Any, stream: str, token: str | None) -> tuple[list[tuple[int, str]], str | None]:
    """(timestamp, message) of the events after `token`, and the token to go on from. botocore's
    GetLogEvents documentation: the end of the stream is reached when nextForwardToken comes back as
    sent; a page may be empty while the token moves on, so an empty page is read past. After
    MAX_EMPTY_PAGES such pages in a row the read stops where it is, to go on at the next call."""
    found: list[tuple[int, str]] = []
    empty_pages = 0
    while True:
        kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        page = client.get_log_events(**kwargs)
        events = page.get("events") or []
        found.extend((event["timestamp"], event["message"]) for event in events)
        next_token = page.get("nextForwardToken") or token
        if next_token == token:
            return found, token
        token = next_token
        empty_pages = 0 if events else empty_pages + 1
        if empty_pages >= MAX_EMPTY_PAGES:
            return found, token


def _stream_rank(name: str, stream: str) -> int | None:
    """`<job>/algo-<n>-<epoch>` -> node rank n-1."""
    match = re.fullmatch(re.escape(name) + r"/algo-(\d+)-\d+", stream)
    return int(match.group(1)) - 1 if match else None


def _aws_errors(service: str) -> Any:
    """`with _aws_errors("SageMaker"):` turns botocore's exceptions into launch errors."""
    return translated(lambda exc: _aws_error(service, exc))


def _aws_error(service: str, exc: Exception) -> LaunchError | None:
    """Transient errors are retried by the runner; missing credentials exit 4 with what to
    set; the rest say what AWS said."""
    if not type(exc).__module__.startswith(("botocore", "boto3", "urllib3", "s3transfer")):
        return None
    from botocore import exceptions as be

    if isinstance(exc, (be.NoCredentialsError, be.PartialCredentialsError, be.ProfileNotFound,
                        be.CredentialRetrievalError, be.TokenRetrievalError, be.SSOTokenLoadError,
                        be.UnauthorizedSSOTokenError)):
        return BackendUnreachable(f"no usable AWS credentials: {exc}", "run `aws configure`, set AWS_PROFILE, "
                                  "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, (be.EndpointConnectionError, be.ConnectionClosedError, be.ReadTimeoutError,
                        be.ConnectTimeoutError)):
        return TransientBackendError(f"could not reach {service}: {exc}", "check your network or the region")
    if not isinstance(exc, be.ClientError):
        return BackendError(f"{service} error: {exc}")
    error = exc.response.get("Error", {})
    code, text = str(error.get("Code", "")), str(error.get("Message", ""))
    http = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in TRANSIENT_CODES or http >= 500:
        return TransientBackendError(f"{service} is busy ({code}): {text}")
    if code in CREDENTIAL_CODES:
        return BackendUnreachable(f"AWS rejected the credentials ({code}): {text}",
                                  "refresh them (aws sso login / aws configure) or check AWS_PROFILE")
    if code in ("AccessDenied", "AccessDeniedException"):  # credentials without the rights: exit 4, as 401
        return BackendUnreachable(f"AWS denied the request ({code}): {text}", "the credentials need SageMaker, S3 and "
                            "CloudWatch Logs permissions and iam:PassRole on the role")
    if code in CAPACITY_CODES:
        return CapacityError(f"SageMaker has no quota or capacity for this job ({code}): {text}",
                             "request a quota increase for this instance type in Service Quotas, pick another "
                             "accelerator, or list another backend after this one (--backend sagemaker,vertex)")
    return BackendError(f"{service} refused the request ({code}): {text}")
