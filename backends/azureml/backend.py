"""The `azureml` backend: the spec as one Azure ML command job, through azure-ai-ml's MLClient.

Render (backends/azureml/render.py) builds the ARM body as a plain dict so a dry run never
imports the SDK; submit turns that body into the SDK's command job and PUTs it under our own job
name, so a submit retried after a lost answer finds the job instead of making a second. The SDK
registers the image as an environment and makes the bundle the job's code asset: an anonymous
asset it looks up by content hash first (CodeVersions list `hash=`), so a re-submit of an
unchanged tree references the asset already there and uploads nothing. An asset is registered
only after all its files are uploaded, so an interrupted upload leaves nothing a later submit finds.
Logs are the run-history log files (user_logs/std_log*.txt), read from where the last
read stopped with HTTP range requests.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.azureml import render as rendering
from backends.remote.nodes import log_blocks
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
    map_state,
)
from launcher.errors import (
    BackendError,
    BackendUnreachable,
    CapacityError,
    LaunchError,
    TransientBackendError,
    UsageError,
    translated,
)
from launcher.sdk import Sdk

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

SDK = Sdk("azureml", "azure-ai-ml", ("azure.ai.ml", "azure.identity"))
# this backend's instance types and list prices; the core merges them into `launch catalog` and `plan`
CATALOG_CSV = Path(__file__).with_name("catalog.csv")
# a bearer token (`az account get-access-token`) used instead of DefaultAzureCredential
TOKEN_ENV = "LAUNCH_AZURE_ACCESS_TOKEN"
PUBLIC_CLOUD = "AzureCloud"
STUDIO = "https://ml.azure.com"
# the staged code directory's name: part of the blob path of a new code asset, never of its content hash
CODE_STAGING = "bundle"

STATES: dict[str, JobState] = {
    "NotStarted": JobState.PENDING,
    "Queued": JobState.PENDING,
    "Paused": JobState.PENDING,
    "Starting": JobState.STARTING,
    "Provisioning": JobState.STARTING,
    "Preparing": JobState.STARTING,
    "Running": JobState.RUNNING,
    "Finalizing": JobState.RUNNING,
    "CancelRequested": JobState.CANCELLING,
    "Completed": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "Canceled": JobState.CANCELLED,
    "NotResponding": JobState.UNKNOWN,  # Azure lost the heartbeat; the job may come back
    "Unknown": JobState.UNKNOWN,
}
STATE_MESSAGES = {
    "NotResponding": "Azure ML has lost contact with the job",
    "Paused": "paused by Azure ML",
    "Queued": "waiting for compute quota or capacity",
}
# run-history log files: one std_log per process (one process per node here), older runtimes' driver logs
USER_LOG = re.compile(r"user_logs/std_log(?:_process_(\d+))?\.txt")
DRIVER_LOG = re.compile(r"azureml-logs/\d+_driver_log(?:_(\d+))?\.txt")


class AzureMLBackend(Backend):
    name: ClassVar[str] = "azureml"
    # Log files are uploaded while the job runs and finished during Finalizing (read as RUNNING), so little
    # can land after Completed; polls stay 2 s apart (run history is rate-limited per workspace).
    capabilities: ClassVar[Capabilities] = Capabilities(spot=True, log_settle_s=2.0, log_poll_s=2.0)
    cpu_instance_type: ClassVar[str] = rendering.DEFAULT_CPU_SIZE  # `launch plan` names what the render picks
    settings_model = LazySettings(rendering.settings_model)
    sdk = SDK
    catalog_csv = CATALOG_CSV


    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # Validated here too: status/logs/cancel build the backend from the record and config.
        self.settings = rendering.settings_model().model_validate(dict(settings or {})).model_dump()
        self._client = client

    # -- configuration -----------------------------------------------------------

    @classmethod
    def price_list(cls, settings: Mapping[str, Any], fetch: Any, instance_types: Sequence[str],
                   regions: Sequence[str]) -> list[Any]:
        from backends.azureml import prices

        return prices.price_list(settings, fetch, instance_types, regions)

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        if (absent := SDK.readiness()) is not None:
            return absent
        values = rendering.workspace_values(settings)
        missing = [k for k, v in values.items() if not v]
        if missing:
            return Readiness(True, False, f"no {', '.join(missing)}", rendering.missing_workspace_hint(missing))
        target = settings.get("compute") or "serverless compute"
        return Readiness(True, True, f"workspace {values['workspace_name']} ({values['resource_group']}), {target}")

    def _workspace(self, handle: Handle | None = None) -> rendering.Workspace:
        """The job's own workspace (kept in its handle), else the configured one."""
        if handle is not None and handle.data.get("workspace_name"):
            return rendering.Workspace(handle.data["subscription_id"], handle.data["resource_group"],
                                       handle.data["workspace_name"])
        values = rendering.workspace_values(self.settings)
        missing = [k for k, v in values.items() if not v]
        if missing:
            raise UsageError(f"no Azure ML {', '.join(missing)} configured", rendering.missing_workspace_hint(missing))
        return rendering.Workspace(**values)

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key)

    # -- client ------------------------------------------------------------------

    def _ml(self, workspace: rendering.Workspace) -> Any:
        """MLClient for the workspace. A configured `endpoint` (sovereign clouds, the tests' fake) is
        registered as a cloud of its own; azure-ai-ml keeps clouds process-wide, so the name is
        derived from the URL and a second client reuses it."""
        SDK.require()
        if self._client is None:
            self._client = _shared_client(workspace.subscription_id, workspace.resource_group,
                                          workspace.workspace_name, self.settings.get("endpoint"),
                                          os.environ.get(TOKEN_ENV))
        return self._client

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Check the compute, adopt a job already under our name, else stage the bundle as the code
        directory and create the job. The SDK reuses or uploads the code asset and registers the image."""
        props = request.payload["properties"]
        if rendering.holds_overlay_placeholder(props["command"]):
            raise BackendError("this job's code overlay was not in the bundle cache when it was rendered, so its "
                               "command holds the dry run's placeholder instead of the overlay",
                               "run `launch run` again: the tree is packed afresh")
        workspace = _workspace_of(request.operation)
        ml = self._ml(workspace)
        with _azure_errors():
            compute = (props.get("computeId") or "").rsplit("/", 1)[-1]
            if compute:
                self._check_compute(ml, compute, workspace)
            existing = _get_job(ml, request.job_id)
            if existing is not None:
                return self._handle(request.job_id, workspace, existing)
            staging = Path(tempfile.mkdtemp(prefix="launch-azureml-"))
            try:
                job = _command_job(props, request, staging / CODE_STAGING)
                with _sdk_prints_hidden():
                    created = ml.jobs.create_or_update(job)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return self._handle(request.job_id, workspace, created)

    def _check_compute(self, ml: Any, compute: str, workspace: rendering.Workspace) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            ml.compute.get(compute)
        except ResourceNotFoundError:
            raise BackendError(f"Azure ML workspace {workspace.workspace_name} has no compute named {compute!r}",
                               "set backends.azureml.compute to a cluster listed by `az ml compute list`, "
                               "or remove it to run on serverless compute") from None

    def _handle(self, job_id: str, workspace: rendering.Workspace, job: Any) -> Handle:
        return Handle(self.name, job_id, {
            "name": job.name, "subscription_id": workspace.subscription_id,
            "resource_group": workspace.resource_group, "workspace_name": workspace.workspace_name,
            "nodes": int(getattr(job.resources, "instance_count", None) or 1),
            "url": job.studio_url or _studio_url(workspace, job.name)})

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        workspace = self._workspace(handle)
        ml = self._ml(workspace)
        with _azure_errors():
            job = _get_job(ml, handle.data["name"])
            if job is None:
                return Status(JobState.UNKNOWN, "NotFound", "Azure ML no longer knows this job")
            status = _status_of(job, handle.data.get("url"))
            if status.state is JobState.FAILED:
                status = Status(status.state, status.raw_state, _failure_message(ml, job.name) or "the job failed",
                                status.exit_code, status.started_at, status.ended_at, status.url)
        return status

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """New complete lines of each node's log since `since` ({rank: byte offset}); a partial last
        line waits until the job has ended."""
        offsets = {int(k): int(v) for k, v in dict(since or {}).items()}
        ml = self._ml(self._workspace(handle))
        with _azure_errors():
            details = ml.jobs._runs_operations.get_run_details(handle.data["name"])  # no public API lists them
        finished = map_state(STATES, str(details.status or "")).is_terminal
        for rank, url in sorted(_node_logs(details.log_files or {}).items()):
            if node is not None and rank != node:
                continue
            data = _read_from(url, offsets.get(rank, 0))
            if data:
                yield from log_blocks([data], rank, offsets, finished=finished)

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """begin_cancel and wait for Azure to accept it; a job that ended or vanished is left alone."""
        ml = self._ml(self._workspace(handle))
        with _azure_errors():
            job = _get_job(ml, handle.data["name"])
            if job is None or map_state(STATES, _raw(job.status)).is_terminal:
                return
            ml.jobs.begin_cancel(handle.data["name"]).result()

    # -- list --------------------------------------------------------------------

    def find(self, idempotency_key: str) -> Summary | None:
        """The job tagged with this idempotency key, if the workspace has one."""
        return next((s for s in self._summaries(rendering.IDEMPOTENCY_TAG) if s.idempotency_key == idempotency_key),
                    None)

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        return self._summaries(rendering.JOB_ID_TAG, since=since)

    def _summaries(self, tag: str, since: float | None = None) -> Iterator[Summary]:
        workspace = self._workspace()
        ml = self._ml(workspace)
        with _azure_errors():
            jobs = [j for j in ml.jobs.list(tag=tag) if j is not None]
        for job in jobs:
            tags = dict(job.tags or {})
            job_id = tags.get(rendering.JOB_ID_TAG)
            if not job_id:
                continue
            created_at = getattr(job.creation_context, "created_at", None)
            created = created_at.timestamp() if created_at else None
            if since is not None and created is not None and created < since:
                continue
            handle = self._handle(job_id, workspace, job)
            yield Summary(handle=handle, name=job.experiment_name or job_name(job_id),
                          status=_status_of(job, handle.data["url"]), created_at=created,
                          idempotency_key=tags.get(rendering.IDEMPOTENCY_TAG))


# -- helpers ---------------------------------------------------------------------


@functools.cache
def _shared_client(subscription_id: str, resource_group: str, workspace_name: str, endpoint: str | None,
                   token: str | None) -> Any:
    """One MLClient per workspace (and token) per process: a sweep's submits reuse its kept-alive
    TLS connections instead of opening new ones per job (a new connection cost ~30 ms a request)."""
    from azure.ai.ml import MLClient

    _quiet_sdk_logging()
    cloud: dict[str, Any] = {"cloud": PUBLIC_CLOUD}
    if endpoint:
        url = endpoint.rstrip("/") + "/"
        host = url.split("//", 1)[1].split("/", 1)[0].split(":")[0]
        cloud = {"cloud": "launch-" + hashlib.sha256(url.encode()).hexdigest()[:12],
                 "cloud_metadata": {"azure_portal": url, "resource_manager": url, "active_directory": url,
                                    "aml_resource_id": url, "storage_endpoint": host,
                                    "registry_discovery_endpoint": url}}
    # show_progress stays on: with it off, azure-ai-ml never reads the results of its code-upload threads, so
    # a refused blob PUT (403, an expired SAS) leaves create_or_update waiting forever for a file count that
    # never completes (_asset_utils.upload_directory). The bar goes where _sdk_prints_hidden sends stderr.
    return MLClient(_credential(), subscription_id, resource_group, workspace_name, enable_telemetry=False,
                    show_progress=True, **cloud)


def _credential() -> Any:
    """A static bearer token from LAUNCH_AZURE_ACCESS_TOKEN when set (CI that already holds one, the
    tests' fake), else DefaultAzureCredential: environment, managed identity, az login, ..."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return StaticToken(token)
    from azure.identity import DefaultAzureCredential

    try:
        return DefaultAzureCredential()
    except ValueError as exc:  # e.g. AZURE_CLIENT_ID set but empty
        raise BackendUnreachable(f"the Azure credential settings are not usable: {exc}",
                                 "check the AZURE_* variables (an empty one counts as set), or use `az login`") \
            from None


class StaticToken:
    """azure-core's TokenCredential protocol over one token (expiry unknown: claimed for an hour)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        import time

        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3600)


def _quiet_sdk_logging() -> None:
    """azure-ai-ml warns about experimental classes on import and more while working: keep the
    user's terminal to launch's own messages unless they asked for detail."""
    import logging

    from launcher import logs

    if logs.get().isEnabledFor(logging.DEBUG):
        return
    # some SDK modules give their logger an INFO level and a stderr handler of its own at import
    names = [n for n in logging.root.manager.loggerDict if n.startswith(("azure", "azureml"))]
    for name in ("azure", "azureml", *names):
        logging.getLogger(name).setLevel(logging.ERROR)


def _sdk_prints_hidden() -> Any:
    """The code upload's progress bar and colour-reset line go to stderr: hidden unless the user asked
    for detail (errors still arrive as exceptions)."""
    import contextlib
    import io
    import logging

    from launcher import logs

    if logs.get().isEnabledFor(logging.DEBUG):
        return contextlib.nullcontext()
    return contextlib.redirect_stderr(io.StringIO())


def _workspace_of(operation: str) -> rendering.Workspace:
    match = re.search(r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                      r"Microsoft\.MachineLearningServices/workspaces/([^/]+)/", operation)
    if match is None:
        raise BackendError(f"not an Azure ML job operation: {operation}", "render the request with this backend")
    return rendering.Workspace(*match.groups())


def _studio_url(workspace: rendering.Workspace, name: str) -> str:
    return f"{STUDIO}/runs/{name}?wsid={workspace.arm_id}"


def stage_code_dir(request: Request, code_dir: Path) -> None:
    """Lay the request's uploads (the bundle files, nothing of the job's own) out as the directory the
    SDK makes the job's code asset: each node starts in a copy of it. Its content hash names the asset,
    so the same bundle gives the same asset whatever the job."""
    code_dir.mkdir(parents=True)
    for upload in request.uploads:
        target = code_dir / upload.destination.removeprefix(rendering.CODE_DIR)
        if upload.content is not None:
            target.write_text(upload.content, encoding="utf-8")
        else:
            shutil.copyfile(upload.source, target)


def _command_job(props: Mapping[str, Any], request: Request, code_dir: Path) -> Any:
    """The SDK's command job for the rendered body: every field comes from the body, so what the
    SDK sends is what the dry run showed (apart from the ids of what it uploads)."""
    import isodate
    from azure.ai.ml import command
    from azure.ai.ml.entities import Environment, QueueSettings

    if request.uploads:
        stage_code_dir(request, code_dir)
    prefix, _, suffix = rendering.ENVIRONMENT_ID.partition("{image}")
    image = props["environmentId"].removeprefix(prefix).removesuffix(suffix)
    resources = props["resources"]
    options: dict[str, Any] = {}
    if props.get("computeId"):
        options["compute"] = props["computeId"].rsplit("/", 1)[-1]
    if resources.get("instanceType"):
        options["instance_type"] = resources["instanceType"]
    if resources.get("shmSize"):
        options["shm_size"] = resources["shmSize"]
    if props.get("distribution"):
        options["distribution"] = {"type": "pytorch",
                                   "process_count_per_instance": props["distribution"]["processCountPerInstance"]}
    if props.get("limits"):
        options["timeout"] = int(isodate.parse_duration(props["limits"]["timeout"]).total_seconds())
    if props.get("queueSettings"):
        options["queue_settings"] = QueueSettings(job_tier=props["queueSettings"]["jobTier"].lower())
    return command(name=request.job_id, display_name=props["displayName"], experiment_name=props["experimentName"],
                   command=props["command"], code=str(code_dir) if request.uploads else None,
                   environment=Environment(image=image),
                   environment_variables=dict(props["environmentVariables"]), tags=dict(props["tags"]),
                   instance_count=resources["instanceCount"], **options)


def _get_job(ml: Any, name: str) -> Any:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return ml.jobs.get(name)
    except ResourceNotFoundError:
        return None


def _raw(status: Any) -> str:
    return str(getattr(status, "value", status) or "")


def _status_of(job: Any, url: str | None) -> Status:
    raw = _raw(job.status)
    state = map_state(STATES, raw)
    return Status(state, raw, STATE_MESSAGES.get(raw, ""), exit_code=0 if state is JobState.SUCCEEDED else None,
                  url=job.studio_url or url)


def _failure_message(ml: Any, name: str) -> str:
    """Why a job failed, from its run-history error (best effort: the state is already known)."""
    try:
        details = ml.jobs._runs_operations.get_run_details(name)
        return str(details.error.error.message or "")
    except Exception:  # a missing explanation must not hide the FAILED state
        return ""


def _node_logs(files: Mapping[str, str]) -> dict[int, str]:
    """Node rank -> URL of its log: user_logs/std_log*.txt, or the older azureml-logs driver logs."""
    for pattern in (USER_LOG, DRIVER_LOG):
        found = {}
        for path, url in files.items():
            match = pattern.fullmatch(path)
            if match:
                found[int(match.group(1) or 0)] = url
        if found:
            return found
    return {}


def _read_from(url: str, offset: int) -> bytes:
    """The log's bytes from `offset` on (a SAS URL: no credential needed); nothing new answers 416."""
    import requests

    response = requests.get(url, headers={"Range": f"bytes={offset}-", "x-ms-version": "2021-08-06"}, timeout=60)
    if response.status_code == 416:
        return b""
    if response.status_code >= 400:
        raise TransientBackendError(f"Azure ML run history answered {response.status_code} for a log file")
    if response.status_code == 200 and offset:  # a server that ignores Range sends the whole file
        return response.content[offset:]
    return response.content


def _azure_errors() -> Any:
    return translated(_azure_error)


def _azure_error(exc: Exception) -> LaunchError | None:
    """Credentials and permissions exit 4 with the fix; throttling, 5xx and dropped connections are
    retried by the runner; anything else the service refused is one message."""
    if not type(exc).__module__.startswith(("azure", "requests", "urllib3", "msrest")):
        return None
    from azure.core import exceptions as aexc

    hint = (f"run `az login`, set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or put a token from "
            f"`az account get-access-token` in {TOKEN_ENV}")
    message = _message(exc)
    if isinstance(exc, aexc.ClientAuthenticationError):
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            return BackendUnreachable(f"Azure rejected the credentials ({status}): {message}", hint)
        return BackendUnreachable(f"no usable Azure credentials: {message}", hint)
    if isinstance(exc, aexc.HttpResponseError):
        status = exc.status_code or 0
        if status == 401:
            return BackendUnreachable(f"Azure rejected the credentials: {message}", hint)
        if status == 403:
            return BackendUnreachable(f"Azure denied access to the workspace: {message}",
                                      "the identity needs the AzureML Data Scientist role (or Contributor) on it")
        if _is_capacity(exc, message):
            return CapacityError(f"Azure ML has no quota or capacity for this job: {message}",
                                 "request more quota for this VM family (Azure portal: Quotas), pick another "
                                 "accelerator or region, or list another backend after this one "
                                 "(--backend azureml,vertex)")
        if status == 429 or status >= 500:
            return TransientBackendError(f"Azure ML is unavailable ({status}): {message}")
        if status == 404 and "workspace" in message.lower():
            return BackendError(f"Azure ML workspace not found: {message}",
                                "check backends.azureml.subscription_id, resource_group and workspace_name")
        return BackendError(f"Azure ML refused the request: {message}")
    if isinstance(exc, (aexc.ServiceRequestError, aexc.ServiceResponseError)) or \
            type(exc).__module__.startswith(("requests", "urllib3")) or _dropped_connection(exc):
        return TransientBackendError(f"could not reach Azure ML: {message}",
                                     "check backends.azureml.endpoint and your network")
    return BackendError(f"Azure ML: {message}")


def _dropped_connection(exc: BaseException) -> bool:
    """The SDK wraps a connection dropped during the code upload in its own AssetException;
    what it wraps (or its text) says it is worth a retry."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if type(seen).__module__.startswith(("requests", "urllib3", "http.client")) or \
                isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return "Connection aborted" in str(exc) or "Connection reset" in str(exc)


# refusals for want of quota or machines (ARM and Azure ML codes): nothing was created
CAPACITY_CODES = {"QuotaExceeded", "ResourceQuotaExceeded", "InsufficientQuota", "InsufficientCapacity",
                  "JobNodeCountExceedsCoreQuota", "ClusterMinNodesExceedCoreQuota", "SkuNotAvailable",
                  "AllocationFailed", "ZonalAllocationFailed"}


def _is_capacity(exc: Exception, message: str) -> bool:
    code = str(getattr(getattr(exc, "error", None), "code", "") or "")
    return code in CAPACITY_CODES or code.endswith("CoreQuota") or "vcpu quota" in message.lower()


def _message(exc: Exception) -> str:
    error = getattr(exc, "error", None)
    text = getattr(error, "message", None) or getattr(exc, "message", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
