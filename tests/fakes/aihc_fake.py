"""A local fake of Baidu AI Cloud AIHC's v2 job API whose jobs really run, on this machine.

    with AihcFake(s3_endpoint, mount_root) as aihc:    # aihc.endpoint == "127.0.0.1:PORT" (protocol http)
        aihc.fail_next_create("ResourceQuotaExceeded", 400)  # the next CreateJob is refused with this code
        aihc.hold = True                                # new jobs stay Pending until hold is False again
        aihc.set_status(job_id, "Paused")               # a raw state AIHC may add later
        aihc.created                                    # every CreateJob as received: {method, path, query,
                                                        #   headers: {X-API-Version}, body}
        aihc.jobs                                       # {jobId: job dict} (DescribeJob's shape plus "_pods")
        aihc.violations                                 # requests the API definition rejects (must stay [])

bce-python-sdk reaches it through `BceClientConfiguration(endpoint="127.0.0.1:PORT", protocol=HTTP)`. Every
request must be POST /?action=<Action> with a bce-auth-v1 Authorization header for the fake's AccessKey
id and `X-API-Version: v2`; its query and JSON body are checked against the published definition
(tests/vendor/bce-openapi-meta-aihc/, see PROVENANCE.md): no parameter the action does not have (at
any depth, `sub_parameters`), every required one there (a sub-parameter is required where the i18n
text says "Yes"), each of its declared type, and no explicit null anywhere (the definition has no
nullable parameter). A request that breaks it is recorded and refused in Baidu's error shape
({requestId, code, message}, as the SDK's aihc_handler.parse_error reads it).

A job moves Created, Pending, Scheduled, Running, then Succeeded / Failed, or Stopped after StopJob,
and really runs: its `bos` datasources are "mounted" by copying that BOS prefix (a bucket of the moto
S3 server the test gives, BOS's S3-compatible API) to their mountPath, which must lie under
`mount_root`; then its `replicas` pods (<name>-master-0, <name>-worker-<i>) run `command` with `sh -c`,
the job's envs, and what Kubeflow's PyTorch operator gives each pod (MASTER_ADDR=127.0.0.1,
MASTER_PORT, WORLD_SIZE, RANK). A pod's output is its log (DescribeJobLogs); the job fails when a pod
exits non-zero, and StopJob ends every pod's process group.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

from fakes.bucket_stack import BucketStack, ServedJobsFake

from . import bugs

VENDOR = Path(__file__).resolve().parent.parent / "vendor" / "bce-openapi-meta-aihc"  # PROVENANCE.md
ACTIONS = ("CreateJob", "DescribeJob", "DescribeJobs", "DescribeJobLogs", "StopJob")
TERMINAL = ("Succeeded", "Failed", "Stopped")
ACCESS_KEY_ID = "bce-test-access-key-id"
SECRET_ACCESS_KEY = "test-secret-access-key"
DEFAULT_SIGNED = ("host", "content-md5", "content-length", "content-type")  # and every x-bce-* header
LOG_PAGE = 200  # lines per DescribeJobLogs answer; more come with nextMarker
TYPES: dict[str, tuple[type, ...]] = {"String": (str,), "Integer": (int,), "Boolean": (bool,), "Object": (dict,),
                                      "List": (list,)}


def definition(action: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The action's parameters (schema) and their English descriptions (i18n), from the vendored copies."""
    schema = json.loads((VENDOR / f"schema-{action}.json").read_text(encoding="utf-8"))
    texts = json.loads((VENDOR / f"i18n-en-US-{action}.json").read_text(encoding="utf-8"))[action]
    return schema["parameters"], texts


def check_request(action: str, query: dict[str, str], body: Any) -> list[str]:
    """What the published definition rejects in this request: unknown, missing, mistyped or null fields."""
    params, texts = definition(action)
    problems = []
    in_query = {p["name"]: p for p in params if p["position"] == "QUERY"}
    in_body = [p for p in params if p["position"] == "BODY"]
    for name in sorted(set(query) - set(in_query) - {"action"}):
        problems.append(f"{action}: query parameter {name!r} is not in the definition")
    for name, param in in_query.items():
        if param.get("required") and not query.get(name):
            problems.append(f"{action}: required query parameter {name!r} missing")
    if not isinstance(body, dict):
        return [*problems, f"{action}: the body is not a JSON object"]
    problems += _check_fields(action, body, in_body, texts, f"{action}.")
    return problems


def _check_fields(action: str, value: dict[str, Any], params: list[dict[str, Any]], texts: dict[str, str],
                  prefix: str) -> list[str]:
    problems = []
    known = {p["name"]: p for p in params}
    for key in value:
        if key not in known:
            problems.append(f"{prefix}{key}: not in the definition")
    for name, param in known.items():
        path = prefix.removeprefix(f"{action}.") + name
        required = param.get("required") or texts.get(path) == "Yes"
        if name not in value:
            if required:
                problems.append(f"{prefix}{name}: required, missing")
            continue
        item = value[name]
        if item is None:
            problems.append(f"{prefix}{name}: explicit null (the definition has no nullable parameter)")
            continue
        wanted = TYPES.get(param["type"], (object,))
        if not isinstance(item, wanted) or (param["type"] == "Integer" and isinstance(item, bool)):
            problems.append(f"{prefix}{name}: {type(item).__name__} where the definition says {param['type']}")
            continue
        subs = param.get("sub_parameters")
        if subs and isinstance(item, dict):
            problems += _check_fields(action, item, subs, texts, f"{prefix}{name}.")
        elif subs and isinstance(item, list):
            for index, entry in enumerate(item):
                if not isinstance(entry, dict):
                    problems.append(f"{prefix}{name}[{index}]: not an object")
                else:
                    problems += _check_fields(action, entry, subs, texts, f"{prefix}{name}.")
    return problems


def _uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """BCE's UriEncode: RFC 3986 unreserved characters as they are, every other byte %XX (upper case)."""
    return quote(text, safe="-_.~" + ("/" if keep_slash else ""))


def expected_signature(auth: str, method: str, path: str, query: dict[str, str], headers: Any,
                       secret: str) -> str | None:
    """The signature a bce-auth-v1 Authorization header must end with, computed here from BCE's documented
    algorithm (not the SDK's signer): None when the header is not of that shape."""
    parts = auth.split("/")
    if len(parts) != 6 or parts[0] != "bce-auth-v1":
        return None
    prefix = "/".join(parts[:4])
    signing_key = hmac.new(secret.encode(), prefix.encode(), hashlib.sha256).hexdigest()
    signed = [h.lower() for h in parts[4].split(";") if h] if parts[4] else []
    canonical_query = "&".join(sorted(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in query.items()
                                      if k.lower() != "authorization"))
    lines = []
    for name, value in headers.items():
        low = name.strip().lower()
        if not value.strip():
            continue
        if (low in signed) if signed else (low.startswith("x-bce-") or low in DEFAULT_SIGNED):
            lines.append(f"{_uri_encode(low)}:{_uri_encode(value.strip())}")
    canonical = "\n".join([method, _uri_encode(path, keep_slash=True), canonical_query, "\n".join(sorted(lines))])
    return hmac.new(signing_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def now_iso(at: float | None = None) -> str:
    return datetime.datetime.fromtimestamp(at or time.time(), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AihcFake(ServedJobsFake):
    NAME: ClassVar[str] = "aihc_fake"
    METHODS: ClassVar[tuple[str, ...]] = ("POST", "GET")

    def __init__(self, s3_endpoint: str, mount_root: Path, *, resource_pool_id: str = "cce-test-pool",
                 queue: str = "default", step_s: float = 0.05) -> None:
        self.s3_endpoint = s3_endpoint
        self.mount_root = Path(mount_root).resolve()
        self.resource_pool_id = resource_pool_id
        self.queue = queue
        self.step_s = step_s  # time between two of a job's states before it runs
        self.lock = threading.RLock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.calls: list[str] = []  # the actions, in order
        self.hold = False
        self._closed = False
        self._create_failures: list[tuple[str, int]] = []
        self._procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self._server: bugs.RecordingHTTPServer | None = None
        self._s3: Any = None
        self.endpoint = ""

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.stop_all()
        with self.lock:
            self.jobs.clear()
            self.created.clear()
            self.calls.clear()
            self._create_failures.clear()
            self.hold = False

    def stop_all(self) -> None:
        """End every job: those not running yet never start, running pods are ended (a test leaves nothing)."""
        with self.lock:
            for job in self.jobs.values():
                if job["status"] not in TERMINAL:
                    job.update(status="Stopped", finishedAt=now_iso())
            ids = list(self._procs)
        for job_id in ids:
            self._kill(job_id)

    # -- the moves only a provider makes -----------------------------------------------------------------------
    def fail_next_create(self, code: str, status: int = 400) -> None:
        with self.lock:
            self._create_failures.append((code, status))

    def set_status(self, job_id: str, raw: str) -> None:
        with self.lock:
            self.jobs[job_id]["status"] = raw

    def by_launch_id(self, launch_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [j for j in self.jobs.values()
                    if {"key": "launch-job-id", "value": launch_id} in j["labels"]]

    def job_by_launch_id(self, launch_id: str) -> dict[str, Any]:
        (job,) = self.by_launch_id(launch_id)
        return job

    def wait_ended(self, launch_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                jobs = self.by_launch_id(launch_id)
                if jobs and all(j["status"] in TERMINAL for j in jobs):
                    return jobs[0]
            time.sleep(0.05)
        raise AssertionError(f"AIHC job {launch_id} did not end within {timeout}s")

    # -- HTTP --------------------------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        action = query.get("action", "")
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self.lock:
            self.calls.append(action)
        if handler.command != "POST" or url.path != "/" or action not in ACTIONS:
            return self._refuse(handler, 404, "NoSuchAction", f"{handler.command} {url.path}?action={action}")
        auth = handler.headers.get("Authorization") or ""
        parts = auth.split("/")
        if not auth.startswith("bce-auth-v1/") or len(parts) != 6 or not parts[5]:
            return self._refuse(handler, 400, "InvalidHTTPAuthHeader", f"{action}: no bce-auth-v1 signature "
                                f"(Authorization: {auth[:30]!r})")
        if parts[1] != ACCESS_KEY_ID:
            return self._error(handler, 403, "InvalidAccessKeyId", "The access key id does not exist")
        if handler.headers.get("X-API-Version") != "v2":
            return self._refuse(handler, 400, "InvalidVersion",
                                f"{action}: X-API-Version {handler.headers.get('X-API-Version')!r}, not v2")
        signature = expected_signature(auth, handler.command, url.path, query, handler.headers, SECRET_ACCESS_KEY)
        if parts[5] != signature:
            return self._refuse(handler, 400, "SignatureDoesNotMatch", f"{action}: the bce-auth-v1 signature "
                                "does not match the request as received")
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            return self._refuse(handler, 400, "MalformedJSON", f"{action}: the body is not JSON: {exc}")
        problems = check_request(action, query, body)
        if problems:
            return self._refuse(handler, 400, "InvalidParameter", "; ".join(problems))
        if query.get("resourcePoolId") != self.resource_pool_id:
            return self._error(handler, 404, "ResourcePoolNotFound",
                               f"no resource pool {query.get('resourcePoolId')!r}")
        try:
            status, answer = getattr(self, f"_{action}")(query, body)
        except Exception:
            bugs.record("aihc_fake")
            return self._error(handler, 500, "InternalError", "the fake raised")
        if status != 200:
            return self._error(handler, status, answer["code"], answer["message"])
        if action == "CreateJob":
            with self.lock:
                self.created.append({"method": "POST", "path": "/", "query": dict(query),
                                     "headers": {"X-API-Version": "v2"}, "body": body})
        self._send(handler, 200, {"requestId": str(uuid.uuid4()), **answer})

    def _refuse(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        """A request the definition does not allow: recorded (a test fails on it) and refused as AIHC would."""
        with self.lock:
            self.violations.append(message)
        self._error(handler, status, code, message)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json;charset=utf-8")
        handler.send_header("x-bce-request-id", str(uuid.uuid4()))
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        self._send(handler, status, {"requestId": str(uuid.uuid4()), "code": code, "message": message})

    # -- operations --------------------------------------------------------------------------------------------
    def _CreateJob(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if self._create_failures:
                code, status = self._create_failures.pop(0)
                return status, {"code": code, "message": f"the fake refused this job ({code})"}
        if body["queue"] != self.queue or query["queueID"] != self.queue:
            return 404, {"code": "QueueNotFound", "message": f"no queue {body['queue']!r} in this pool"}
        job_id = "job-" + uuid.uuid4().hex[:12]
        spec = body["jobSpec"]
        replicas = int(spec.get("replicas") or 1)
        names = [f"{body['name']}-master-0"] + [f"{body['name']}-worker-{i}" for i in range(replicas - 1)]
        job = {
            "jobId": job_id, "name": body["name"], "resourcePoolId": query["resourcePoolId"], "queue": body["queue"],
            "status": "Created", "createdAt": now_iso(), "command": body["command"], "image": spec.get("image", ""),
            "replicas": replicas, "labels": list(body.get("labels") or []), "envs": list(spec.get("envs") or []),
            "resources": list(spec.get("resources") or []), "enableRDMA": bool(spec.get("enableRDMA")),
            "priority": body.get("priority") or "normal", "datasources": list(body.get("datasources") or []),
            "jobFramework": body.get("jobType") or "PyTorchJob",
            "_pods": [{"objectMeta": {"name": name, "creationTimestamp": ""},
                       "podStatus": {"podPhase": "Pending", "status": "Pending"},
                       "replicaType": "Master" if rank == 0 else "Worker", "restartCount": 0} for rank, name
                      in enumerate(names)],
        }
        with self.lock:
            self.jobs[job_id] = job
        threading.Thread(target=self._life, args=(job_id,), daemon=True).start()
        return 200, {"jobId": job_id, "jobName": body["name"]}

    def _found(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        job = self.jobs.get(body["jobId"])
        return job if job is not None and job["queue"] == query.get("queueID") else None

    def _DescribeJob(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            job = self._found(query, body)
            if job is None:
                return 404, {"code": "JobNotFound", "message": f"no job {body['jobId']}"}
            answer = _public(job)
            if body.get("needDetail"):
                pods = [_public(p) for p in job["_pods"] if p["podStatus"]["podPhase"] != "Pending"]
                answer["podList"] = {"listMeta": {"totalItems": len(pods)}, "pods": pods}
            return 200, answer

    def _DescribeJobs(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            jobs = [j for j in self.jobs.values()
                    if (not body.get("queue") or j["queue"] == body["queue"])
                    and (not body.get("status") or j["status"] == body["status"])
                    and (not body.get("keyword") or body["keyword"] in
                         (j["name"] if body.get("keywordType", "name") == "name" else j["queue"]))]
            jobs.sort(key=lambda j: j["createdAt"], reverse=body.get("order", "desc") == "desc")
            size, number = int(body.get("pageSize") or 10), int(body.get("pageNumber") or 1)
            page = jobs[(number - 1) * size:number * size]
            return 200, {"totalCount": len(jobs), "jobs": [_public(j) for j in page]}

    def _StopJob(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            job = self._found(query, body)
            if job is None:
                return 404, {"code": "JobNotFound", "message": f"no job {body['jobId']}"}
            if job["status"] in TERMINAL:
                return 200, {"jobId": body["jobId"]}
            job["status"] = "Terminating"
        threading.Thread(target=self._stop, args=(body["jobId"],), daemon=True).start()
        return 200, {"jobId": body["jobId"]}

    def _DescribeJobLogs(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            job = self._found(query, body)
            pods = {p["objectMeta"]["name"]: p for p in (job or {}).get("_pods", [])}
            if body["podName"] not in pods:
                return 404, {"code": "PodNotFound", "message": f"no pod {body['podName']} in job {body['jobId']}"}
            log = pods[body["podName"]].get("_log")
        text = Path(log).read_text(errors="replace") if log and Path(log).exists() else ""
        lines = text.split("\n")
        lines.pop()  # "" after the last newline, or a line still being written (not a line yet)
        start = int(body.get("marker") or 0)
        end = start + LOG_PAGE
        return 200, {"jobId": body["jobId"], "podName": body["podName"], "logs": lines[start:end],
                     "nextMarker": str(end) if end < len(lines) else ""}

    # -- a job's life ------------------------------------------------------------------------------------------
    def _move(self, job_id: str, status: str, **extra: Any) -> bool:
        """Move on unless the job was stopped meanwhile (StopJob wins)."""
        with self.lock:
            job = self.jobs.get(job_id)
            if self._closed or job is None or job["status"] in ("Terminating", *TERMINAL):
                return False
            job.update(status=status, **extra)
            return True

    def _life(self, job_id: str) -> None:
        for status in ("Pending", "Scheduled"):
            time.sleep(self.step_s)
            while status == "Scheduled" and self.hold and not self._closed:
                time.sleep(0.05)
            if not self._move(job_id, status):
                return
        with self.lock:
            job = self.jobs[job_id]
        try:
            self._mount(job["datasources"])
        except Exception as exc:  # a mount AIHC could not make fails the job
            self._move(job_id, "Failed", finishedAt=now_iso())
            with self.lock:
                job["_pods"][0]["reason"] = f"mount failed: {exc}"
            return
        port = _free_port()
        pods_dir = self.mount_root.parent / "pods" / job_id
        procs = []
        with self.lock:
            if job["status"] != "Scheduled" or self._closed or self.jobs.get(job_id) is not job:
                return  # stopped, or forgotten by a reset, while it was being prepared
            envs = {e["name"]: e.get("value", "") for e in job["envs"]}
            for rank, pod in enumerate(job["_pods"]):
                workdir = pods_dir / str(rank)
                workdir.mkdir(parents=True, exist_ok=True)
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8",
                       **envs, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "WORLD_SIZE": str(len(job["_pods"])), "RANK": str(rank)}
                log = workdir / "pod.log"
                with open(log, "wb") as out:
                    procs.append(subprocess.Popen(["sh", "-c", job["command"]], cwd=workdir, env=env,
                                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                  start_new_session=True))
                pod.update(_log=str(log), PodIP="127.0.0.1", nodeName="fake-node",
                           podStatus={"podPhase": "Running", "status": "Running"})
                pod["objectMeta"]["creationTimestamp"] = now_iso()
            self._procs[job_id] = procs
            job.update(status="Running", runningAt=now_iso())
        codes = [proc.wait() for proc in procs]
        with self.lock:
            for pod, code in zip(job["_pods"], codes, strict=True):
                phase = "Succeeded" if code == 0 else "Failed"
                pod.update(podStatus={"podPhase": phase, "status": phase}, finishedAt=now_iso())
                if code != 0:
                    pod["reason"] = f"exited with code {code}"
            self._procs.pop(job_id, None)
        self._move(job_id, "Succeeded" if all(code == 0 for code in codes) else "Failed", finishedAt=now_iso())

    def _mount(self, sources: list[dict[str, Any]]) -> None:
        """Copy each bos://<bucket>/<prefix>/ to its mountPath (which must be under mount_root)."""
        for source in sources:
            if source.get("type") != "bos":
                continue
            bucket, _, prefix = str(source.get("sourcePath") or "").removeprefix("bos://").partition("/")
            target = Path(source.get("mountPath") or "").resolve()
            if not target.is_relative_to(self.mount_root):
                raise ValueError(f"mountPath {target} is outside what this fake may write ({self.mount_root})")
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    dest = target / item["Key"][len(prefix):]
                    if dest.exists() and dest.stat().st_size == item["Size"]:
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    self._s3.download_file(bucket, item["Key"], str(dest))

    def _stop(self, job_id: str) -> None:
        self._kill(job_id)
        with self.lock:
            job = self.jobs[job_id]
            for pod in job["_pods"]:
                if pod["podStatus"]["podPhase"] in ("Pending", "Running"):
                    pod["podStatus"] = {"podPhase": "Failed", "status": "Terminated"}
            job.update(status="Stopped", finishedAt=now_iso())

    def _kill(self, job_id: str) -> None:
        with self.lock:
            procs = list(self._procs.get(job_id, []))
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """As AIHC shows it: the fake's own bookkeeping (keys starting with _) left out."""
    return {k: json.loads(json.dumps(v)) for k, v in item.items() if not k.startswith("_")}


def baidu_error(code: int, path: str, headers: Any, error_code: str | None = None) -> tuple[bytes, str]:
    """The fault proxy's answers in Baidu's error shape ({requestId, code, message}), as the SDK reads it."""
    default = {401: "InvalidAccessKeyId", 403: "AccessDenied", 429: "RequestLimitExceeded",
               500: "InternalError", 503: "ServiceUnavailable"}.get(code, "InternalError")
    body = {"requestId": str(uuid.uuid4()), "code": error_code or default, "message": f"fault proxy: {code}"}
    return json.dumps(body).encode(), "application/json;charset=utf-8"


class AihcStack(BucketStack):
    """What an aihc test needs: moto's S3 (standing in for BOS's S3-compatible API) with the bucket, the
    AIHC fake mounting from it, and the config.toml that points the backend at both.

        with AihcStack(tmp) as stack:   # stack.aihc, stack.s3_endpoint, stack.config(endpoint=...)
    """

    ACCESS_KEY: ClassVar[dict[str, str]] = {"BCE_ACCESS_KEY_ID": ACCESS_KEY_ID,
                                            "BCE_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}

    @property
    def aihc(self) -> AihcFake:
        return self.fake

    def start_fake(self) -> AihcFake:
        return AihcFake(self.s3_endpoint, self.mount).__enter__()

    def config(self, endpoint: str | None = None) -> str:
        return (f'[backends.aihc]\nregion = "bj"\nresource_pool_id = "{self.aihc.resource_pool_id}"\n'
                f'queue = "{self.aihc.queue}"\nbos_bucket = "{self.BUCKET}"\n'
                f'endpoint = "{endpoint or self.aihc.endpoint}"\nprotocol = "http"\n'
                f'bos_endpoint = "{self.s3_endpoint}"\nmount_path = "{self.mount}/"\n')
