"""The `tione` backend: the spec as one TI-ONE training task, and the task's life after it.

Rendering is pure and lives in render.py; this module holds the class and the calls to TI-ONE (through
the official tencentcloud-sdk-python-tione client) and to COS (boto3 against COS's S3-compatible
endpoint, reusing the SageMaker backend's content-addressed `storage.put`), each inside `tione_errors`.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.tione import render as rendering
from backends.tione.client import SDK, cos_client, credentials, tione_client, tione_errors
from backends.tione.render import IDEMPOTENCY_TAG, JOB_ID_TAG
from backends.tione.states import status_of
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
from launcher.durations import iso_timestamp
from launcher.errors import BackendError, UsageError

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

CATALOG_CSV = Path(__file__).with_name("catalog.csv")
PAGE_SIZE = 50  # DescribeTrainingTasks' Limit: at most 50
LOG_LIMIT = 1000  # DescribeLogs' Limit: at most 1000
POD_INDEX = re.compile(r"-(\d+)$")


def _plain(model: Any) -> dict[str, Any]:
    """An SDK model as the API's JSON (the SDK's own serialisation, member names as on the wire)."""
    return json.loads(model.to_json_string())


class TioneBackend(Backend):
    name: ClassVar[str] = rendering.NAME
    handle_fields: ClassVar[tuple[str, ...]] = ("region", "task_id")
    capabilities: ClassVar[Capabilities] = Capabilities(spot=False, log_poll_s=0.5)
    cpu_instance_type: ClassVar[str] = rendering.CPU_INSTANCE_TYPE
    pinned_type_setting: ClassVar[str] = "instance_type"
    settings_model = LazySettings(rendering.settings_model)
    sdk = SDK
    catalog_csv = CATALOG_CSV

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # validated here too: status/logs/cancel build the backend from config.toml alone
        self.settings = rendering.settings_model().model_validate(dict(settings or {})).model_dump()
        self._tione = client
        self._cos: Any = None
        self._credential: Any = None
        self._creates: set[str] = set()  # job ids this process has sent a CreateTrainingTask for

    # -- configuration -----------------------------------------------------------

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        """Cheap checks only (no SDK import, no network): SDK, credentials findable, region and bucket set."""
        if (absent := SDK.readiness()) is not None:
            return absent
        profile = os.environ.get("TCCLI_PROFILE") or "default"
        has_credentials = bool(
            (os.environ.get("TENCENTCLOUD_SECRET_ID") and os.environ.get("TENCENTCLOUD_SECRET_KEY"))
            or Path("~/.tencentcloud/credentials").expanduser().exists()
            or Path("/etc/tencentcloud/credentials").exists()
            or (Path("~/.tccli").expanduser() / f"{profile}.credential").exists())
        missing = []
        if not has_credentials:
            missing.append("Tencent Cloud credentials (TENCENTCLOUD_SECRET_ID/_KEY or `tccli configure`)")
        region = rendering.configured_region(settings)
        if not region:
            missing.append("a region (backends.tione.region or TENCENTCLOUD_REGION)")
        if not settings.get("cos_bucket"):
            missing.append("backends.tione.cos_bucket")
        if missing:
            return Readiness(True, False, "not configured", "set " + "; ".join(missing))
        return Readiness(True, True, f"region {region}, {settings.get('charge_type') or rendering.POSTPAID}")

    def _region(self) -> str:
        region = rendering.configured_region(self.settings)
        if not region:
            raise UsageError("no Tencent Cloud region for TI-ONE",
                             "set backends.tione.region in the spec or config.toml, or TENCENTCLOUD_REGION")
        return region

    def _client(self) -> Any:
        SDK.require()
        if self._tione is None:
            with tione_errors():
                self._credential = self._credential or credentials()
                self._tione = tione_client(self.settings, self._region(), self._credential)
        return self._tione

    def _storage(self) -> Any:
        SDK.require()
        if self._cos is None:
            with tione_errors():
                self._credential = self._credential or credentials()
                self._cos = cos_client(self.settings, self._region(), self._credential)
        return self._cos

    def _call(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One TI-ONE action through the SDK's typed request and response models, answered as plain JSON."""
        client = self._client()  # first: without the SDK, the install line
        from tencentcloud.tione.v20211111 import models

        request = getattr(models, f"{action}Request")()
        with warnings.catch_warnings(record=True) as dropped:
            warnings.simplefilter("always")
            request.from_json_string(json.dumps(params))
        # the SDK drops a member its model does not know with only a warning ("X fileds are useless"): a
        # request that would reach TI-ONE without it is ours to refuse, never to send
        unknown = [str(w.message) for w in dropped if "are useless" in str(w.message)]
        if unknown:
            raise BackendError(f"the installed TI-ONE SDK has no {action} member {'; '.join(unknown)}",
                               f"upgrade it: {SDK.install_line()}")
        with tione_errors(), warnings.catch_warnings():
            # an answer member newer than the installed SDK is dropped with the same warning: not the user's
            # to act on (the fake holds its answers to the SDK's models instead)
            warnings.filterwarnings("ignore", message=".*are useless")
            return _plain(getattr(client, action)(request))

    def _scoped(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.settings.get("project_id"):
            params["TiProjectId"] = self.settings["project_id"]
        return params

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key)

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Upload what is missing (bundles once per digest), then CreateTrainingTask. TI-ONE has no unique
        task name, so a create retried after a lost answer first looks for the task carrying our job-id tag."""
        from backends.sagemaker import storage

        self._client()
        cos = self._storage()
        with tione_errors():
            for upload in request.uploads:
                storage.put(cos, Upload(upload.source, "s3://" + upload.destination.removeprefix("cos://"),
                                        upload.content))
        found = self._tagged(JOB_ID_TAG, request.job_id) if request.job_id in self._creates else []
        if found:
            task_id = str(found[0].get("Id") or "")
        else:
            self._creates.add(request.job_id)
            task_id = str(self._call("CreateTrainingTask", request.payload).get("Id") or "")
        if not is_job_id(task_id):
            raise BackendError(f"TI-ONE answered CreateTrainingTask with an unusable task id {shown_id(task_id)}")
        return self._handle(request.job_id, task_id, request.payload["ResourceConfigInfos"][0]["InstanceNum"])

    def _handle(self, job_id: str, task_id: str, nodes: Any) -> Handle:
        return Handle(self.name, job_id, {"region": self._region(), "task_id": task_id, "nodes": int(nodes or 1)})

    def _task(self, handle: Handle) -> dict[str, Any]:
        answer = self._call("DescribeTrainingTask", self._scoped({"Id": handle.data["task_id"]}))
        return answer.get("TrainingTaskDetail") or {}

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        return status_of(self._task(handle), handle.data["region"])

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Generator[LogLine, None, dict[str, str]]:
        """New lines of every pod (DescribeTrainingTaskPods, rank from the pod name's index), read with
        DescribeLogs of the task's latest instance, oldest first. The cursor is {pod: DescribeLogs Context},
        so each call asks only for what came after the last line read; a pod not scheduled yet gives nothing."""
        cursor = dict(since or {})
        task = self._task(handle)
        instance = str(task.get("LatestInstanceId") or "")
        if not instance:
            return cursor
        pods = self._call("DescribeTrainingTaskPods", self._scoped({"Id": handle.data["task_id"]}))
        names = [str(name) for name in pods.get("PodNames") or [] if name]
        ranked = sorted((self._rank(name, i), name) for i, name in enumerate(names))
        for rank, pod in ranked:
            if node is not None and rank != node:
                continue
            lines: list[str] = []
            while True:
                query = self._scoped({"Service": "TRAIN", "ServiceId": instance, "PodName": pod, "Order": "ASC",
                                      "Limit": LOG_LIMIT})
                if task.get("CreateTime"):
                    query["StartTime"] = task["CreateTime"]  # the default is only the last hour
                if cursor.get(pod):
                    query["Context"] = cursor[pod]
                answer = self._call("DescribeLogs", query)
                page = [str(entry.get("Message") or "").rstrip("\n") for entry in answer.get("Content") or []]
                if answer.get("Context"):
                    cursor[pod] = str(answer["Context"])
                lines += page
                if len(page) < LOG_LIMIT:
                    break
            if lines:
                yield LogLine("\n".join(lines), rank, dict(cursor))
        return cursor

    @staticmethod
    def _rank(pod: str, position: int) -> int:
        match = POD_INDEX.search(pod)
        return int(match.group(1)) if match else position

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """StopTrainingTask, unless the task has already ended (it keeps its result)."""
        if self.status(handle).state.is_terminal:
            return
        try:
            self._call("StopTrainingTask", self._scoped({"Id": handle.data["task_id"]}))
        except BackendError:
            # refused: if the task ended between the two calls, there was nothing left to stop
            if not self.status(handle).state.is_terminal:
                raise

    # -- list --------------------------------------------------------------------

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        """The training tasks carrying our job-id tag, for `launch list --sync`."""
        return self._summaries(self._tagged(JOB_ID_TAG, None, since=since))

    def find(self, idempotency_key: str) -> Summary | None:
        """TI-ONE filters DescribeTrainingTasks by tag: the task submitted with this key, if any."""
        return next(self._summaries(self._tagged(IDEMPOTENCY_TAG, idempotency_key)), None)

    def _tagged(self, tag: str, value: str | None, *, since: float | None = None) -> list[dict[str, Any]]:
        """DescribeTrainingTasks pages (newest first), filtered by the tag's value where given, else by its
        presence; with `since`, paging stops at the first task created before it."""
        query: dict[str, Any] = self._scoped({"Limit": PAGE_SIZE, "OrderField": "CreateTime", "Order": "DESC"})
        if value is not None:
            query["TagFilters"] = [{"TagKey": tag, "TagValues": [value]}]
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            answer = self._call("DescribeTrainingTasks", {**query, "Offset": offset})
            tasks = answer.get("TrainingTaskSet") or []
            for task in tasks:
                created = iso_timestamp(task.get("CreateTime"))
                if since and created is not None and created < since:
                    return found
                if any(t.get("TagKey") == tag for t in task.get("Tags") or []):
                    found.append(task)
            offset += len(tasks)
            if len(tasks) < PAGE_SIZE or offset >= int(answer.get("TotalCount") or 0):
                return found

    def _summaries(self, tasks: list[dict[str, Any]]) -> Iterator[Summary]:
        for task in tasks:
            tags = {t.get("TagKey"): t.get("TagValue") for t in task.get("Tags") or []}
            job_id, task_id = tags.get(JOB_ID_TAG), task.get("Id")
            if not is_job_id(job_id) or not is_job_id(task_id):
                continue  # not ours, or a tag someone else wrote: never a path or a store key
            nodes = sum(int(r.get("InstanceNum") or 0) for r in task.get("ResourceConfigInfos") or []) or 1
            handle = self._handle(str(job_id), str(task_id), nodes)
            yield Summary(handle=handle, name=job_name(str(job_id)), status=status_of(task, handle.data["region"]),
                          created_at=iso_timestamp(task.get("CreateTime")), idempotency_key=tags.get(IDEMPOTENCY_TAG))
