"""KubernetesBackend: the contract over the Kubernetes API (batch/v1 Jobs, pods and their logs).

render.py builds the objects; this module creates them, reads a Job and its pods back into one
state, and reads the pods' logs. A Job's name is the job id (render's kube_name), so a retried
create meets AlreadyExists and adopts the first Job; the idempotency key is a label for `find`.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from backends.kubernetes import bundle_store
from backends.kubernetes import render as rendering
from backends.kubernetes.client import SDK, TIMEOUT_S, api_client, default_namespace, errors, kubeconfig_path
from backends.kubernetes.render import NAME
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
    map_state,
)
from launcher.errors import BackendError

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

# the Job's condition (or the pods' phase, before any condition) -> our state
STATES: dict[str, JobState] = {
    "Complete": JobState.SUCCEEDED, "Failed": JobState.FAILED, "Suspended": JobState.PENDING,
    "Pending": JobState.PENDING, "Starting": JobState.STARTING, "Running": JobState.RUNNING,
    "Terminating": JobState.CANCELLING, "NotFound": JobState.CANCELLED,
    "Unschedulable": JobState.PENDING, "ImagePullBackOff": JobState.PENDING, "ErrImagePull": JobState.PENDING,
    "NeverStarted": JobState.FAILED,
}
# conditions that say nothing final about a Job (the controller adds them on the way to Complete/Failed)
PASSING = {"FailureTarget", "SuccessCriteriaMet"}
IMAGE_PULL = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName")


class KubernetesBackend(Backend):
    name: ClassVar[str] = NAME
    handle_fields: ClassVar[tuple[str, ...]] = ("namespace", "name")
    capabilities: ClassVar[Capabilities] = Capabilities(spot=False, log_poll_s=0.5, node_addresses=True)
    settings_model = LazySettings(rendering.settings_model)
    sdk = SDK
    pinned_type_setting: ClassVar[str] = "gpu_class"
    presets: ClassVar[dict[str, Any]] = {}  # what an alias (coreweave) sets before the user's settings

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # a setting left unset (None, as the runner's checked settings hold it) keeps the alias's preset
        given = {key: value for key, value in dict(settings or {}).items()
                 if value is not None or key not in self.presets}
        self.settings = rendering.settings_model().model_validate({**self.presets, **given}).model_dump()
        self._api = client

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        if cls.sdk is not None and (absent := cls.sdk.readiness()) is not None:
            return absent
        path = kubeconfig_path(settings)
        if path is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            return Readiness(True, False, "no kubeconfig", f"set KUBECONFIG, or backends.{cls.name}.kubeconfig")
        where = f"{path}" if path else "in-cluster"
        return Readiness(True, True, f"{where}, namespace {default_namespace(settings)}")

    @classmethod
    def dry_run_document(cls, request: Request) -> str | None:
        """The manifests as multi-document YAML, so `launch run --dry-run ... | kubectl apply -f -` reads them.
        They are what submit creates, before submit's own steps (the bundle into the ConfigMap, the Job's uid
        into the owner references, resuming the suspended Job), which the header says."""
        import yaml

        payload = request.payload
        header = (f"# launch dry run: {request.job_id} on {cls.name}, namespace {payload.get('namespace')}\n"
                  "# submit also fills the ConfigMap's bundle, makes the ConfigMap and Secret owned by the Job,\n"
                  f"# and {'resumes the Job' if payload.get('resume') else 'leaves the Job suspended for Kueue'}\n")
        return header + yaml.safe_dump_all(payload["manifests"], sort_keys=False, explicit_start=True)

    # -- clients -----------------------------------------------------------------

    def _client(self) -> Any:
        if self._api is None:
            self._api = api_client(self.settings)
        return self._api

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._client())

    def _batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self._client())

    # -- render / submit ---------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key,
                                backend=self.name, namespace=default_namespace(self.settings))

    def submit(self, request: Request) -> Handle:
        """Create the Job suspended (or adopt it: its name is the job id), then the objects it owns, then
        resume it unless Kueue is to admit it. Each step is safe to repeat."""
        self.sdk.require()
        from kubernetes.client.exceptions import ApiException

        payload = request.payload
        ns, name = payload["namespace"], payload["name"]
        job_manifest, *owned = payload["manifests"]
        in_bucket = [u for u in request.uploads if u.destination.startswith("s3://")]
        if in_bucket:  # before the Job: a pod must find its bundle (the base, then the overlay if any)
            urls = {name: bundle_store.presigned(self.settings, upload.destination, upload.source)
                    for name, upload in zip(rendering.PIECE_URL_ENVS, in_bucket, strict=False)}
            job_manifest = json.loads(json.dumps(job_manifest))
            for variable in job_manifest["spec"]["template"]["spec"]["containers"][0]["env"]:
                if variable["name"] in urls:
                    variable["value"] = urls[variable["name"]]
        with errors():
            batch, core = self._batch(), self._core()
            try:
                job = batch.create_namespaced_job(ns, job_manifest, _request_timeout=TIMEOUT_S)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                job = batch.read_namespaced_job(name, ns, _request_timeout=TIMEOUT_S)
                theirs = (job.metadata.annotations or {}).get(rendering.JOB_ID_ANNOTATION)
                if theirs != request.job_id:
                    raise BackendError(f"a Job named {name} already exists in {ns} for another job "
                                       f"({theirs!r})", "delete it, or submit again (a new job id)") from None
            owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job.metadata.uid,
                     "blockOwnerDeletion": True}
            for manifest in owned:
                body = {**manifest, "metadata": {**manifest["metadata"], "ownerReferences": [owner]}}
                if manifest["kind"] == "ConfigMap":
                    # the code bundle, read only now (a dry run packs none)
                    for upload in (u for u in request.uploads if u.destination.startswith("configmap:")):
                        key = upload.destination.rsplit("/", 1)[-1]
                        body.setdefault("binaryData", {})[key] = base64.b64encode(upload.source.read_bytes()).decode()
                create = {"Service": core.create_namespaced_service, "ConfigMap": core.create_namespaced_config_map,
                          "Secret": core.create_namespaced_secret}[manifest["kind"]]
                try:
                    create(ns, body, _request_timeout=TIMEOUT_S)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
            if payload["resume"] and job.spec.suspend:
                batch.patch_namespaced_job(name, ns, {"spec": {"suspend": False}}, _request_timeout=TIMEOUT_S)
        return self._handle(request.job_id, ns, name, job_manifest["spec"]["completions"],
                            (job_manifest["metadata"].get("annotations") or {}).get(rendering.KEY_ANNOTATION))

    def _handle(self, job_id: str, ns: str, name: str, nodes: int, key: str | None) -> Handle:
        return Handle(self.name, job_id, {"namespace": ns, "name": name, "nodes": nodes, "context":
                                          self.settings.get("context"), "idempotency_key": key})

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        self.sdk.require()
        from kubernetes.client.exceptions import ApiException

        ns, name = handle.data["namespace"], handle.data["name"]
        with errors():
            try:
                job = self._batch().read_namespaced_job(name, ns, _request_timeout=TIMEOUT_S)
            except ApiException as exc:
                if exc.status == 404:
                    return Status(JobState.CANCELLED, "NotFound", f"the Job {ns}/{name} is gone (cancelled or "
                                  "deleted)")
                raise
            return self._status_of(job, self._pods(ns, name))

    def _pods(self, ns: str, name: str) -> list[Any]:
        pods = self._core().list_namespaced_pod(ns, label_selector=f"{rendering.JOB_LABEL}={name}",
                                                _request_timeout=TIMEOUT_S).items
        return sorted(pods, key=_ran_order)

    def _status_of(self, job: Any, pods: list[Any] | None) -> Status:
        """One state from the Job's conditions, then (while it has none) from its pods."""
        started = _stamp(job.status.start_time)
        ended = _stamp(job.status.completion_time)
        conditions = [c for c in job.status.conditions or [] if c.status == "True" and c.type not in PASSING]
        final = next((c for c in conditions if c.type in ("Complete", "Failed")), None)
        if job.metadata.deletion_timestamp is not None:
            return Status(JobState.CANCELLING, "Terminating", "the Job is being deleted", started_at=started)
        if final is not None:
            if final.type == "Complete":
                return Status(JobState.SUCCEEDED, "Complete", exit_code=0, started_at=started,
                              ended_at=ended or _stamp(final.last_transition_time))
            code, message = self._failure(job, pods or [], final)
            return Status(JobState.FAILED, f"Failed:{final.reason or ''}", message, exit_code=code,
                          started_at=started, ended_at=_stamp(final.last_transition_time))
        if conditions:  # Suspended, or one this version has never seen
            raw = conditions[0].type
            queue = (job.metadata.labels or {}).get(rendering.QUEUE_LABEL)
            message = f"waiting for Kueue to admit it (queue {queue})" if raw == "Suspended" and queue else ""
            return Status(map_state(STATES, raw), raw, message or (conditions[0].message or ""), started_at=started)
        if job.spec.suspend:
            return Status(JobState.PENDING, "Suspended", "the Job is suspended", started_at=started)
        if pods is None:  # a listing: the Job's own counts say enough
            raw = "Running" if job.status.ready else "Starting" if job.status.active else "Pending"
            return Status(map_state(STATES, raw), raw, started_at=started)
        return self._from_pods(pods, started)

    def _from_pods(self, pods: list[Any], started: float | None) -> Status:
        if not pods:
            return Status(JobState.PENDING, "Pending", "no pod created yet", started_at=started)
        if any(p.status.phase == "Running" for p in pods):
            return Status(JobState.RUNNING, "Running", started_at=started)
        now = time.time()
        for pod in pods:
            waiting = _waiting(pod)
            unschedulable = next((c for c in pod.status.conditions or []
                                  if c.type == "PodScheduled" and c.status == "False"), None)
            age = now - (_stamp(pod.metadata.creation_timestamp) or now)
            if waiting is not None and waiting.reason in IMAGE_PULL:
                why = f"pod {pod.metadata.name} cannot pull its image ({waiting.reason}): {waiting.message or ''}"
            elif unschedulable is not None:
                why = f"pod {pod.metadata.name} cannot be scheduled: {unschedulable.message or unschedulable.reason}"
            else:
                continue
            if age > self.settings["pending_timeout"]:
                return Status(JobState.FAILED, "NeverStarted", f"{why} (for {int(age)} s, over pending_timeout)",
                              started_at=started)
            raw = waiting.reason if waiting is not None and waiting.reason in IMAGE_PULL else "Unschedulable"
            return Status(map_state(STATES, raw), raw, why, started_at=started)
        return Status(JobState.STARTING, "Starting", started_at=started)

    def _failure(self, job: Any, pods: list[Any], condition: Any) -> tuple[int | None, str]:
        """The failing index's exit code and last log lines, after the condition's reason."""
        message = f"{condition.reason or 'Failed'}: {condition.message or ''}".strip()
        for pod in pods:
            for container in pod.status.container_statuses or []:
                done = container.state.terminated if container.state else None
                if done is not None and done.exit_code:
                    tail = self._tail_text(pod, 5)
                    return done.exit_code, (f"{message}; node {_index(pod)} exited {done.exit_code}"
                                            + (f":\n{tail}" if tail else ""))
        return None, message

    def _tail_text(self, pod: Any, lines: int) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            return str(self._core().read_namespaced_pod_log(pod.metadata.name, pod.metadata.namespace,
                                                            tail_lines=lines, _request_timeout=TIMEOUT_S)).rstrip()
        except ApiException:
            return ""

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """Every pod's log after the bytes already read from it, each index's pods in the order they ran (a
        retry's new pod after the one it replaced, whose last lines are read first). The cursor is
        {pod name: [bytes read, finished]}: a pod that had ended when its log was read through is not read
        again."""
        self.sdk.require()
        cursor = {str(k): list(v) for k, v in dict(since or {}).items()}
        ns, name = handle.data["namespace"], handle.data["name"]
        with errors():
            for pod in self._pods(ns, name):
                index, pod_name = _index(pod), pod.metadata.name
                offset, finished = cursor.get(pod_name, [0, False])
                if finished or (node is not None and index != node) or not pod.status.container_statuses:
                    continue
                ended = pod.status.phase in ("Succeeded", "Failed")  # before the read: the read has it all
                fresh = self._log(pod).encode()[offset:]
                cut = len(fresh) if ended else fresh.rfind(b"\n") + 1
                if ended:
                    cursor[pod_name] = [offset + cut, True]
                if cut == 0:
                    continue
                cursor[pod_name] = [offset + cut, ended]
                yield LogLine(fresh[:cut].removesuffix(b"\n").decode(errors="replace"), node=index,
                              cursor={k: list(v) for k, v in cursor.items()})
        return cursor

    def _log(self, pod: Any) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            return str(self._core().read_namespaced_pod_log(pod.metadata.name, pod.metadata.namespace,
                                                            _request_timeout=TIMEOUT_S))
        except ApiException as exc:
            if exc.status in (400, 404):  # not started yet (ContainerCreating), or gone
                return ""
            raise

    # -- cancel / list -----------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """Delete the Job in the foreground (its pods, ConfigMap, Secret and Service go with it); an
        ended Job is kept, so its result and logs stay readable."""
        self.sdk.require()
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        ns, name = handle.data["namespace"], handle.data["name"]
        with errors():
            batch = self._batch()
            try:
                job = batch.read_namespaced_job(name, ns, _request_timeout=TIMEOUT_S)
                if any(c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions or []):
                    return
                batch.delete_namespaced_job(name, ns, body=client.V1DeleteOptions(propagation_policy="Foreground"),
                                            _request_timeout=TIMEOUT_S)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def find(self, idempotency_key: str) -> Summary | None:
        selector = f"{rendering.KEY_LABEL}={rendering.label_value(idempotency_key)}"
        return next((s for s in self._summaries(selector) if s.idempotency_key == idempotency_key), None)

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        return self._summaries(f"{rendering.MANAGED_BY}=launch", since=since)

    def _summaries(self, selector: str, since: float | None = None) -> Iterator[Summary]:
        self.sdk.require()
        ns = default_namespace(self.settings)
        with errors():
            jobs = self._batch().list_namespaced_job(ns, label_selector=selector, _request_timeout=TIMEOUT_S).items
        for job in jobs:
            annotations = job.metadata.annotations or {}
            job_id = annotations.get(rendering.JOB_ID_ANNOTATION)
            if not is_job_id(job_id):  # anyone who can create Jobs here can write this annotation
                continue
            created = _stamp(job.metadata.creation_timestamp)
            if since is not None and created is not None and created < since:
                continue
            key = annotations.get(rendering.KEY_ANNOTATION)
            handle = self._handle(job_id, ns, job.metadata.name, job.spec.completions or 1, key)
            yield Summary(handle=handle, name=job_name(job_id), status=self._status_of(job, None),
                          created_at=created, idempotency_key=key)


def _ran_order(pod: Any) -> tuple[int, float, int, float, int]:
    """Index, then creation; within one second (timestamps have no more), an ended pod before the one
    that replaced it, and ended pods by when they ended. When even that ties (a fast retry ends in the
    second its failed pod did), a Succeeded pod goes last: a Job starts no pod for an index after one
    of its pods succeeded, so every other pod of that index ran before it."""
    done = next((c.state.terminated for c in pod.status.container_statuses or []
                 if c.state is not None and c.state.terminated is not None), None)
    return (_index(pod), _stamp(pod.metadata.creation_timestamp) or 0.0, 0 if done else 1,
            (_stamp(done.finished_at) or 0.0) if done else 0.0, 1 if pod.status.phase == "Succeeded" else 0)


def _index(pod: Any) -> int:
    value = (pod.metadata.annotations or {}).get(rendering.INDEX_ANNOTATION, "0")
    return int(value) if str(value).isdigit() else 0


def _waiting(pod: Any) -> Any:
    for container in pod.status.container_statuses or []:
        if container.state is not None and container.state.waiting is not None:
            return container.state.waiting
    return None


def _stamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None
