"""A local fake of the Kubernetes API server, Job controller, scheduler and kubelet, for the real
`kubernetes` client over HTTP (through the kubeconfig ``fake.kubeconfig(path)`` writes).

    with KubeFake(tmp_path, nodes=2, gpus_per_node=8, mode="run") as fake:
        fake.kubeconfig(tmp_path / "kubeconfig")     # context "fake", namespace "default"
        fake.objects("jobs"); fake.get("pods", "default", name); fake.created   # what it holds / was sent
        fake.rejected                                  # creates the schema refused (must stay [])
        fake.admit(name)                               # what Kueue does: unsuspend a queued Job
        fake.set_condition(name, "Quiescing")          # a Job condition no version of launch knows

What it serves: core/v1 pods (status, log), services, configmaps, secrets and batch/v1 jobs in the
namespaces it has: create (409 AlreadyExists, 422 Invalid, 404 for a missing namespace), get, list
with label selectors (``a=b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``) and ``metadata.name``
field selectors, merge/strategic-merge patch, delete with propagation (Foreground/Background delete
what the object owns through ``ownerReferences``; Orphan, batch/v1's default, leaves it).
``resourceVersion`` grows with every write. No watch: the backend polls.

Every object created or patched is validated in strict mode against Kubernetes' own OpenAPI schema
(kubernetes-validate, ``KUBE_VERSION``) and parsed by the client's models; a refused one is a 422
and recorded in ``rejected`` (the fixtures fail on it), so an unknown or misspelled field fails.

The Job controller has Indexed semantics: one pod per index ``<job>-<index>-<random>`` with hostname
``<job>-<index>``, the template's subdomain, the ``batch.kubernetes.io/job-completion-index`` label
and annotation and ``JOB_COMPLETION_INDEX`` in every container; ``completedIndexes``, ``active``,
``succeeded``, ``failed``, ``startTime``/``completionTime``, conditions ``Suspended``, ``Complete``,
``Failed`` (``BackoffLimitExceeded``, ``DeadlineExceeded``), ``suspend`` and ``activeDeadlineSeconds``.

The scheduler places a pod when one node has the ``nvidia.com/gpu`` it asks for free and matches its
nodeSelector, else leaves it Pending with ``PodScheduled=False/Unschedulable`` and the real message
("0/2 nodes are available: 2 Insufficient nvidia.com/gpu."). An image under a registry in
``unpullable`` (default ``registry.invalid``) never pulls: ``ErrImagePull`` then ``ImagePullBackOff``.

The kubelet, ``mode="run"``, runs each container's command as a local process (the image is
ignored): volumes are directories under the fake's root (configMap and secret files written out,
emptyDirs empty), and a container path under a mount (in command, args, env values) is the
directory's path; ``env`` and ``envFrom`` (configMap/secret refs) are the container's environment.
Cluster DNS is the pod's own /etc/hosts: each pod runs in a user+mount+UTS namespace (``unshare``)
whose hostname is the pod's and whose /etc/hosts (a file under the fake's root, bind-mounted in the
namespace only: the machine's is untouched) names every pod of its subdomain
(``<hostname>.<subdomain>[.<ns>.svc.cluster.local]``) at 127.0.0.1. ``mode="phases"`` runs nothing:
a scheduled pod goes Running and stays there until ``finish_pod`` ends it with an exit code and log.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from . import bugs

KUBE_VERSION = "1.33"
NAME = "kube_fake"
KINDS = {  # plural -> (apiVersion, kind, api path prefix)
    "pods": ("v1", "Pod", "/api/v1"), "services": ("v1", "Service", "/api/v1"),
    "configmaps": ("v1", "ConfigMap", "/api/v1"), "secrets": ("v1", "Secret", "/api/v1"),
    "jobs": ("batch/v1", "Job", "/apis/batch/v1"),
}
PATH = re.compile(r"^(?P<prefix>/api/v1|/apis/batch/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[a-z]+)"
                  r"(?:/(?P<name>[^/]+)(?:/(?P<sub>log|status))?)?$")
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": details or {}, "code": code}


def kube_error(code: int, path: str, headers: Any, error_code: str | None = None) -> tuple[bytes, str]:
    """The API server's Status body, for the FaultProxy's injected errors."""
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 429: "TooManyRequests",
               500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
    body = status_body(code, error_code or reasons.get(code, "InternalError"), f"injected {code} on {path}")
    return json.dumps(body).encode(), "application/json"


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """A label selector in the API's text form against an object's labels."""
    for term in filter(None, (t.strip() for t in re.split(r",(?![^(]*\))", selector or ""))):
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", term):
            values = {v.strip() for v in m.group(3).split(",")}
            if (labels.get(m.group(1)) in values) != (m.group(2) == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 (and strategic merge for the maps a patch here touches)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class KubeFake:
    """The API server's state and the controllers that move it; see the module docstring."""

    def __init__(self, root: Path, *, nodes: int = 2, gpus_per_node: int = 8, mode: str = "run",
                 namespaces: tuple[str, ...] = ("default",), node_labels: dict[str, str] | None = None,
                 tick_s: float = 0.05, image_path: str | None = None) -> None:
        import kubernetes_validate  # noqa: F401  (fail here, not on the first create, when it is absent)

        self.root = Path(root)
        self.mode = mode
        self.image_path = image_path or os.environ.get("PATH", "/usr/bin:/bin")  # the PATH every image has
        self.tick_s = tick_s
        self.namespaces = set(namespaces)
        self.nodes = [{"name": f"node-{i}", "gpus": gpus_per_node, "labels": dict(node_labels or {})}
                      for i in range(nodes)]
        self.unpullable = ("registry.invalid/",)
        self.anonymous_reads = False  # GETs without credentials allowed (kubectl sends no token over http)
        self.store: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []  # every create body as received
        self.rejected: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.lock = threading.RLock()
        self.version = 1
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # pod uid -> its container
        self.kubelet: dict[str, dict[str, Any]] = {}  # pod uid -> what the kubelet keeps of it
        self._stop = threading.Event()
        self._server: Any = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> KubeFake:
        if self.mode == "run" and shutil.which("unshare") is None:
            raise RuntimeError("the fake kubelet needs util-linux's unshare (user namespaces) to run pods")
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                fake._serve(self)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        self._server = bugs.RecordingHTTPServer(NAME, ("127.0.0.1", 0), Handler)
        for target in (self._server.serve_forever, self._controllers):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            for uid in list(self.processes):
                self._kill(uid)
        for thread in self._threads:
            thread.join(timeout=5)

    def reset(self) -> None:
        """Forget every object (their processes ended) and what was received."""
        with self.lock:
            for uid in list(self.processes):
                self._kill(uid)
            self.store.clear()
            self.kubelet.clear()
            self.created.clear()
            self.requests.clear()

    def job_ids(self) -> list[str]:
        """The launch job id of every Job held (the annotation launch writes), one entry per Job."""
        return [(j["metadata"].get("annotations") or {}).get("launch.dev/job-id", "") for j in self.objects("jobs")]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig whose current context (`fake`) is this server, with a bearer token."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }))
        return path

    # -- what tests read and do ---------------------------------------------------------

    def objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for (p, ns, _), o in sorted(self.store.items())
                    if p == plural and namespace in (None, ns)]

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.store.get((plural, namespace, name))
            return copy.deepcopy(found) if found else None

    def admit(self, name: str, namespace: str = "default") -> None:
        """What Kueue does when the queue admits a Job: unsuspend it."""
        with self.lock:
            job = self.store[("jobs", namespace, name)]
            job["spec"]["suspend"] = False
            self._bump(job)

    def set_condition(self, name: str, kind: str, namespace: str = "default") -> None:
        with self.lock:
            job = self.store[("jobs", namespace, name)]
            job["status"].setdefault("conditions", []).append(
                {"type": kind, "status": "True", "lastProbeTime": now_text(), "lastTransitionTime": now_text(),
                 "reason": kind, "message": f"the fake set {kind}"})
            self._bump(job)

    def finish_pod(self, pod_name: str, code: int, log: str = "", namespace: str = "default") -> None:
        """mode="phases": the container ends with `code`, having printed `log`."""
        with self.lock:
            pod = self.store[("pods", namespace, pod_name)]
            self._log_path(pod).write_text(log)
            self._terminate(pod, code)

    def write_log(self, pod_name: str, text: str, namespace: str = "default") -> None:
        with self.lock:
            pod = self.store[("pods", namespace, pod_name)]
            with self._log_path(pod).open("a") as handle:
                handle.write(text)

    def pods_of(self, job: str, namespace: str = "default") -> list[dict[str, Any]]:
        return [p for p in self.objects("pods", namespace) if p["metadata"]["labels"].get("job-name") == job]

    # -- HTTP ---------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlparse(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((handler.command, url.path))
        try:
            anonymous_read = (self.anonymous_reads and handler.command == "GET"
                              and "Authorization" not in handler.headers)
            if handler.headers.get("Authorization") != "Bearer fake-token" and not anonymous_read:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            code, body = self._route(handler.command, url.path, query, json.loads(raw) if raw else None,
                                     handler.headers.get("Content-Type", ""))
        except ApiError as exc:
            code, body = exc.code, status_body(exc.code, exc.reason, exc.message)
        except Exception as exc:  # a bug of the fake: answered, and recorded for the test to fail on
            bugs.record(NAME, exc)
            code, body = 500, status_body(500, "InternalError", repr(exc))
        if isinstance(body, str):
            data, kind = body.encode(), "text/plain"
        else:
            data, kind = json.dumps(body).encode(), "application/json"
        handler.send_response(code)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any, content_type: str) -> tuple[int, Any]:
        if path == "/version":
            return 200, {"major": "1", "minor": KUBE_VERSION.split(".")[1], "gitVersion": f"v{KUBE_VERSION}.0"}
        if path in ("/api", "/apis"):
            return 200, ({"kind": "APIVersions", "versions": ["v1"]} if path == "/api" else
                         {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                             {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                              "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]})
        if path in ("/api/v1", "/apis/batch/v1"):  # discovery, as kubectl asks for it
            group_version = path.removeprefix("/api/").removeprefix("/apis/")
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": [
                {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind,
                 "verbs": ["create", "delete", "get", "list", "patch"]}
                for plural, (_, kind, prefix) in KINDS.items() if prefix == path]}
        match = PATH.match(path)
        if not match or match["plural"] not in KINDS or KINDS[match["plural"]][2] != match["prefix"]:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        plural, ns, name, sub = match["plural"], match["ns"], match["name"], match["sub"]
        if ns not in self.namespaces:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found')
        with self.lock:
            if sub == "log" and method == "GET":
                return 200, self._read_log(ns, name, query)
            if name is None and method == "GET":
                return 200, self._list(plural, ns, query)
            if name is None and method == "POST":
                return 201, self._create(plural, ns, body)
            if method == "GET":
                return 200, self._read(plural, ns, name)
            if method == "PATCH":
                if "json-patch" in content_type:
                    raise ApiError(415, "UnsupportedMediaType", "the fake takes merge patches only")
                return 200, self._patch(plural, ns, name, body)
            if method == "DELETE":
                return 200, self._delete(plural, ns, name, (body or {}).get("propagationPolicy")
                                         or query.get("propagationPolicy"))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")

    # -- the API ------------------------------------------------------------------------

    def _bump(self, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)

    def _read(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        found = self.store.get((plural, ns, name))
        if found is None:
            raise ApiError(404, "NotFound", f'{plural}.{"batch" if plural == "jobs" else ""} "{name}" not found'
                           .replace(". ", " ").replace('."', ' "'))
        return copy.deepcopy(found)

    def _list(self, plural: str, ns: str, query: dict[str, str]) -> dict[str, Any]:
        items = []
        field = query.get("fieldSelector", "")
        wanted_name = field.split("=", 1)[1] if field.startswith("metadata.name=") else None
        for (p, n, name), obj in sorted(self.store.items()):
            labels = obj["metadata"].get("labels") or {}
            if p == plural and n == ns and selector_matches(query.get("labelSelector", ""), labels) \
                    and wanted_name in (None, name):
                items.append(copy.deepcopy(obj))
        api_version, kind, _ = KINDS[plural]
        return {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {"resourceVersion": str(self.version)},
                "items": items}

    def _validate(self, plural: str, obj: dict[str, Any]) -> None:
        """Strict schema validation and the client's own model: a field Kubernetes does not know is a 422."""
        import kubernetes_validate
        from kubernetes import client

        api_version, kind, _ = KINDS[plural]
        problem = None
        if obj.get("apiVersion") != api_version or obj.get("kind") != kind:
            problem = f"expected {api_version} {kind}, got {obj.get('apiVersion')} {obj.get('kind')}"
        else:
            try:
                kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
                getattr(client, f"V1{kind}").from_dict(obj)
            except kubernetes_validate.ValidationError as exc:
                problem = f"{'.'.join(str(p) for p in exc.path)}: {exc.message}"
            except Exception as exc:  # the model refused it (pydantic ValidationError)
                problem = f"the client's V1{kind} model: {exc}"
        if problem:
            self.rejected.append(f"{kind}: {problem}")
            raise ApiError(422, "Invalid", f'{kind} "{obj.get("metadata", {}).get("name")}" is invalid: {problem}')

    def _create(self, plural: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(copy.deepcopy(body))
        self._validate(plural, body)
        meta = body.setdefault("metadata", {})
        name = meta.get("name") or ""
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) or len(name) > (63 if plural in
                                                                                   ("services", "jobs") else 253):
            self.rejected.append(f"{plural}: bad name {name!r}")
            raise ApiError(422, "Invalid", f"metadata.name: Invalid value: {name!r}")
        if meta.get("namespace", ns) != ns:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the request's")
        if (plural, ns, name) in self.store:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        obj = copy.deepcopy(body)
        obj["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now_text(), generation=1)
        if plural == "secrets" and "stringData" in obj:  # the API server folds stringData into data
            data = obj.setdefault("data", {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(value.encode()).decode()
        if plural == "jobs":
            obj["status"] = {}
            spec = obj["spec"]
            spec.setdefault("suspend", False)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            obj["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {}).update(
                {"batch.kubernetes.io/controller-uid": obj["metadata"]["uid"],
                 "batch.kubernetes.io/job-name": name, "controller-uid": obj["metadata"]["uid"], "job-name": name})
        if plural == "pods":
            obj["status"] = {"phase": "Pending"}
        self._bump(obj)
        self.store[(plural, ns, name)] = obj
        return copy.deepcopy(obj)

    def _patch(self, plural: str, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        current = self._read(plural, ns, name)
        patched = merge_patch(current, patch)
        check = {k: v for k, v in patched.items() if k != "status"}
        check["metadata"] = {k: v for k, v in patched["metadata"].items()
                             if k in ("name", "namespace", "labels", "annotations", "ownerReferences")}
        self._validate(plural, check)
        self._bump(patched)
        self.store[(plural, ns, name)] = patched
        return copy.deepcopy(patched)

    def _delete(self, plural: str, ns: str, name: str, propagation: str | None) -> dict[str, Any]:
        obj = self._read(plural, ns, name)
        cascade = propagation in ("Foreground", "Background") or (propagation is None and plural != "jobs")
        self._remove(plural, ns, name, cascade)
        return status_body(200, "", "") | {"status": "Success", "details": {"name": name, "kind": plural,
                                                                            "uid": obj["metadata"]["uid"]}}

    def _remove(self, plural: str, ns: str, name: str, cascade: bool) -> None:
        obj = self.store.pop((plural, ns, name), None)
        if obj is None:
            return
        uid = obj["metadata"]["uid"]
        if plural == "pods":
            self._kill(uid)
        if cascade:  # the garbage collector: everything this object owns goes too
            for (p, n, other), dependent in list(self.store.items()):
                if n == ns and any(r.get("uid") == uid for r in dependent["metadata"].get("ownerReferences") or []):
                    self._remove(p, n, other, True)

    # -- the Job controller, scheduler and kubelet ---------------------------------------

    def _controllers(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                with self.lock:
                    for (plural, ns, name), job in list(self.store.items()):
                        if plural == "jobs":
                            self._sync_job(ns, name, job)
                    for (plural, _, _), pod in list(self.store.items()):
                        if plural == "pods":
                            self._sync_pod(pod)
            except Exception as exc:
                bugs.record(NAME, exc)

    def _condition(self, job: dict[str, Any], kind: str, status: str, reason: str, message: str) -> None:
        conditions = job["status"].setdefault("conditions", [])
        found = next((c for c in conditions if c["type"] == kind), None)
        if found and found["status"] == status:
            return
        entry = {"type": kind, "status": status, "lastProbeTime": now_text(), "lastTransitionTime": now_text(),
                 "reason": reason, "message": message}
        if found:
            found.update(entry)
        else:
            conditions.append(entry)
        self._bump(job)

    def _sync_job(self, ns: str, name: str, job: dict[str, Any]) -> None:
        spec, status = job["spec"], job["status"]
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in status.get("conditions", [])):
            return
        pods = [p for p in self.store.values() if p["kind"] == "Pod" and p["metadata"]["namespace"] == ns
                and any(r["uid"] == job["metadata"]["uid"] for r in p["metadata"].get("ownerReferences", []))]
        active = [p for p in pods if p["status"]["phase"] in ("Pending", "Running")]
        if spec["suspend"]:
            for pod in active:
                self._remove("pods", ns, pod["metadata"]["name"], False)
            self._condition(job, "Suspended", "True", "JobSuspended", "Job suspended")
            if status.get("active"):
                status["active"] = 0
                self._bump(job)
            return
        if any(c["type"] == "Suspended" for c in status.get("conditions", [])):
            self._condition(job, "Suspended", "False", "JobResumed", "Job resumed")
        if "startTime" not in status:
            status["startTime"] = now_text()
            self._bump(job)
        done = {int(p["metadata"]["annotations"][INDEX_KEY]) for p in pods if p["status"]["phase"] == "Succeeded"}
        failed = sum(1 for p in pods if p["status"]["phase"] == "Failed")
        counts = {"active": len(active), "succeeded": len(done), "failed": failed, "ready": sum(
            1 for p in active if p["status"]["phase"] == "Running")}
        indexes = ",".join(str(i) for i in sorted(done))
        if any(status.get(k, 0) != v for k, v in counts.items()) or status.get("completedIndexes", "") != indexes:
            status.update({k: v for k, v in counts.items() if v or k in status}, completedIndexes=indexes)
            self._bump(job)
        deadline = spec.get("activeDeadlineSeconds")
        started = datetime.strptime(status["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        ended = None
        if deadline is not None and time.time() - started >= deadline:
            ended = ("DeadlineExceeded", "Job was active longer than specified deadline")
        elif failed > spec["backoffLimit"]:
            ended = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        if ended:  # the controller deletes the pods still active
            for pod in active:
                self._remove("pods", ns, pod["metadata"]["name"], False)
            status["active"] = 0
            self._condition(job, "Failed", "True", *ended)
            return
        if len(done) == spec["completions"]:
            status["completionTime"] = now_text()
            self._condition(job, "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")
            return
        busy = {int(p["metadata"]["annotations"][INDEX_KEY]) for p in active}
        for index in range(spec["completions"]):
            if index not in done and index not in busy:
                self._new_pod(ns, name, job, index)

    def _new_pod(self, ns: str, job_name: str, job: dict[str, Any], index: int) -> None:
        template = copy.deepcopy(job["spec"]["template"])
        meta = template.get("metadata") or {}
        meta["labels"] = {**meta.get("labels", {}), INDEX_KEY: str(index)}
        meta["annotations"] = {**meta.get("annotations", {}), INDEX_KEY: str(index)}
        meta["name"] = f"{job_name}-{index}-{secrets.token_hex(3)[:5]}"
        meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name,
                                    "uid": job["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
        spec = template["spec"]
        spec["hostname"] = f"{job_name}-{index}"
        for container in spec["containers"]:
            container["env"] = [*container.get("env", []), {"name": "JOB_COMPLETION_INDEX", "value": str(index)}]
        self._create("pods", ns, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
        self.created.pop()  # the controller's, not the client's

    def _sync_pod(self, pod: dict[str, Any]) -> None:
        status = pod["status"]
        kubelet = self.kubelet.setdefault(pod["metadata"]["uid"], {"pulls": 0, "started": False})
        if status["phase"] != "Pending" or kubelet["started"]:
            if status["phase"] == "Running" and pod["metadata"]["uid"] in self.processes:
                code = self.processes[pod["metadata"]["uid"]].poll()
                if code is not None:
                    self.processes.pop(pod["metadata"]["uid"])
                    self._terminate(pod, code if code >= 0 else 128 - code)
            return
        if not status.get("conditions"):
            node = self._schedule(pod)
            if node is None:
                return
            pod["spec"]["nodeName"] = node
            status["conditions"] = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_text()}]
            self._waiting(pod, "ContainerCreating", "")
            return
        if any(c["type"] == "PodScheduled" and c["status"] == "False" for c in status["conditions"]):
            return
        image = pod["spec"]["containers"][0]["image"]
        if image.startswith(self.unpullable):
            reason = "ImagePullBackOff" if kubelet["pulls"] else "ErrImagePull"
            kubelet["pulls"] += 1
            self._waiting(pod, reason, f'Back-off pulling image "{image}"' if reason == "ImagePullBackOff" else
                          f'failed to pull and unpack image "{image}": dial tcp: lookup registry.invalid: no such host')
            return
        if not self._volumes_ready(pod):
            return
        kubelet["started"] = True
        if self.mode == "run":
            self.processes[pod["metadata"]["uid"]] = self._start(pod)
        status.update(phase="Running", startTime=now_text(), podIP="127.0.0.1")
        status["containerStatuses"] = [self._container_status(pod, {"running": {"startedAt": now_text()}})]
        self._bump(pod)

    def _container_status(self, pod: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        container = pod["spec"]["containers"][0]
        return {"name": container["name"], "image": container["image"], "imageID": "", "ready": "running" in state,
                "restartCount": 0, "started": "running" in state, "state": state}

    def _waiting(self, pod: dict[str, Any], reason: str, message: str) -> None:
        previous = (pod["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting", {})
        if previous.get("reason") == reason:
            return
        pod["status"]["containerStatuses"] = [self._container_status(pod, {"waiting": {"reason": reason,
                                                                                       "message": message}})]
        self._bump(pod)

    def _terminate(self, pod: dict[str, Any], code: int, reason: str | None = None) -> None:
        self._kill(pod["metadata"]["uid"])
        pod["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
        pod["status"]["containerStatuses"] = [self._container_status(pod, {"terminated": {
            "exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": pod["status"].get("startTime", now_text()), "finishedAt": now_text()}})]
        self._bump(pod)

    def _schedule(self, pod: dict[str, Any]) -> str | None:
        """The first node with the GPUs free and the labels asked for; else Unschedulable, said as the API does."""
        wanted = sum(int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
                     for c in pod["spec"]["containers"])
        selector = pod["spec"].get("nodeSelector") or {}
        used: dict[str, int] = {}
        for other in self.store.values():
            if other["kind"] == "Pod" and other["status"]["phase"] in ("Pending", "Running"):
                node = other["spec"].get("nodeName")
                if node:
                    used[node] = used.get(node, 0) + sum(int(c.get("resources", {}).get("limits", {}).get(
                        "nvidia.com/gpu", 0)) for c in other["spec"]["containers"])
        short, mismatched = 0, 0
        for node in self.nodes:
            if any(node["labels"].get(k) != v for k, v in selector.items()):
                mismatched += 1
            elif node["gpus"] - used.get(node["name"], 0) < wanted:
                short += 1
            else:
                return node["name"]
        why = ([f"{short} Insufficient nvidia.com/gpu"] if short else []) + (
            [f"{mismatched} node(s) didn't match Pod's node affinity/selector"] if mismatched else [])
        message = f"0/{len(self.nodes)} nodes are available: {', '.join(why)}."
        if not pod["status"].get("conditions"):
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": message, "lastTransitionTime": now_text()}]
            self._bump(pod)
        return None

    def _volumes_ready(self, pod: dict[str, Any]) -> bool:
        """A configMap or secret volume waits for its object (the kubelet retries the mount)."""
        ns = pod["metadata"]["namespace"]
        for volume in pod["spec"].get("volumes", []):
            for plural, key in (("configmaps", "configMap"), ("secrets", "secret")):
                ref = volume.get(key)
                if ref and (plural, ns, ref.get("name") or ref.get("secretName")) not in self.store:
                    return False
        for container in pod["spec"]["containers"]:
            for source in container.get("envFrom", []):
                ref = source.get("secretRef") or source.get("configMapRef") or {}
                plural = "secrets" if "secretRef" in source else "configmaps"
                if (plural, ns, ref.get("name")) not in self.store and not ref.get("optional"):
                    return False
        return True

    # -- mode="run": containers as local processes -----------------------------------------

    def _pod_dir(self, pod: dict[str, Any]) -> Path:
        return self.root / pod["metadata"]["namespace"] / pod["metadata"]["name"]

    def _log_path(self, pod: dict[str, Any]) -> Path:
        path = self._pod_dir(pod) / "container.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _start(self, pod: dict[str, Any]) -> subprocess.Popen[bytes]:
        ns, spec = pod["metadata"]["namespace"], pod["spec"]
        base = self._pod_dir(pod)
        mounts: dict[str, Path] = {}
        for volume in spec.get("volumes", []):
            where = base / "volumes" / volume["name"]
            where.mkdir(parents=True, exist_ok=True)
            source = volume.get("configMap") or volume.get("secret")
            if source:
                obj = self.store[("configmaps" if "configMap" in volume else "secrets", ns,
                                  source.get("name") or source.get("secretName"))]
                for key, value in (obj.get("data") or {}).items():
                    (where / key).write_bytes(base64.b64decode(value) if "secret" in volume else value.encode())
                for key, value in (obj.get("binaryData") or {}).items():
                    (where / key).write_bytes(base64.b64decode(value))
            mounts[volume["name"]] = where
        container = spec["containers"][0]
        table = sorted(((m["mountPath"], mounts[m["name"]]) for m in container.get("volumeMounts", [])),
                       key=lambda pair: -len(pair[0]))

        def local(text: str) -> str:
            for mount_path, where in table:
                text = re.sub(rf"(?<![\w/]){re.escape(mount_path)}(?=/|$|\s)", str(where), text)
            return text

        env = {"PATH": self.image_path, "HOSTNAME": spec.get("hostname", "")}
        for source in container.get("envFrom", []):
            ref = source.get("secretRef") or source.get("configMapRef")
            obj = self.store[("secrets" if "secretRef" in source else "configmaps", ns, ref["name"])]
            for key, value in (obj.get("data") or {}).items():
                env[key] = base64.b64decode(value).decode() if "secretRef" in source else value
        for item in container.get("env", []):
            env[item["name"]] = local(item.get("value", ""))
        argv = [local(a) for a in [*container.get("command", []), *container.get("args", [])]]
        hostname = spec.get("hostname") or pod["metadata"]["name"]
        hosts = base / "hosts"
        names = [f"127.0.0.1\tlocalhost\n127.0.0.1\t{hostname}\n"]
        for other in self.store.values():
            if other["kind"] == "Pod" and other["spec"].get("subdomain") and \
                    other["spec"].get("subdomain") == spec.get("subdomain"):
                host, sub = other["spec"]["hostname"], other["spec"]["subdomain"]
                names.append(f"127.0.0.1\t{host}.{sub} {host}.{sub}.{ns}.svc.cluster.local\n")
        if spec.get("subdomain"):  # the pods the controller has not made yet answer too (DNS is eventual)
            job = pod["metadata"]["labels"].get("job-name")
            completions = self.store.get(("jobs", ns, job), {}).get("spec", {}).get("completions", 1)
            for index in range(completions):
                host, sub = f"{job}-{index}", spec["subdomain"]
                names.append(f"127.0.0.1\t{host}.{sub} {host}.{sub}.{ns}.svc.cluster.local\n")
        hosts.write_text("".join(dict.fromkeys(names)))
        inner = (f"mount --bind {shlex.quote(str(hosts))} /etc/hosts && hostname {shlex.quote(hostname)} && "
                 'exec "$@"')
        log = self._log_path(pod).open("ab")
        try:
            return subprocess.Popen(["unshare", "--user", "--map-root-user", "--mount", "--uts", "sh", "-c", inner,
                                     "container", *argv], cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

    def _kill(self, uid: str) -> None:
        process = self.processes.pop(uid, None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _read_log(self, ns: str, name: str, query: dict[str, str]) -> str:
        pod = self._read("pods", ns, name)
        waiting = (pod["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting")
        if pod["status"]["phase"] == "Pending":
            reason = (waiting or {}).get("reason", "ContainerCreating")
            raise ApiError(400, "BadRequest", f'container "job" in pod "{name}" is waiting to start: {reason}')
        path = self._log_path(pod)
        text = path.read_text(errors="replace") if path.exists() else ""
        if query.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(query["tailLines"]):]) if int(query["tailLines"]) else ""
        return text
