"""The `sagemaker` backend: the spec as one SageMaker CreateTrainingJob, and the job's life after it.

Rendering is pure and lives in render.py; this module holds the class and the calls to AWS, each
made through a client from clients.py inside `aws_errors`, so boto3 is imported only by the methods
that talk to AWS.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.sagemaker import logs as cloudwatch
from backends.sagemaker import render as rendering
from backends.sagemaker import storage
from backends.sagemaker.clients import SDK, aws_client
from backends.sagemaker.errors import aws_errors, not_found
from backends.sagemaker.render import IDEMPOTENCY_TAG, JOB_ID_TAG
from backends.sagemaker.states import status_of
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
    job_name,
)
from launcher.errors import BackendError, UsageError

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

# this backend's instance types and list prices; the core merges them into `launch catalog` and `plan`
CATALOG_CSV = Path(__file__).with_name("catalog.csv")


class SageMakerBackend(Backend):
    name: ClassVar[str] = rendering.NAME
    handle_fields: ClassVar[tuple[str, ...]] = ("region", "name")
    capabilities: ClassVar[Capabilities] = Capabilities(spot=True, log_settle_s=5.0, log_poll_s=1.0,
                                                        node_addresses=True)
    cpu_instance_type: ClassVar[str] = rendering.CPU_INSTANCE_TYPE  # `launch plan` names what the render picks
    settings_model = LazySettings(rendering.settings_model)
    sdk = SDK
    catalog_csv = CATALOG_CSV


    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # Validated here too: status/logs/cancel build the backend from config.toml alone.
        self.settings = rendering.settings_model().model_validate(dict(settings or {})).model_dump()
        self._clients: dict[str, Any] = {}
        if client is not None:
            self._clients["sagemaker"] = client

    # -- configuration -----------------------------------------------------------

    @classmethod
    def price_list(cls, settings: Mapping[str, Any], fetch: Any, instance_types: Sequence[str],
                   regions: Sequence[str]) -> list[Any]:
        from backends.sagemaker import prices

        return prices.price_list(settings, fetch, instance_types, regions)

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
        region = rendering.configured_region(settings)
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

    def _region(self) -> str:
        region = rendering.configured_region(self.settings)
        if not region:
            raise UsageError("no AWS region for SageMaker",
                             "set backends.sagemaker.region in the spec or config.toml, or AWS_REGION")
        return str(region)

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key)

    # -- AWS clients -------------------------------------------------------------

    def _client(self, service: str, region: str | None = None) -> Any:
        SDK.require()
        if service not in self._clients:
            endpoint = self.settings.get("endpoint_url") if service == "sagemaker" else None
            aws_environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
            self._clients[service] = aws_client(self.settings.get("profile"), region or self._region(),
                                                service, endpoint, aws_environment)
        return self._clients[service]

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Upload what is missing, then create the job. A create retried after a lost answer
        meets ResourceInUse; if that job carries our job-id tag it is ours, not an error."""
        payload = request.payload
        region = self._region()
        with aws_errors("SageMaker"):
            bucket = self._bucket()
            if "{account}" in str(payload):
                payload = rendering.fill_bucket(payload, bucket)
            uploads = [rendering.fill_upload(u, bucket) for u in request.uploads]
            s3 = self._client("s3", region)
            for upload in uploads:
                storage.put(s3, upload)
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

    def _bucket(self) -> str:
        """The configured bucket, or launch-<account>-<region>, created on first use."""
        if self.settings.get("bucket"):
            return str(self.settings["bucket"])
        region = self._region()
        return storage.default_bucket(self._client("sts", region), self._client("s3", region), region)

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        with aws_errors("SageMaker"):
            client = self._client("sagemaker", handle.data["region"])
            try:
                job = client.describe_training_job(TrainingJobName=handle.data["name"])
            except client.exceptions.ClientError as exc:
                if not not_found(exc):
                    raise
                return Status(JobState.UNKNOWN, "NotFound", "SageMaker no longer knows this job")
        return status_of(job, handle.data["region"])

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Generator[LogLine, None, dict[str, str]]:
        """New lines of every node's CloudWatch stream, merged in time order. The cursor is
        {stream: forward token}; CloudWatch resumes per page, not per line, so every line of
        one read carries the cursor after the whole read. Pages without events do not mean the
        end (CloudWatch gives them while the token moves on), so the cursor is also the generator's
        return value: a read that moved on without a line still moves whoever follows. Streams not
        created yet give nothing."""
        with aws_errors("CloudWatch Logs"):
            client = self._client("logs", handle.data["region"])
            events, cursor = cloudwatch.new_events(client, handle.data["name"], since, node)
        for _, rank, message in events:
            yield LogLine(message.rstrip("\n"), rank, cursor)
        return cursor

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """StopTrainingJob; a job that already ended (or is stopping) is left as it is."""
        with aws_errors("SageMaker"):
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
        with aws_errors("SageMaker"):
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
            yield Summary(handle=handle, name=job_name(job_id), status=status_of(job, region),
                          created_at=created.timestamp() if created else None,
                          idempotency_key=tags.get(IDEMPOTENCY_TAG))
