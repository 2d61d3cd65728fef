"""HfJobsBackend: the contract's methods over huggingface_hub's HfApi (Jobs and the Hub's repositories).

The bodies are rendered in render.py; this module sends them and reads jobs back. A job of N nodes is
N Hugging Face jobs in one network group, labelled with our job id and their rank. run_job is not
idempotent, so a submit looks the job id's label up before creating anything, and once more after a
create whose answer was lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from backends.hf_jobs import hub
from backends.hf_jobs import render as rendering
from backends.hf_jobs.hub import SDK, hub_errors
from backends.hf_jobs.states import judge, status_of_job
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
    is_job_id,
    job_name,
)
from launcher.errors import BackendError, TransientBackendError, UsageError

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

HF_JOB_ID = re.compile(r"[A-Za-z0-9]{1,64}")  # what the Hub's job ids look like (24 hex digits today)


def where(handle: Handle) -> tuple[str, list[str]]:
    """The namespace and the node jobs' ids a handle holds (a record from another version may not)."""
    namespace, ids = handle.data.get("namespace"), handle.data.get("ids")
    if not isinstance(namespace, str) or not isinstance(ids, list) or not ids \
            or not all(isinstance(i, str) and HF_JOB_ID.fullmatch(i) for i in ids):
        raise BackendError(f"the record of {handle.job_id} does not say which Hugging Face jobs it is",
                           "find it again with `launch list --sync --backend hf_jobs`")
    return namespace, ids


def checked_id(job: Any) -> str:
    """A Hugging Face job id read back, before it goes into a handle (and later into request paths)."""
    value = str(job.id)
    if not HF_JOB_ID.fullmatch(value):
        raise BackendError(f"Hugging Face answered a job id launch does not accept: {value[:80]!r}")
    return value


class HfJobsBackend(Backend):
    name: ClassVar[str] = "hf_jobs"
    capabilities: ClassVar[Capabilities] = Capabilities(spot=False, log_poll_s=0.5)
    settings_model = LazySettings(rendering.settings_model)
    cpu_instance_type: ClassVar[str] = rendering.CPU_FLAVOR
    pinned_type_setting: ClassVar[str] = "flavor"
    sdk = SDK
    catalog_csv = rendering.CATALOG_CSV
    handle_fields: ClassVar[tuple[str, ...]] = ("namespace", "ids")

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        self.settings = rendering.settings_model().model_validate(dict(settings or {})).model_dump()
        self._api = client
        self._namespace: str | None = self.settings.get("namespace")

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        if (absent := SDK.readiness()) is not None:
            return absent
        if not hub.token_from_environment(settings):
            return Readiness(True, False, "no Hugging Face token", hub.LOGIN_HINT)
        return Readiness(True, True, f"namespace {settings.get('namespace') or 'of the token'}")

    # -- render --------------------------------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        from launcher import config

        written = (spec.backends.get(self.name) or {}).get("token")
        spec_token = bool(written) and written != config.backend_settings(self.name).get("token")
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key,
                                spec_token=spec_token)

    # -- the client ----------------------------------------------------------------------------------------

    def api(self) -> Any:
        if self._api is None:
            self._api = hub.client(self.settings)
        return self._api

    def namespace(self) -> str:
        """The namespace setting, or the token's user (asked once)."""
        if self._namespace is None:
            with hub_errors():
                self._namespace = str(self.api().whoami()["name"])
        return self._namespace

    # -- submit --------------------------------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Look up, upload, create each node's job. A node already there (an earlier attempt made it) is
        adopted; each bundle piece is uploaded once per digest before any job that needs it is made."""
        SDK.require()
        with hub_errors():
            namespace = self.namespace()
            payload = request.payload if self.settings.get("namespace") else \
                json.loads(json.dumps(request.payload).replace(rendering.TOKEN_USER, namespace))  # render left it
            found = self._nodes(namespace, request.job_id)
            missing = [body for body in payload["jobs"] if body["labels"][rendering.RANK_LABEL] not in found]
            for upload in request.uploads if missing else ():  # the base, then the overlay if any
                repo, _, path = upload.destination.removeprefix("hf://").replace(rendering.TOKEN_USER, namespace) \
                    .partition("/bundles/")
                hub.upload_bundle(self.api(), repo, upload.source, f"bundles/{path}")
            for body in missing:
                found[body["labels"][rendering.RANK_LABEL]] = self._create(namespace, request.job_id, body)
        ids = [found[str(rank)] for rank in range(len(payload["jobs"]))]
        return Handle(self.name, request.job_id, {"namespace": namespace, "ids": ids})

    def _create(self, namespace: str, job_id: str, body: dict[str, Any]) -> str:
        """run_job with the body's fields (the client rebuilds the same body: a test holds them equal). A
        create that failed in a way that may have landed is looked for by its labels before it is reported."""
        secrets = dict(body.get("secrets") or {})
        if rendering.BUNDLE_TOKEN in secrets:
            secrets[rendering.BUNDLE_TOKEN] = hub.require_token(self.settings)
        labels = dict(body["labels"])
        network = body.get("network") or {}
        try:
            job = self.api().run_job(image=body["dockerImage"], command=body["command"], env=body["environment"],
                                     secrets=secrets or None, flavor=body["flavor"], timeout=body["timeoutSeconds"],
                                     attempts=body.get("attempts"),
                                     name=labels.pop("name"), labels=labels, namespace=namespace,
                                     network_group=network.get("group"), network_aliases=network.get("aliases"))
        except Exception as exc:
            mapped = hub.hub_error(exc)
            if not isinstance(mapped, TransientBackendError):
                raise
            try:
                again = self._nodes(namespace, job_id).get(body["labels"][rendering.RANK_LABEL])
            except Exception:
                raise exc from None
            if again is None:
                raise
            return again
        return checked_id(job)

    def _nodes(self, namespace: str, job_id: str) -> dict[str, str]:
        """rank -> Hugging Face job id of this launch job's jobs (the labels filter server-side)."""
        found: dict[str, str] = {}
        for job in hub.list_jobs(self.api(), namespace, {rendering.JOB_ID_LABEL: job_id}):
            rank = (job.labels or {}).get(rendering.RANK_LABEL, "0")
            if (job.labels or {}).get(rendering.JOB_ID_LABEL) == job_id and rank not in found:
                found[rank] = checked_id(job)
        return found

    # -- status --------------------------------------------------------------------------------------------

    def _jobs(self, handle: Handle) -> list[Any]:
        """Each node's JobInfo (None where Hugging Face no longer knows it)."""
        from huggingface_hub.errors import JobNotFoundError

        namespace, ids = where(handle)
        infos = []
        with hub_errors():
            for job_id in ids:
                try:
                    infos.append(self.api().inspect_job(job_id=job_id, namespace=namespace))
                except JobNotFoundError:
                    infos.append(None)
        return infos

    def status(self, handle: Handle) -> Status:
        return judge(self._jobs(handle), handle)

    def finish(self, handle: Handle, status: Status) -> None:
        """A job whose node failed stops the nodes still running (they would wait for it forever)."""
        if status.state is JobState.FAILED and len(where(handle)[1]) > 1:
            self.cancel(handle)

    # -- logs ----------------------------------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """Each node's log stream read through (the client's no-follow read ends at what the Hub holds now);
        the cursor counts the lines shown per node, so a read after a dropped stream skips what was shown."""
        namespace, ids = where(handle)
        if node is not None and not 0 <= node < len(ids):
            raise UsageError(f"{handle.job_id} has nodes 0 to {len(ids) - 1}, not {node}")
        shown = {int(k): int(v) for k, v in dict(since or {}).items()}
        ranks = range(len(ids)) if node is None else [node]
        with hub_errors():
            for rank in ranks:
                skip = shown.get(rank, 0)
                seen = 0
                for text in self.api().fetch_job_logs(job_id=ids[rank], namespace=namespace, follow=False):
                    seen += 1
                    if seen <= skip:
                        continue
                    shown[rank] = seen
                    yield LogLine(str(text).rstrip("\n"), rank, {str(k): v for k, v in shown.items()})
        return {str(k): v for k, v in shown.items()}

    # -- cancel --------------------------------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """Each node's job not already ended; an ended or vanished one is left as it is."""
        namespace, ids = where(handle)
        for job_id, info in zip(ids, self._jobs(handle), strict=True):
            if info is None or status_of_job(info).state.is_terminal:
                continue
            with hub_errors():
                self.api().cancel_job(job_id=job_id, namespace=namespace)

    # -- list ----------------------------------------------------------------------------------------------

    def find(self, idempotency_key: str) -> Summary | None:
        labels = {rendering.KEY_LABEL: rendering.label_value(idempotency_key)}
        return next(iter(self._summaries(labels)), None)

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        return iter(self._summaries({}, since=since))

    def _summaries(self, labels: dict[str, str], since: float | None = None) -> list[Summary]:
        """launch jobs (rank 0 carries the summary; the others are found by the job id's label)."""
        namespace = self.namespace()
        with hub_errors():
            jobs = list(hub.list_jobs(self.api(), namespace, labels))
        by_job: dict[str, dict[str, Any]] = {}
        for job in jobs:
            job_labels = job.labels or {}
            job_id = job_labels.get(rendering.JOB_ID_LABEL)
            if job_id is None:
                continue  # not launch's
            if not is_job_id(job_id):
                raise BackendError(f"a Hugging Face job carries an invalid {rendering.JOB_ID_LABEL} label "
                                   f"{job_id[:80]!r}", "remove the label from that job, or cancel it")
            by_job.setdefault(job_id, {})[job_labels.get(rendering.RANK_LABEL, "0")] = job
        out = []
        for job_id, nodes in by_job.items():
            first = nodes.get("0")
            if first is None:
                continue
            created = first.created_at.timestamp() if first.created_at else None
            if since is not None and created is not None and created < since:
                continue
            ids = [checked_id(nodes[str(r)]) for r in range(len(nodes)) if str(r) in nodes]
            handle = Handle(self.name, job_id, {"namespace": namespace, "ids": ids})
            status = judge([nodes[str(r)] for r in range(len(nodes)) if str(r) in nodes], handle)
            out.append(Summary(handle=handle, name=job_name(job_id), status=status, created_at=created,
                               idempotency_key=(first.labels or {}).get(rendering.KEY_LABEL)))
        return out
