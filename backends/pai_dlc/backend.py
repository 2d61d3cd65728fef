"""The `pai_dlc` backend: the spec as one PAI-DLC PyTorchJob, and the job's life after it.

Rendering is pure and lives in render.py; this module holds the class and the calls to DLC (through
the official alibabacloud-pai-dlc20201203 client) and to OSS (boto3 against OSS's S3-compatible
endpoint, reusing the SageMaker backend's content-addressed `storage.put`), each inside `dlc_errors`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.pai_dlc import render as rendering
from backends.pai_dlc.client import SDK, credentials, dlc_client, dlc_errors, oss_client
from backends.pai_dlc.render import IDEMPOTENCY_TAG, JOB_ID_TAG
from backends.pai_dlc.states import status_of
from launcher.backend import (
    Backend,
    Capabilities,
    Handle,
    LazySettings,
    LogLine,
    Readiness,
    Request,
    Status,
    Summary,
    Upload,
    is_job_id,
    job_name,
    shown_id,
)
from launcher.errors import BackendError, UsageError

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

CATALOG_CSV = Path(__file__).with_name("catalog.csv")
PAGE_SIZE = 100
POD_INDEX = re.compile(r"-(\d+)$")


class PaiDlcBackend(Backend):
    name: ClassVar[str] = rendering.NAME
    handle_fields: ClassVar[tuple[str, ...]] = ("region", "dlc_job_id")
    capabilities: ClassVar[Capabilities] = Capabilities(spot=False, log_poll_s=0.5)
    cpu_instance_type: ClassVar[str] = rendering.CPU_ECS_SPEC
    pinned_type_setting: ClassVar[str] = "ecs_spec"
    settings_model = LazySettings(rendering.settings_model)
    sdk = SDK
    catalog_csv = CATALOG_CSV

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # validated here too: status/logs/cancel build the backend from config.toml alone
        self.settings = rendering.settings_model().model_validate(dict(settings or {})).model_dump()
        self._dlc = client
        self._oss: Any = None
        self._credential: Any = None
        self._creates: set[str] = set()  # job ids this process has sent a CreateJob for

    # -- configuration -----------------------------------------------------------

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        """Cheap checks only (no SDK import, no network): SDK, credentials findable, workspace and bucket set."""
        if (absent := SDK.readiness()) is not None:
            return absent
        has_credentials = bool(
            os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID") or os.environ.get("ALIBABA_CLOUD_CREDENTIALS_FILE")
            or os.environ.get("ALIBABA_CLOUD_ECS_METADATA") or os.environ.get("ALIBABA_CLOUD_ROLE_ARN")
            or Path("~/.aliyun/config.json").expanduser().exists())
        missing = []
        if not has_credentials:
            missing.append("Alibaba Cloud credentials (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET or `aliyun configure`)")
        region = rendering.configured_region(settings)
        if not region:
            missing.append("a region (backends.pai_dlc.region or ALIBABA_CLOUD_REGION_ID)")
        for key in ("workspace_id", "bucket"):
            if not settings.get(key):
                missing.append(f"backends.pai_dlc.{key}")
        if missing:
            return Readiness(True, False, "not configured", "set " + "; ".join(missing))
        return Readiness(True, True, f"region {region}, workspace {settings['workspace_id']}")

    def _region(self) -> str:
        region = rendering.configured_region(self.settings)
        if not region:
            raise UsageError("no Alibaba Cloud region for PAI-DLC",
                             "set backends.pai_dlc.region in the spec or config.toml, or ALIBABA_CLOUD_REGION_ID")
        return str(region)

    def _client(self) -> Any:
        SDK.require()
        if self._dlc is None:
            with dlc_errors():
                self._credential = self._credential or credentials()
                self._dlc = dlc_client(self.settings, self._region(), self._credential)
        return self._dlc

    def _storage(self) -> Any:
        SDK.require()
        if self._oss is None:
            with dlc_errors():
                self._credential = self._credential or credentials()
                self._oss = oss_client(self.settings, self._region(), self._credential)
        return self._oss

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key)

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Upload what is missing (bundles once per digest), then CreateJob. DLC has no unique job name,
        so a create retried after a lost answer first looks for the job carrying our job-id tag."""
        from backends.sagemaker import storage

        client = self._client()
        oss = self._storage()
        from alibabacloud_pai_dlc20201203 import models

        with dlc_errors():
            for upload in request.uploads:
                storage.put(oss, Upload(upload.source, "s3://" + upload.destination.removeprefix("oss://"),
                                        upload.content))
            found = self._tagged(JOB_ID_TAG, request.job_id) if request.job_id in self._creates else []
            if found:
                dlc_id = str(found[0]["JobId"])
            else:
                self._creates.add(request.job_id)
                body = client.create_job(models.CreateJobRequest().from_map(request.payload)).body
                dlc_id = str(body.job_id or "")
        if not is_job_id(dlc_id):
            raise BackendError(f"PAI-DLC answered CreateJob with an unusable job id {shown_id(dlc_id)}")
        return self._handle(request.job_id, dlc_id, request.payload["JobSpecs"][0]["PodCount"])

    def _handle(self, job_id: str, dlc_id: str, nodes: Any) -> Handle:
        return Handle(self.name, job_id, {"region": self._region(), "dlc_job_id": dlc_id, "nodes": int(nodes or 1)})

    def _get(self, handle: Handle) -> dict[str, Any]:
        client = self._client()  # first: without the SDK, the install line
        from alibabacloud_pai_dlc20201203 import models

        with dlc_errors():
            return client.get_job(handle.data["dlc_job_id"], models.GetJobRequest()).body.to_map()

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        return status_of(self._get(handle), handle.data["region"])

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Generator[LogLine, None, dict[str, int]]:
        """New lines of every pod (GetJob's Pods, rank from the pod's index), one GetPodLogs per pod. The
        cursor is {pod id: lines already read}; a pod not scheduled yet gives nothing."""
        cursor = dict(since or {})
        pods = sorted(((self._rank(p, i), str(p.get("PodId") or "")) for i, p in
                       enumerate(self._get(handle).get("Pods") or [])), key=lambda pod: pod[0])
        client = self._client()
        from alibabacloud_pai_dlc20201203 import models

        for rank, pod in pods:
            if not pod or (node is not None and rank != node):
                continue
            with dlc_errors():
                lines = client.get_pod_logs(handle.data["dlc_job_id"], pod, models.GetPodLogsRequest()).body.logs
            lines = [str(line).rstrip("\n") for line in lines or []]
            seen = int(cursor.get(pod, 0))
            if len(lines) > seen:
                cursor[pod] = len(lines)
                yield LogLine("\n".join(lines[seen:]), rank, dict(cursor))
        return cursor

    @staticmethod
    def _rank(pod: Mapping[str, Any], position: int) -> int:
        match = POD_INDEX.search(str(pod.get("PodId") or ""))
        return int(match.group(1)) if match else position

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """StopJob, unless the job has already ended (it keeps its result)."""
        if self.status(handle).state.is_terminal:
            return
        client = self._client()
        try:
            with dlc_errors():
                client.stop_job(handle.data["dlc_job_id"])
        except BackendError:
            # refused: if the job ended between the two calls, there was nothing left to stop
            if not self.status(handle).state.is_terminal:
                raise

    # -- list --------------------------------------------------------------------

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        """The workspace's DLC jobs carrying our job-id tag, for `launch list --sync`."""
        return self._summaries(self._tagged(JOB_ID_TAG, None, since=since))

    def find(self, idempotency_key: str) -> Summary | None:
        """DLC filters ListJobs by tag: the job submitted with this key, if any."""
        return next(self._summaries(self._tagged(IDEMPOTENCY_TAG, idempotency_key)), None)

    def _tagged(self, tag: str, value: str | None, *, since: float | None = None) -> list[dict[str, Any]]:
        """ListJobs pages (newest first), filtered by the tag's value where given, else by its presence."""
        import datetime

        client = self._client()  # first: without the SDK, the install line
        from alibabacloud_pai_dlc20201203 import models

        found, page = [], 1
        query: dict[str, Any] = {"WorkspaceId": self.settings.get("workspace_id"), "PageSize": PAGE_SIZE,
                                 "SortBy": "GmtCreateTime", "Order": "desc"}
        if value is not None:
            query["Tags"] = {tag: value}
        if since:
            query["StartTime"] = datetime.datetime.fromtimestamp(since, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with dlc_errors():
            while True:
                body = client.list_jobs(models.ListJobsRequest().from_map({**query, "PageNumber": page})).body
                jobs = [job.to_map() for job in body.jobs or []]
                found += [j for j in jobs if tag in ((j.get("Settings") or {}).get("Tags") or {})]
                if len(jobs) < PAGE_SIZE or page * PAGE_SIZE >= int(body.total_count or 0):
                    return found
                page += 1

    def _summaries(self, jobs: list[dict[str, Any]]) -> Iterator[Summary]:
        from launcher.durations import iso_timestamp

        for job in jobs:
            tags = (job.get("Settings") or {}).get("Tags") or {}
            job_id, dlc_id = tags.get(JOB_ID_TAG), job.get("JobId")
            if not is_job_id(job_id) or not is_job_id(dlc_id):
                continue  # not ours, or a tag someone else wrote: never a path or a store key
            handle = self._handle(job_id, str(dlc_id), job.get("NodeCount"))
            yield Summary(handle=handle, name=job_name(job_id), status=status_of(job, handle.data["region"]),
                          created_at=iso_timestamp(job.get("GmtCreateTime")), idempotency_key=tags.get(IDEMPOTENCY_TAG))
