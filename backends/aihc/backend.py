"""The `aihc` backend: the spec as one AIHC PyTorchJob, and the job's life after it.

Rendering is pure and lives in render.py; this module holds the class and the calls to AIHC (through
bce-python-sdk's signed transport, client.call) and to BOS (boto3 against BOS's S3-compatible endpoint,
reusing the SageMaker backend's content-addressed `storage.put`), each inside `aihc_errors`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.aihc import render as rendering
from backends.aihc.client import SDK, access_key, aihc_errors, bos_client, call, configuration
from backends.aihc.render import IDEMPOTENCY_LABEL, JOB_ID_LABEL
from backends.aihc.states import status_of
from launcher.backend import (
    IDEMPOTENCY_WINDOW_S,
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
from launcher.errors import BackendError

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

CATALOG_CSV = Path(__file__).with_name("catalog.csv")
PAGE_SIZE = 100
SERVERLESS_POOL = "aihc-serverless"  # a managed pool: its queries name the queue by id in queueID too
# a PyTorchJob's pods: <name>-master-0 is rank 0, <name>-worker-<i> is rank i + 1 (Kubeflow's order)
POD_ROLE = re.compile(r"-(master|worker)-(\d+)$")


class AihcBackend(Backend):
    name: ClassVar[str] = rendering.NAME
    handle_fields: ClassVar[tuple[str, ...]] = ("region", "resource_pool_id", "aihc_job_id")
    capabilities: ClassVar[Capabilities] = Capabilities(spot=False, log_poll_s=0.5)
    pinned_type_setting: ClassVar[str] = "resource_name"
    settings_model = LazySettings(rendering.settings_model)
    sdk = SDK
    catalog_csv = CATALOG_CSV
    machines_label: ClassVar[str] = "(your pool)"

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # validated here too: status/logs/cancel build the backend from config.toml alone
        self.settings = rendering.settings_model().model_validate(dict(settings or {})).model_dump()
        self._config = client  # the SDK client configuration (tests may hand one in)
        self._bos: Any = None
        self._creates: set[str] = set()  # job ids this process has sent a CreateJob for

    # -- configuration -----------------------------------------------------------

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        """Cheap checks only (no SDK import, no network): SDK, an AccessKey findable, pool, queue and bucket set."""
        if (absent := SDK.readiness()) is not None:
            return absent
        missing = []
        if not ((os.environ.get("BCE_ACCESS_KEY_ID") or settings.get("access_key_id"))
                and (os.environ.get("BCE_SECRET_ACCESS_KEY") or settings.get("secret_access_key"))):
            missing.append("an AccessKey (BCE_ACCESS_KEY_ID/BCE_SECRET_ACCESS_KEY, or access_key_id/"
                           "secret_access_key in [backends.aihc] of config.toml)")
        for key in ("resource_pool_id", "queue", "bos_bucket"):
            if not settings.get(key):
                missing.append(f"backends.aihc.{key}")
        if missing:
            return Readiness(True, False, "not configured", "set " + "; ".join(missing))
        return Readiness(True, True, f"region {settings.get('region') or 'bj'}, pool {settings['resource_pool_id']}, "
                                     f"queue {settings['queue']}")

    def _client(self) -> Any:
        SDK.require()
        if self._config is None:
            with aihc_errors():
                self._config = configuration(self.settings, access_key(self.settings))
        return self._config

    def _storage(self) -> Any:
        SDK.require()
        if self._bos is None:
            with aihc_errors():
                self._bos = bos_client(self.settings, access_key(self.settings))
        return self._bos

    def _call(self, action: str, handle_or_none: Handle | None, body: Mapping[str, Any]) -> dict[str, Any]:
        """One action on the job's pool and queue (the handle's, else the settings')."""
        where = handle_or_none.data if handle_or_none is not None else self.settings
        pool, queue = where.get("resource_pool_id"), where.get("queue")
        query = {"resourcePoolId": pool}
        if action != "DescribeJobs" or pool == SERVERLESS_POOL:
            query["queueID"] = queue
        config = self._client()
        with aihc_errors():
            return call(config, action, query, body)

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key)

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Upload what is missing (bundles once per digest), then CreateJob. CreateJob has no idempotency token,
        so a create retried after a lost answer first looks for the job carrying our job-id label."""
        from backends.sagemaker import storage

        config = self._client()
        bos = self._storage()
        with aihc_errors():
            for upload in request.uploads:
                storage.put(bos, Upload(upload.source, "s3://" + upload.destination.removeprefix("bos://"),
                                        upload.content))
        found = self._labelled(JOB_ID_LABEL, request.job_id) if request.job_id in self._creates else []
        if found:
            aihc_id = str(found[0].get("jobId") or "")
        else:
            self._creates.add(request.job_id)
            with aihc_errors():
                answer = call(config, request.payload["query"]["action"],
                              {k: v for k, v in request.payload["query"].items() if k != "action"},
                              request.payload["body"])
            aihc_id = str(answer.get("jobId") or "")
        if not is_job_id(aihc_id):
            raise BackendError(f"AIHC answered CreateJob with an unusable job id {shown_id(aihc_id)}")
        query = request.payload["query"]
        return self._handle(request.job_id, aihc_id, request.payload["body"]["jobSpec"]["replicas"],
                            query["resourcePoolId"], query["queueID"])

    def _handle(self, job_id: str, aihc_id: str, nodes: Any, pool: Any = None, queue: Any = None) -> Handle:
        return Handle(self.name, job_id, {"region": self.settings.get("region") or "bj",
                                          "resource_pool_id": pool or self.settings.get("resource_pool_id"),
                                          "queue": queue or self.settings.get("queue"),
                                          "aihc_job_id": aihc_id, "nodes": int(nodes or 1)})

    def _describe(self, handle: Handle) -> dict[str, Any]:
        return self._call("DescribeJob", handle, {"jobId": handle.data["aihc_job_id"], "needDetail": True})

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        return status_of(self._describe(handle), handle.data["region"], str(handle.data["resource_pool_id"]))

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Generator[LogLine, None, dict[str, int]]:
        """New lines of every pod (DescribeJob's pod list, rank from the pod's role), DescribeJobLogs per pod
        (every page, following nextMarker). The cursor is {pod name: lines already read}; a pod not
        scheduled yet gives nothing."""
        cursor = dict(since or {})
        pods = (self._describe(handle).get("podList") or {}).get("pods") or []
        named = sorted(((self._rank(p, i), str((p.get("objectMeta") or {}).get("name") or ""))
                        for i, p in enumerate(pods) if isinstance(p, Mapping)), key=lambda pod: pod[0])
        for rank, pod in named:
            if not pod or (node is not None and rank != node):
                continue
            lines = self._pod_lines(handle, pod)
            seen = int(cursor.get(pod, 0))
            if len(lines) > seen:
                cursor[pod] = len(lines)
                yield LogLine("\n".join(lines[seen:]), rank, dict(cursor))
        return cursor

    def _pod_lines(self, handle: Handle, pod: str) -> list[str]:
        lines: list[str] = []
        marker = ""
        for _ in range(10_000):  # a bound: a provider that keeps answering with a marker cannot loop us forever
            body = {"jobId": handle.data["aihc_job_id"], "podName": pod, **({"marker": marker} if marker else {})}
            answer = self._call("DescribeJobLogs", handle, body)
            lines += [str(line).rstrip("\n") for line in answer.get("logs") or []]
            marker = str(answer.get("nextMarker") or "")
            if not marker:
                break
        return lines

    @staticmethod
    def _rank(pod: Mapping[str, Any], position: int) -> int:
        match = POD_ROLE.search(str((pod.get("objectMeta") or {}).get("name") or ""))
        if not match:
            return position
        return 0 if match.group(1) == "master" else int(match.group(2)) + 1

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """StopJob, unless the job has already ended (it keeps its result)."""
        if self.status(handle).state.is_terminal:
            return
        try:
            self._call("StopJob", handle, {"jobId": handle.data["aihc_job_id"]})
        except BackendError:
            # refused: if the job ended between the two calls, there was nothing left to stop
            if not self.status(handle).state.is_terminal:
                raise

    # -- list --------------------------------------------------------------------

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        """The queue's AIHC jobs carrying our job-id label, for `launch list --sync`."""
        return self._summaries(self._labelled(JOB_ID_LABEL, None, since=since), None)

    def find(self, idempotency_key: str) -> Summary | None:
        """The job submitted with this key within the idempotency window, if any (its label holds the key's
        digest; DescribeJobs cannot filter by label, so the queue's newer jobs are read)."""
        import time

        jobs = self._labelled(IDEMPOTENCY_LABEL, rendering.idempotency_label(idempotency_key),
                              since=time.time() - IDEMPOTENCY_WINDOW_S)
        return next(self._summaries(jobs, idempotency_key), None)

    def _labelled(self, label: str, value: str | None, *, since: float | None = None) -> list[dict[str, Any]]:
        """DescribeJobs pages (newest first) filtered by the label's value where given, else by its presence.
        A job-id lookup narrows the pages by the job's name first (DescribeJobs filters by name, not label)."""
        found, page = [], 1
        body: dict[str, Any] = {"queue": self.settings.get("queue"), "orderBy": "createdAt", "order": "desc",
                                "pageSize": PAGE_SIZE}
        if label == JOB_ID_LABEL and value is not None:
            body.update(keywordType="name", keyword=rendering.job_name(value))
        while True:
            answer = self._call("DescribeJobs", None, {**body, "pageNumber": page})
            jobs = [j for j in answer.get("jobs") or [] if isinstance(j, Mapping)]
            for job in jobs:
                labels, created = _labels(job), iso_timestamp(job.get("createdAt"))
                if since and created is not None and created < since:
                    continue
                if label in labels and (value is None or labels[label] == value):
                    found.append(dict(job))
            oldest = iso_timestamp(jobs[-1].get("createdAt")) if jobs else None
            if (len(jobs) < PAGE_SIZE or page * PAGE_SIZE >= int(answer.get("totalCount") or 0)
                    or (since and oldest is not None and oldest < since)):
                return found
            page += 1

    def _summaries(self, jobs: list[dict[str, Any]], key: str | None) -> Iterator[Summary]:
        for job in jobs:
            labels = _labels(job)
            job_id, aihc_id = labels.get(JOB_ID_LABEL), job.get("jobId")
            if not is_job_id(job_id) or not is_job_id(aihc_id):
                continue  # not ours, or a label someone else wrote: never a path or a store key
            handle = self._handle(str(job_id), str(aihc_id), job.get("replicas"))
            yield Summary(handle=handle, name=job_name(str(job_id)),
                          status=status_of(job, handle.data["region"], str(handle.data["resource_pool_id"])),
                          created_at=iso_timestamp(job.get("createdAt")), idempotency_key=key)


def _labels(job: Mapping[str, Any]) -> dict[str, str]:
    """AIHC's labels ([{key, value}]) as a dict; entries of another shape are skipped."""
    return {str(item["key"]): str(item.get("value") or "") for item in job.get("labels") or []
            if isinstance(item, Mapping) and "key" in item}
