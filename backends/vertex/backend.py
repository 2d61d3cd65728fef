"""The `vertex` backend: the spec as one Vertex AI CustomJob.

Render builds a plain dict (a dry run stays fast and never imports the ~1 s
google-cloud-aiplatform package); submit parses it into the official
`aiplatform_v1.CustomJob` proto, so a wrong field name fails before anything is
sent. Code and bootstrap go to the staging bucket and are read on the nodes
through the /gcs/<bucket> Cloud Storage FUSE mount Vertex provides; the
bootstrap derives rank and master from CLUSTER_SPEC.
"""

from __future__ import annotations

import configparser
import functools
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from launcher import catalog
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

SDK = Sdk("vertex", "google-cloud-aiplatform", ("google.cloud.aiplatform_v1", "google.cloud.storage", "google.auth"))
# this backend's instance types and list prices; the core merges them into `launch catalog` and `plan`
CATALOG_CSV = Path(__file__).with_name("catalog.csv")
# underscores: label keys may hold "-", but Vertex's list-filter grammar is only documented for "_"
JOB_ID_LABEL = "launch_job_id"
IDEMPOTENCY_LABEL = "launch_idempotency_key"
# Every Vertex and Logging call gets this timeout: the SDK's default for custom-job calls is none, so an
# answer lost on the way would hold `launch run` forever. A timed-out create is found again by its label.
API_TIMEOUT_S = 60.0
DEFAULT_RUNTIME_S = 7 * 24 * 3600  # Vertex's own default timeout
DEFAULT_DISK_GB = 100
LOGGING_ENDPOINT = "https://logging.googleapis.com"
LOG_LOOKBACK_S = 60  # how late Cloud Logging entries may arrive and still be shown
# How a node learns its place (sourced by bootstrap.sh through LAUNCH_TOPOLOGY). Vertex sets
# CLUSTER_SPEC: {"cluster":{"workerpool0":["host:port"],"workerpool1":[...]},"task":{"type":
# "workerpool1","index":0},...}. Pool 0 is the chief (rank 0); pool 1's replica i is rank 1+i;
# the master is pool 0's host.
TOPOLOGY = r"""if [ -n "${CLUSTER_SPEC:-}" ]; then
    topo_flat=$(printf '%s' "$CLUSTER_SPEC" | tr -d ' \n\t\r')
    topo_task=${topo_flat#*\"task\":}
    topo_type=$(printf '%s' "$topo_task" | sed -n 's/^{[^}]*"type":"\([^"]*\)".*/\1/p')
    topo_index=$(printf '%s' "$topo_task" | sed -n 's/^{[^}]*"index":\([0-9]*\).*/\1/p')
    topo_master=$(printf '%s' "$topo_flat" | sed -n 's/.*"workerpool0":\["\([^":]*\).*/\1/p')
    [ -n "$topo_master" ] && LAUNCH_MASTER_ADDR=$topo_master
    case "$topo_type" in
        workerpool0) LAUNCH_NODE_RANK=0 ;;
        workerpool1) LAUNCH_NODE_RANK=$((1 + ${topo_index:-0})) ;;
    esac
fi
"""

STATES: dict[str, JobState] = {
    "JOB_STATE_QUEUED": JobState.PENDING,
    "JOB_STATE_PENDING": JobState.PENDING,
    "JOB_STATE_RUNNING": JobState.RUNNING,
    "JOB_STATE_SUCCEEDED": JobState.SUCCEEDED,
    "JOB_STATE_FAILED": JobState.FAILED,
    "JOB_STATE_CANCELLING": JobState.CANCELLING,
    "JOB_STATE_CANCELLED": JobState.CANCELLED,
    "JOB_STATE_PAUSED": JobState.PENDING,
    "JOB_STATE_EXPIRED": JobState.FAILED,
    "JOB_STATE_UPDATING": JobState.RUNNING,
    "JOB_STATE_PARTIALLY_SUCCEEDED": JobState.FAILED,
}
STATE_MESSAGES = {
    "JOB_STATE_EXPIRED": "expired before it could run",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "only some workers succeeded",
}
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
G2_L4_COUNTS = {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1,
                "g2-standard-32": 1, "g2-standard-24": 2, "g2-standard-48": 4, "g2-standard-96": 8}
A3_COUNTS = {"a3-highgpu-1g": 1, "a3-highgpu-2g": 2, "a3-highgpu-4g": 4, "a3-highgpu-8g": 8}


def map_state(raw: str) -> JobState:
    return STATES.get(raw, JobState.UNKNOWN)


def pair_problem(machine_type: str, accelerator_type: str, count: int) -> str | None:
    """Why Vertex would refuse this machine/accelerator pair, or None if it fits."""
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


def label_value(text: str) -> str:
    """A label value Vertex accepts (lowercase, digits, _ and -, <= 63 chars); a value that had
    to change keeps a short hash so two different inputs never collide."""
    clean = re.sub(r"[^a-z0-9_-]", "-", text.lower())
    if clean == text and len(clean) <= 63:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{clean[:54]}-{digest}"


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.vertex`: where the job runs and as whom."""
    from pydantic import BaseModel, ConfigDict, Field

    class VertexSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        project: str | None = Field(None, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", examples=["my-project"],
                                    description="a project id: 6-30 lowercase letters, digits, -")
        region: str | None = Field(None, pattern=r"^[a-z]+-[a-z]+\d+$", examples=["us-central1"],
                                   description="a Google Cloud region")
        staging_bucket: str | None = Field(None, pattern=r"^(gs://)?[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/?$",
                                           examples=["gs://my-bucket"],
                                           description="gs://bucket for code bundles (read via /gcs FUSE)")
        prefix: str = Field("launch", pattern=r"^[A-Za-z0-9._/-]+$", examples=["launch", "team/runs"],
                            description="letters, digits and . _ / -")
        machine_type: str | None = Field(None, description="Overrides the catalog, e.g. n1-standard-8")
        boot_disk_type: str = "pd-ssd"
        service_account: str | None = None
        network: str | None = Field(None, description="projects/<number>/global/networks/<name>")
        api_endpoint: str | None = Field(None, description="Default: <region>-aiplatform.googleapis.com")
        storage_endpoint: str | None = None
        logging_endpoint: str | None = None

    return VertexSettings


def _gcloud_default(section: str, key: str) -> str | None:
    """The `gcloud config` default, read from its file (running gcloud would cost a second)."""
    base = Path(os.environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud")
    try:
        active = (base / "active_config").read_text().strip() or "default"
    except OSError:
        active = "default"
    parser = configparser.ConfigParser()
    try:
        parser.read(base / "configurations" / f"config_{active}")
        return parser.get(section, key, fallback=None)
    except configparser.Error:
        return None


class VertexBackend(Backend):
    name: ClassVar[str] = "vertex"
    capabilities: ClassVar[Capabilities] = Capabilities(spot=True, log_settle_s=5.0, log_poll_s=2.0)
    cpu_instance_type: ClassVar[str] = "n1-standard-4"  # a job that asks for no GPU; `launch plan` names it too
    settings_model = LazySettings(settings_model)
    pinned_type_setting: ClassVar[str] = "machine_type"  # backends.vertex.machine_type overrides the catalog

    @classmethod
    def catalog_rows(cls) -> tuple[catalog.SourcedRow, ...]:
        """Machine types with their accelerators, list prices, source and as-of date: vertex_catalog.csv."""
        return catalog.rows_from_csv(CATALOG_CSV)

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # Validated here too: status/logs/cancel build the backend from the record and config.
        self.settings = settings_model().model_validate(dict(settings or {})).model_dump()
        self._job_client = client
        self._session: Any = None

    # -- configuration -----------------------------------------------------------

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        if (absent := SDK.readiness()) is not None:
            return absent
        adc = Path(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
                   or Path.home() / ".config" / "gcloud" / "application_default_credentials.json")
        project = settings.get("project") or _project_from_environment()
        region = settings.get("region") or _region_from_environment()
        missing = []
        if not adc.exists():
            missing.append("credentials (gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)")
        if not project:
            missing.append("a project (backends.vertex.project or gcloud config set project)")
        if not region:
            missing.append("a region (backends.vertex.region or gcloud config set compute/region)")
        if not settings.get("staging_bucket"):
            missing.append("a staging bucket (backends.vertex.staging_bucket: gs://...)")
        if missing:
            return Readiness(True, False, "not configured", "set " + "; ".join(missing))
        return Readiness(True, True, f"project {project}, region {region}")

    def _project(self) -> str:
        project = self.settings.get("project") or _project_from_environment()
        if not project:
            raise UsageError("no Google Cloud project for Vertex AI",
                             "set backends.vertex.project, GOOGLE_CLOUD_PROJECT, or `gcloud config set project`")
        return str(project)

    def _region(self) -> str:
        region = self.settings.get("region") or _region_from_environment()
        if not region:
            raise UsageError("no region for Vertex AI",
                             "set backends.vertex.region (e.g. us-central1) or `gcloud config set compute/region`")
        return str(region)

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        settings = self.settings
        problems: list[Problem] = []
        project = settings.get("project") or _project_from_environment()
        region = settings.get("region") or _region_from_environment()
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
        machine = self._machine(spec, problems)
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
        return Request(self.name, job_id, f"projects/{project}/locations/{region}/customJobs", body, tuple(uploads))

    def _machine(self, spec: JobSpec, problems: list[Problem]) -> dict[str, Any]:
        accel = spec.resources.accelerators
        explicit = self.settings.get("machine_type")
        if not accel.is_gpu:
            return {"machine_type": explicit or self.cpu_instance_type}
        if explicit:
            offers = [o for o in catalog.backend_offers(self.name) if o.accelerator == accel.type]
            accelerator_type = offers[0].provider_accelerator if offers else ""
            machine = {"machine_type": explicit, "accelerator_type": accelerator_type,
                       "accelerator_count": accel.count}
        else:
            try:  # the machine `launch plan` prices: the first meeting the cpus/memory minimums
                offer = catalog.choose(self.name, accel, cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb)
            except catalog.CatalogError as exc:
                field = "resources.accelerators" if not catalog.find(self.name, accel) else "resources"
                problems.append(spec.problem(field, f"{exc.message}; {exc.hint}"))
                return {}
            machine = {"machine_type": offer.instance_type, "accelerator_type": offer.provider_accelerator,
                       "accelerator_count": accel.count}
        why = pair_problem(machine["machine_type"], machine["accelerator_type"], accel.count)
        if why:
            problems.append(spec.problem("backends.vertex.machine_type" if explicit else "resources.accelerators",
                                         why))
        return machine

    # -- clients -----------------------------------------------------------------

    def _credentials(self, endpoint: str | None) -> Any:
        """Application Default Credentials; never sent over plain http (a local endpoint)."""
        if endpoint and endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        import google.auth

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        return credentials

    def _jobs(self, region: str) -> Any:
        if self._job_client is None:
            from google.cloud import aiplatform_v1

            endpoint = self.settings.get("api_endpoint") or f"{region}-aiplatform.googleapis.com"
            self._job_client = aiplatform_v1.JobServiceClient(
                transport="rest", credentials=self._credentials(endpoint),
                client_options={"api_endpoint": endpoint})
        return self._job_client

    def _authorized_session(self) -> Any:
        if self._session is None:
            from google.auth.transport.requests import AuthorizedSession

            endpoint = self.settings.get("logging_endpoint") or LOGGING_ENDPOINT
            self._session = AuthorizedSession(self._credentials(endpoint))
        return self._session

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Look up, upload, create. Vertex's create is not idempotent, and its answer can be lost (a
        reset, a timeout) after the job was made. So a submit first looks for a job carrying our job-id
        label (made by an earlier attempt whose answer was lost, or by an earlier process) and adopts
        it before uploading anything (a re-upload that fails must not hide a job that exists)."""
        SDK.require()
        from google.cloud import aiplatform_v1
        from google.protobuf import json_format

        parent = request.operation.removesuffix("/customJobs")  # projects/<p>/locations/<region>
        region = parent.split("/")[3]
        job = aiplatform_v1.CustomJob()
        try:
            json_format.ParseDict(request.payload, job._pb)  # strict: a wrong field name fails here
        except json_format.ParseError as exc:
            raise BackendError(f"the rendered CustomJob does not match Vertex's schema: {exc}",
                               "this is a bug in launch's vertex backend; please report it") from exc
        with _google_errors("Vertex AI"):
            client = self._jobs(region)
            label = request.payload["labels"][JOB_ID_LABEL]
            found = self._find(client, parent, label)
            if found is None:
                self._upload(request.uploads)
                found = self._create(client, parent, label, job)
            return self._handle(request.job_id, found)

    def _create(self, client: Any, parent: str, label: str, job: Any) -> Any:
        """The job the create made. A create that failed as a timeout, a reset or a 5xx may have landed
        all the same, so before it is reported the job is looked for by its label and adopted if there.
        When it is not there, or that look fails too, the create's own (transient) error is what is
        raised, never the look's: the runner then retries the submit (which looks first) and, in the
        end, says the job may exist, instead of reporting a plain failure for a job that may run. The
        create is tried once here: retrying is the runner's (launcher/retry.py)."""
        try:
            return client.create_custom_job(parent=parent, custom_job=job, timeout=API_TIMEOUT_S)
        except Exception as exc:
            if not _is_transient(exc) or _is_quota(exc):
                raise  # refused (and any earlier create was looked for and not found): nothing was created
            try:
                found = self._find(client, parent, label)
            except Exception:
                raise exc from None
            if found is not None:
                return found
            raise

    def _find(self, client: Any, parent: str, label: str) -> Any:
        for job in client.list_custom_jobs(request={"parent": parent, "filter": f'labels.{JOB_ID_LABEL}="{label}"'},
                                           timeout=API_TIMEOUT_S):
            return job
        return None

    def _handle(self, job_id: str, job: Any) -> Handle:
        """Where the CustomJob lives, from its resource name (the same for created and listed jobs)."""
        parts = job.name.split("/")
        nodes = sum(int(p.replica_count or 1) for p in job.job_spec.worker_pool_specs)
        return Handle(self.name, job_id, {"name": job.name, "project": parts[1], "region": parts[3],
                                          "id": parts[-1], "nodes": nodes})

    def _upload(self, uploads: tuple[Upload, ...]) -> None:
        from google.cloud import storage

        endpoint = self.settings.get("storage_endpoint")
        options = {"api_endpoint": endpoint} if endpoint else None
        client = storage.Client(project=self._project(), credentials=self._credentials(endpoint),
                                client_options=options)
        for upload in uploads:
            bucket, _, key = upload.destination.removeprefix("gs://").partition("/")
            blob = client.bucket(bucket).blob(key)
            if upload.content is not None:
                blob.upload_from_string(upload.content, retry=_storage_retry())
            elif "/bundles/" in key and blob.exists(retry=_storage_retry()):
                continue  # content-addressed: already there
            else:
                blob.upload_from_filename(str(upload.source), retry=_storage_retry())

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        with _google_errors("Vertex AI"):
            from google.api_core import exceptions as gexc

            try:
                job = self._jobs(handle.data["region"]).get_custom_job(name=handle.data["name"], timeout=API_TIMEOUT_S)
            except gexc.NotFound:
                return Status(JobState.UNKNOWN, "NOT_FOUND", "Vertex no longer knows this job")
        return _status_of(job, handle)

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """Cloud Logging entries for the job, in timestamp order. Entries can arrive late, stamped
        earlier than ones already shown, so each poll looks back LOG_LOOKBACK_S before the newest
        timestamp shown and skips the insertIds it showed in that window: nothing twice, nothing lost.
        Cursor: {"ts": newest timestamp shown, "seen": [[timestamp, insertId], ...] in the window}."""
        cursor = dict(since or {})
        last_ts: str | None = cursor.get("ts")
        seen = {insert_id for _, insert_id in cursor.get("seen", [])}
        window = [tuple(pair) for pair in cursor.get("seen", [])]
        filters = ['resource.type="ml_job"', f'resource.labels.job_id="{handle.data["id"]}"']
        if node is not None:
            filters.append(f'resource.labels.task_name="{_task_name(node)}"')
        if last_ts:
            filters.append(f'timestamp>="{_seconds_before(last_ts, LOG_LOOKBACK_S)}"')
        body: dict[str, Any] = {"resourceNames": [f"projects/{handle.data['project']}"],
                                "filter": " AND ".join(filters), "orderBy": "timestamp asc", "pageSize": 1000}
        endpoint = (self.settings.get("logging_endpoint") or LOGGING_ENDPOINT).rstrip("/")
        entries: list[dict[str, Any]] = []
        with _google_errors("Cloud Logging"):
            session = self._authorized_session()
            while True:
                response = session.post(f"{endpoint}/v2/entries:list", json=body, timeout=API_TIMEOUT_S)
                _raise_for_status(response, "Cloud Logging")
                page = response.json()
                entries.extend(page.get("entries", []))
                if not page.get("nextPageToken"):
                    break
                body["pageToken"] = page["nextPageToken"]
        fresh = [e for e in entries if e.get("insertId", "") not in seen]
        for entry in fresh:
            ts, insert_id = entry.get("timestamp", ""), entry.get("insertId", "")
            last_ts = max(last_ts or ts, ts)
            window.append((ts, insert_id))
        if fresh:
            floor = _seconds_before(last_ts or "", LOG_LOOKBACK_S + 5)  # keep a margin past the query's window
            position = {"ts": last_ts, "seen": [list(p) for p in window if p[0] >= floor]}
        for entry in fresh:
            task = entry.get("resource", {}).get("labels", {}).get("task_name", "workerpool0-0")
            text = entry.get("textPayload")
            if text is None:
                text = (entry.get("jsonPayload") or {}).get("message", "")
            yield LogLine(str(text).rstrip("\n"), _rank(task), position)

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """`:cancel`; a job that already ended (FAILED_PRECONDITION) or vanished is left alone."""
        with _google_errors("Vertex AI"):
            from google.api_core import exceptions as gexc

            try:
                self._jobs(handle.data["region"]).cancel_custom_job(name=handle.data["name"], timeout=API_TIMEOUT_S)
            except gexc.NotFound:
                return
            except gexc.GoogleAPICallError as exc:
                # over REST every 400 is BadRequest; the status says it had already ended
                if _google_status(exc) != "FAILED_PRECONDITION" and not isinstance(exc, gexc.FailedPrecondition):
                    raise

    # -- list --------------------------------------------------------------------

    def find(self, idempotency_key: str) -> Summary | None:
        """The job labelled with this idempotency key (as render labelled it)."""
        wanted = label_value(idempotency_key)
        return next((s for s in self._summaries(f'labels.{IDEMPOTENCY_LABEL}="{wanted}"')), None)

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        return self._summaries(f"labels.{JOB_ID_LABEL}:*", since=since)

    def _summaries(self, label_filter: str, since: float | None = None) -> Iterator[Summary]:
        project, region = self._project(), self._region()
        parent = f"projects/{project}/locations/{region}"
        with _google_errors("Vertex AI"):
            jobs = list(self._jobs(region).list_custom_jobs(request={"parent": parent, "filter": label_filter},
                                                            timeout=API_TIMEOUT_S))
        for job in jobs:
            created = job.create_time.timestamp() if job.create_time else None
            if since is not None and created is not None and created < since:
                continue
            job_id = job.display_name
            handle = self._handle(job_id, job)
            key = dict(job.labels).get(IDEMPOTENCY_LABEL)
            yield Summary(handle=handle, name=job_name(job_id), status=_status_of(job, handle),
                          created_at=created, idempotency_key=key)


STORAGE_RETRY_S = 20.0
REACH_HINT = "check your network, the region (Vertex AI has one endpoint per region) and any endpoint settings"


def _storage_retry() -> Any:
    """GCS retries its own calls (uploads included, resumable ones from where they stopped), for 120 s by default;
    20 s rides out a blip. For uploads this is the one retry layer: the RetryError it ends with is
    BackendUnreachable (`_google_error`), not transient, so the runner's policy does not retry it on top."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(STORAGE_RETRY_S)


def _seconds_before(timestamp: str, seconds: int) -> str:
    """An RFC 3339 UTC timestamp `seconds` earlier, to whole seconds (enough for a filter)."""
    import datetime

    try:
        moment = datetime.datetime.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return timestamp
    return (moment - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _project_from_environment() -> str | None:
    return (os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("CLOUDSDK_CORE_PROJECT")
            or _gcloud_default("core", "project"))


def _region_from_environment() -> str | None:
    return (os.environ.get("GOOGLE_CLOUD_REGION") or os.environ.get("CLOUDSDK_COMPUTE_REGION")
            or _gcloud_default("compute", "region"))


def _task_name(rank: int) -> str:
    return "workerpool0-0" if rank == 0 else f"workerpool1-{rank - 1}"


def _rank(task_name: str) -> int:
    match = re.fullmatch(r"workerpool(\d+)-(\d+)", task_name)
    if not match:
        return 0
    return 0 if match.group(1) == "0" else 1 + int(match.group(2))


def _status_of(job: Any, handle: Handle) -> Status:
    raw = job.state.name if hasattr(job.state, "name") else str(job.state)
    state = map_state(raw)
    message = (job.error.message if job.error and job.error.message else "") or STATE_MESSAGES.get(raw, "")
    started = job.start_time.timestamp() if job.start_time else None
    ended = job.end_time.timestamp() if job.end_time and state.is_terminal else None
    url = (f"https://console.cloud.google.com/vertex-ai/locations/{handle.data['region']}/training/"
           f"{handle.data['id']}/cpu?project={handle.data['project']}")
    return Status(state, raw, message, exit_code=0 if state is JobState.SUCCEEDED else None,
                  started_at=started, ended_at=ended, url=url)


def _google_status(exc: Any) -> str:
    """The canonical status ("FAILED_PRECONDITION", ...) of an api-core error raised by the REST
    transport, which picks the exception class from the HTTP code alone."""
    response = getattr(exc, "response", None)
    try:
        return str(response.json()["error"]["status"]) if response is not None else ""
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def _is_transient(exc: BaseException) -> bool:
    from google.api_core import exceptions as gexc

    return isinstance(exc, (gexc.ServiceUnavailable, gexc.TooManyRequests, gexc.InternalServerError,
                            gexc.DeadlineExceeded, gexc.BadGateway, gexc.GatewayTimeout)) or \
        type(exc).__name__ in ("ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout")


QUOTA_WORDS = ("custom_model_training", "gpus", "_cpus", "accelerator", "insufficient", "stockout")


def _is_quota(exc: BaseException) -> bool:
    """A 429/RESOURCE_EXHAUSTED about training resources (not the API's request rate): retrying
    will not help, another backend may. Vertex names the quota metric in the message."""
    from google.api_core import exceptions as gexc

    if not isinstance(exc, gexc.TooManyRequests) and _google_status(exc) != "RESOURCE_EXHAUSTED":
        return False
    text = str(exc).lower()
    return any(word in text for word in QUOTA_WORDS)


def _raise_for_status(response: Any, service: str) -> None:
    if response.status_code < 400:
        return
    from google.api_core import exceptions as gexc

    try:
        message = response.json().get("error", {}).get("message", response.text)
    except ValueError:
        message = response.text
    raise gexc.from_http_status(response.status_code, f"{service}: {message}")


def _google_errors(service: str) -> Any:
    """`with _google_errors("Vertex AI"):` turns google-auth / api-core exceptions into launch errors.
    Every call to Google goes through here, so this is where a missing SDK is said (exit 2)."""
    SDK.require()
    return translated(lambda exc: _google_error(service, exc))


def _google_error(service: str, exc: Exception) -> LaunchError | None:
    """Transient errors are retried by the runner; missing credentials exit 4 with the
    command that fixes them."""
    if not type(exc).__module__.startswith(("google", "requests", "urllib3")):
        return None
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return BackendUnreachable(f"no Google Cloud credentials: {exc}", "run `gcloud auth application-default "
                                  "login` or set GOOGLE_APPLICATION_CREDENTIALS")
    # HTTP 401/403 raise Unauthorized/Forbidden (REST and GCS); Unauthenticated/PermissionDenied are their
    # gRPC-named subclasses: catch the parents
    if isinstance(exc, (auth_exc.RefreshError, gexc.Unauthorized)):
        return BackendUnreachable(f"Google Cloud rejected the credentials: {exc}",
                                  "run `gcloud auth application-default login` again")
    if _is_quota(exc):  # before the transient check: quota refusals come as 429 too
        return CapacityError(f"Vertex AI has no quota or capacity for this job: {exc}",
                             "request more quota for this accelerator in this region, pick another, "
                             "or list another backend after this one (--backend vertex,sagemaker)")
    if _is_transient(exc):
        return TransientBackendError(f"{service} is unavailable: {exc}", REACH_HINT)
    if isinstance(exc, gexc.RetryError):  # the SDK's own retries ran out (GCS retries for STORAGE_RETRY_S)
        return BackendUnreachable(f"could not reach {service}: {exc.cause or exc}", REACH_HINT)
    if isinstance(exc, gexc.Forbidden):  # credentials without the rights: exit 4, as 401
        return BackendUnreachable(f"{service} denied the request: {exc}",
                            "the account needs roles/aiplatform.user and access to the staging bucket")
    return BackendError(f"{service} refused the request: {exc}")
