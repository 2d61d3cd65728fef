"""VertexBackend: the contract's methods over Vertex AI's JobService (REST), Cloud Storage and Cloud Logging.

The body is rendered in render.py; this module sends it and reads jobs back. Vertex's create is
not idempotent, so every job carries our job-id label and a submit looks for it before creating.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.vertex import clients, logs, upload
from backends.vertex import render as rendering
from backends.vertex.clients import SDK
from backends.vertex.errors import google_errors, google_status, is_quota, is_transient
from backends.vertex.settings import project_from_environment, region_from_environment, settings_model
from backends.vertex.states import status_of
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


class VertexBackend(Backend):
    name: ClassVar[str] = "vertex"
    handle_fields: ClassVar[tuple[str, ...]] = ("region", "name", "id")
    capabilities: ClassVar[Capabilities] = Capabilities(spot=True, log_settle_s=5.0, log_poll_s=2.0, tpu=True,
                                                        node_addresses=True)
    cpu_instance_type: ClassVar[str] = rendering.CPU_MACHINE_TYPE  # `launch plan` names what the render picks
    settings_model = LazySettings(settings_model)
    sdk = SDK
    catalog_csv = rendering.CATALOG_CSV
    pinned_type_setting: ClassVar[str] = "machine_type"  # backends.vertex.machine_type overrides the catalog


    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # Validated here too: status/logs/cancel build the backend from the record and config.
        self.settings = settings_model().model_validate(dict(settings or {})).model_dump()
        self._job_client = client
        self._session: Any = None

    # -- configuration -----------------------------------------------------------

    @classmethod
    def price_list(cls, settings: Mapping[str, Any], fetch: Any, instance_types: Sequence[str],
                   regions: Sequence[str]) -> list[Any]:
        from backends.vertex import prices

        return prices.price_list(settings, fetch, instance_types, regions)

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        if (absent := SDK.readiness()) is not None:
            return absent
        adc = Path(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
                   or Path.home() / ".config" / "gcloud" / "application_default_credentials.json")
        project = settings.get("project") or project_from_environment()
        region = settings.get("region") or region_from_environment()
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
        project = self.settings.get("project") or project_from_environment()
        if not project:
            raise UsageError("no Google Cloud project for Vertex AI",
                             "set backends.vertex.project, GOOGLE_CLOUD_PROJECT, or `gcloud config set project`")
        return str(project)

    def _region(self) -> str:
        region = self.settings.get("region") or region_from_environment()
        if not region:
            raise UsageError("no region for Vertex AI",
                             "set backends.vertex.region (e.g. us-central1) or `gcloud config set compute/region`")
        return str(region)

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key)

    # -- clients -----------------------------------------------------------------

    def _jobs(self, region: str) -> Any:
        if self._job_client is None:
            self._job_client = clients.job_client(self.settings, region)
        return self._job_client

    def _authorized_session(self) -> Any:
        if self._session is None:
            self._session = clients.authorized_session(self.settings)
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
        with google_errors("Vertex AI"):
            client = self._jobs(region)
            label = request.payload["labels"][rendering.JOB_ID_LABEL]
            found = self._find(client, parent, label)
            if found is None:
                upload.upload(self.settings, self._project(), request.uploads)
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
            return client.create_custom_job(parent=parent, custom_job=job, timeout=clients.API_TIMEOUT_S)
        except Exception as exc:
            if not is_transient(exc) or is_quota(exc):
                raise  # refused (and any earlier create was looked for and not found): nothing was created
            try:
                found = self._find(client, parent, label)
            except Exception:
                raise exc from None
            if found is not None:
                return found
            raise

    def _find(self, client: Any, parent: str, label: str) -> Any:
        request = {"parent": parent, "filter": f'labels.{rendering.JOB_ID_LABEL}="{label}"'}
        for job in client.list_custom_jobs(request=request, timeout=clients.API_TIMEOUT_S):
            return job
        return None

    def _handle(self, job_id: str, job: Any) -> Handle:
        """Where the CustomJob lives, from its resource name (the same for created and listed jobs)."""
        parts = job.name.split("/")
        nodes = sum(int(p.replica_count or 1) for p in job.job_spec.worker_pool_specs)
        return Handle(self.name, job_id, {"name": job.name, "project": parts[1], "region": parts[3],
                                          "id": parts[-1], "nodes": nodes})

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        with google_errors("Vertex AI"):
            from google.api_core import exceptions as gexc

            try:
                job = self._jobs(handle.data["region"]).get_custom_job(name=handle.data["name"],
                                                                       timeout=clients.API_TIMEOUT_S)
            except gexc.NotFound:
                return Status(JobState.UNKNOWN, "NOT_FOUND", "Vertex no longer knows this job")
        return status_of(job, handle)

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """Cloud Logging entries for the job, in timestamp order (logs.read: late entries are not lost)."""
        yield from logs.read(self._authorized_session, clients.logging_endpoint(self.settings), handle,
                             since=since, node=node)

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """`:cancel`; a job that already ended (FAILED_PRECONDITION) or vanished is left alone."""
        with google_errors("Vertex AI"):
            from google.api_core import exceptions as gexc

            try:
                self._jobs(handle.data["region"]).cancel_custom_job(name=handle.data["name"],
                                                                    timeout=clients.API_TIMEOUT_S)
            except gexc.NotFound:
                return
            except gexc.GoogleAPICallError as exc:
                # over REST every 400 is BadRequest; the status says it had already ended
                if google_status(exc) != "FAILED_PRECONDITION" and not isinstance(exc, gexc.FailedPrecondition):
                    raise

    # -- list --------------------------------------------------------------------

    def find(self, idempotency_key: str) -> Summary | None:
        """The job labelled with this idempotency key (as render labelled it)."""
        wanted = rendering.label_value(idempotency_key)
        return next((s for s in self._summaries(f'labels.{rendering.IDEMPOTENCY_LABEL}="{wanted}"')), None)

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        return self._summaries(f"labels.{rendering.JOB_ID_LABEL}:*", since=since)

    def _summaries(self, label_filter: str, since: float | None = None) -> Iterator[Summary]:
        project, region = self._project(), self._region()
        parent = f"projects/{project}/locations/{region}"
        with google_errors("Vertex AI"):
            jobs = list(self._jobs(region).list_custom_jobs(request={"parent": parent, "filter": label_filter},
                                                            timeout=clients.API_TIMEOUT_S))
        for job in jobs:
            created = job.create_time.timestamp() if job.create_time else None
            if since is not None and created is not None and created < since:
                continue
            job_id = job.display_name
            handle = self._handle(job_id, job)
            key = dict(job.labels).get(rendering.IDEMPOTENCY_LABEL)
            yield Summary(handle=handle, name=job_name(job_id), status=status_of(job, handle),
                          created_at=created, idempotency_key=key)
