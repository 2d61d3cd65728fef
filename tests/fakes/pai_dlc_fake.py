"""A local fake of Alibaba Cloud PAI-DLC's REST API (2020-12-03) whose jobs really run, on this machine.

    with PaiDlcFake(s3_endpoint, mount_root) as dlc:   # dlc.endpoint == "127.0.0.1:PORT" (Config(protocol="http"))
        dlc.fail_next_create("QuotaExceeded", 400)     # the next CreateJob is refused with this code
        dlc.hold = True                                # new jobs stay Queuing until hold is False again
        dlc.set_status(dlc_job_id, "Paused")           # a raw state DLC may add later
        dlc.created_bodies                             # every CreateJob body as received
        dlc.jobs                                       # {JobId: job dict} (GetJob's shape plus "_pods")
        dlc.violations                                 # requests the API definition rejects (must stay [])

The official SDK reaches it through ``Config(endpoint="127.0.0.1:PORT", protocol="http")``. Every request
must carry the SDK's ACS3-HMAC-SHA256 Authorization header and the x-acs-action / x-acs-version of the
route; every body and query is checked strictly against the SDK's own TeaModel classes (they drop unknown
keys silently, so the fake compares key sets: what `from_map(x).to_map()` keeps must be all of x), with
the required fields from the API's published definition (``tests/vendor/pai-dlc-20201203-main.tea``,
see PROVENANCE.md there: "This parameter is required." in a field's description). Every answer is
checked the same way against the response body's model before it is sent.

A job moves through DLC's states (Creating, Queuing, EnvPreparing, Running, then Succeeded / Failed, or
Stopping, Stopped) and really runs: its DataSources with an oss:// Uri are "mounted" by copying that
OSS prefix (an S3 bucket of the moto server the test gives) to their MountPath, which must lie under
``mount_root``; then each of its PodCount pods runs UserCommand with ``sh -c`` and the job's Envs plus
what DLC injects into a PyTorchJob's pods (MASTER_ADDR=127.0.0.1, MASTER_PORT, WORLD_SIZE, RANK). A pod's
output is its log (GetPodLogs); the job fails when a pod exits non-zero, and StopJob ends every pod's
process group.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from fakes.bucket_stack import BucketStack, ServedJobsFake

from . import bugs

TEA_PATH = Path(__file__).resolve().parent.parent / "vendor" / "pai-dlc-20201203-main.tea"  # PROVENANCE.md
VERSION = "2020-12-03"
TERMINAL = ("Succeeded", "Failed", "Stopped")
# (method, path pattern, x-acs-action, request model, where its fields travel, response body model)
ROUTES = [
    ("POST", re.compile(r"/api/v1/jobs"), "CreateJob", "CreateJobRequest", "body", "CreateJobResponseBody"),
    ("GET", re.compile(r"/api/v1/jobs"), "ListJobs", "ListJobsShrinkRequest", "query", "ListJobsResponseBody"),
    ("GET", re.compile(r"/api/v1/jobs/(?P<job>[^/]+)"), "GetJob", "GetJobRequest", "query", "GetJobResponseBody"),
    ("POST", re.compile(r"/api/v1/jobs/(?P<job>[^/]+)/stop"), "StopJob", None, "none", "StopJobResponseBody"),
    ("GET", re.compile(r"/api/v1/jobs/(?P<job>[^/]+)/pods/(?P<pod>[^/]+)/logs"), "GetPodLogs",
     "GetPodLogsRequest", "query", "GetPodLogsResponseBody"),
]


def required_fields(model: str, tea: str) -> set[str]:
    """The wire names of `model`'s fields that main.tea describes as required."""
    match = re.search(rf"^model {model} \{{\n(.*?)^\}}$", tea, re.M | re.S)
    if not match:
        raise KeyError(f"main.tea has no model {model}")
    found = set()
    # one chunk per field at the model's own level (two spaces in); nested inline fields stay in their chunk
    for chunk in re.split(r"\n(?=  [a-zA-Z]\w*\??:)", "\n" + match.group(1)):
        names = re.findall(r"\(name='(\w+)'", chunk)  # the last is the field's own (after any nested ones)
        if names and "This parameter is required." in chunk.rsplit("(name=", 1)[-1]:
            found.add(names[-1])
    return found


def now_iso(at: float | None = None) -> str:
    return datetime.datetime.fromtimestamp(at or time.time(), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PaiDlcFake(ServedJobsFake):
    NAME: ClassVar[str] = "pai_dlc_fake"
    METHODS: ClassVar[tuple[str, ...]] = ("GET", "POST")

    def __init__(self, s3_endpoint: str, mount_root: Path, *, workspace_id: str = "ws-test",
                 step_s: float = 0.05) -> None:
        self.s3_endpoint = s3_endpoint
        self.mount_root = Path(mount_root).resolve()
        self.workspace_id = workspace_id
        self.step_s = step_s  # time between two of a job's states before it runs
        self.lock = threading.RLock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created_bodies: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.hold = False
        self._closed = False  # stopped: no job moves on (their threads must not write into a removed directory)
        self._create_failures: list[tuple[str, int]] = []
        self._procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self._tea = TEA_PATH.read_text(encoding="utf-8")
        self._server: bugs.RecordingHTTPServer | None = None
        self._s3: Any = None
        self.endpoint = ""

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.stop_all()
        with self.lock:
            self.jobs.clear()
            self.created_bodies.clear()
            self.calls.clear()
            self._create_failures.clear()
            self.hold = False

    def stop_all(self) -> None:
        """End every job: those not running yet never start, running pods are ended (a test leaves nothing)."""
        with self.lock:
            for job in self.jobs.values():
                if job["Status"] not in TERMINAL:
                    job.update(Status="Stopped", ReasonCode="JobStoppedByUser", GmtFinishTime=now_iso())
            ids = list(self._procs)
        for job_id in ids:
            self._kill(job_id)

    # -- the moves only a provider makes -----------------------------------------------------------------------
    def fail_next_create(self, code: str, status: int = 400) -> None:
        with self.lock:
            self._create_failures.append((code, status))

    def set_status(self, job_id: str, raw: str) -> None:
        with self.lock:
            self.jobs[job_id]["Status"] = raw

    def job_by_name(self, display_name: str) -> dict[str, Any]:
        with self.lock:
            (job,) = [j for j in self.jobs.values() if j["DisplayName"] == display_name]
            return job

    def wait_ended(self, display_name: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                jobs = [j for j in self.jobs.values() if j["DisplayName"] == display_name]
                if jobs and all(j["Status"] in TERMINAL for j in jobs):
                    return jobs[0]
            time.sleep(0.05)
        raise AssertionError(f"DLC job {display_name} did not end within {timeout}s")

    # -- HTTP --------------------------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command
        url = urlsplit(handler.path)
        path = unquote(url.path)
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self.lock:
            self.calls.append((method, path))
        for route_method, pattern, action, request_model, where, response_model in ROUTES:
            match = pattern.fullmatch(path)
            if route_method != method or not match:
                continue
            problem = self._check_headers(handler, action)
            params: dict[str, Any] = {}
            if problem is None:
                try:
                    params = (json.loads(raw or b"{}") if where == "body"
                              else dict(parse_qsl(url.query, keep_blank_values=True)))
                except ValueError as exc:
                    problem = f"{action}: body is not JSON: {exc}"
            if problem is None and request_model is not None:
                problem = self._check_model(action, request_model, params, required=where == "body")
            if problem is not None:
                with self.lock:
                    self.violations.append(problem)
                return self._error(handler, 400, "InvalidParameter", problem)
            try:
                status, body = getattr(self, f"_{action}")(params, **match.groupdict())
            except Exception:
                bugs.record("pai_dlc_fake")
                return self._error(handler, 500, "InternalError", "the fake raised")
            if status == 200:
                body = {"RequestId": str(uuid.uuid4()).upper(), **body}
                answer_problem = self._check_model(action, response_model, body, required=False)
                if answer_problem is not None:
                    bugs.record("pai_dlc_fake", AssertionError(f"answer breaks the model: {answer_problem}"))
            return self._send(handler, status, body)
        with self.lock:
            self.violations.append(f"no such operation: {method} {path}")
        self._error(handler, 404, "InvalidAction.NotFound", f"{method} {path}")

    def _check_headers(self, handler: BaseHTTPRequestHandler, action: str) -> str | None:
        auth = handler.headers.get("Authorization") or ""
        if not auth.startswith("ACS3-HMAC-SHA256 Credential=") or "Signature=" not in auth:
            return f"{action}: no ACS3-HMAC-SHA256 signature (Authorization: {auth[:40]!r})"
        if handler.headers.get("x-acs-action") != action or handler.headers.get("x-acs-version") != VERSION:
            return (f"{action}: x-acs-action {handler.headers.get('x-acs-action')!r} / x-acs-version "
                    f"{handler.headers.get('x-acs-version')!r}")
        if not handler.headers.get("x-acs-content-sha256") or not handler.headers.get("x-acs-signature-nonce"):
            return f"{action}: x-acs-content-sha256 / x-acs-signature-nonce missing"
        return None

    def _check_model(self, action: str, model: str, value: dict[str, Any], *, required: bool) -> str | None:
        """Strict: every key (at every depth) must survive the SDK model's from_map/to_map; required fields
        (main.tea) must be there."""
        from alibabacloud_pai_dlc20201203 import models

        try:
            kept = getattr(models, model)().from_map(value).to_map()
        except Exception as exc:  # a value of the wrong shape
            return f"{action}: {model} cannot read {value!r}: {exc}"
        if _difference(value, kept):  # (to_map adds empty lists of its own: only what was sent counts)
            return f"{action}: keys {model} does not have: {_difference(value, kept)}"
        if required:
            missing = sorted(required_fields(model, self._tea) - set(value))
            if missing:
                return f"{action}: required {missing} missing"
        return None

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json;charset=utf-8")
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        self._send(handler, status, {"RequestId": str(uuid.uuid4()).upper(), "Code": code, "Message": message})

    # -- operations --------------------------------------------------------------------------------------------
    def _CreateJob(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.created_bodies.append(json.loads(json.dumps(body)))
            if self._create_failures:
                code, status = self._create_failures.pop(0)
                return status, {"Code": code, "Message": f"the fake refused this job ({code})"}
        if body.get("WorkspaceId") != self.workspace_id:
            return 400, {"Code": "InvalidWorkspace", "Message": f"no workspace {body.get('WorkspaceId')!r}"}
        job_id = "dlc" + uuid.uuid4().hex[:14]
        pods = sum(int(role.get("PodCount") or 1) for role in body["JobSpecs"])
        job = {
            "JobId": job_id, "DisplayName": body["DisplayName"], "JobType": body["JobType"],
            "WorkspaceId": body["WorkspaceId"], "Status": "Creating", "GmtCreateTime": now_iso(),
            "GmtSubmittedTime": now_iso(), "UserCommand": body["UserCommand"], "Envs": dict(body.get("Envs") or {}),
            "Settings": json.loads(json.dumps(body.get("Settings") or {})), "JobSpecs": body["JobSpecs"],
            "_pods": [{"PodId": f"{job_id}-worker-{i}", "Type": "Worker", "Status": "Pending",
                       "PodUid": str(uuid.uuid4())} for i in range(pods)],
            "_body": body,
        }
        if body.get("ResourceId"):
            job["ResourceId"] = body["ResourceId"]
        with self.lock:
            self.jobs[job_id] = job
        threading.Thread(target=self._life, args=(job_id,), daemon=True).start()
        return 200, {"JobId": job_id}

    def _GetJob(self, params: dict[str, Any], job: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            found = self.jobs.get(job)
            if found is None:
                return 400, {"Code": "JobNotFound", "Message": f"no job {job}"}
            answer = _public(found)
            answer["Pods"] = [{k: v for k, v in p.items() if not k.startswith("_")}
                              for p in found["_pods"] if p["Status"] != "Pending"]
            return 200, answer

    def _ListJobs(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        tags = json.loads(params["Tags"]) if params.get("Tags") else {}
        since = params.get("StartTime")
        with self.lock:
            jobs = [j for j in self.jobs.values()
                    if (not params.get("WorkspaceId") or j["WorkspaceId"] == params["WorkspaceId"])
                    and all((j["Settings"].get("Tags") or {}).get(k) == v for k, v in tags.items())
                    and (not since or j["GmtCreateTime"] >= since)]
            jobs.sort(key=lambda j: j["GmtCreateTime"], reverse=params.get("Order", "desc") == "desc")
            size, number = int(params.get("PageSize") or 50), int(params.get("PageNumber") or 1)
            page = jobs[(number - 1) * size:number * size]
            items = [{k: v for k, v in _public(j).items() if k not in ("Pods", "JobSpecs")} for j in page]
            for item, job in zip(items, page, strict=True):
                item["NodeCount"] = str(len(job["_pods"]))
            return 200, {"Jobs": items, "TotalCount": len(jobs)}

    def _StopJob(self, params: dict[str, Any], job: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            found = self.jobs.get(job)
            if found is None:
                return 400, {"Code": "JobNotFound", "Message": f"no job {job}"}
            if found["Status"] in TERMINAL:
                return 200, {"JobId": job}
            found["Status"] = "Stopping"
        threading.Thread(target=self._stop, args=(job,), daemon=True).start()
        return 200, {"JobId": job}

    def _GetPodLogs(self, params: dict[str, Any], job: str, pod: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            found = self.jobs.get(job)
            pods = {p["PodId"]: p for p in (found or {}).get("_pods", [])}
            if pod not in pods:
                return 400, {"Code": "PodNotFound", "Message": f"no pod {pod} in job {job}"}
            log = pods[pod].get("_log")
        text = Path(log).read_text(errors="replace") if log and Path(log).exists() else ""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        elif lines:
            lines.pop()  # a line still being written is not a line yet
        if params.get("MaxLines"):
            lines = lines[:int(params["MaxLines"])]
        return 200, {"JobId": job, "PodId": pod, "PodUid": pods[pod]["PodUid"], "Logs": lines}

    # -- a job's life ------------------------------------------------------------------------------------------
    def _move(self, job_id: str, status: str, **extra: Any) -> bool:
        """Move on unless the job was stopped meanwhile (StopJob wins)."""
        with self.lock:
            job = self.jobs.get(job_id)
            if self._closed or job is None or job["Status"] in ("Stopping", *TERMINAL):
                return False
            job.update(Status=status, **extra)
            return True

    def _life(self, job_id: str) -> None:
        for status in ("Queuing", "EnvPreparing"):
            time.sleep(self.step_s)
            if not self._move(job_id, status):
                return
            while status == "Queuing" and self.hold and not self._closed:
                time.sleep(0.05)
        with self.lock:
            job = self.jobs[job_id]
            body = job["_body"]
        try:
            self._mount(body.get("DataSources") or [])
        except Exception as exc:  # a mount DLC could not make fails the job, as DLC does
            self._move(job_id, "Failed", ReasonCode="MountFailed", ReasonMessage=str(exc), GmtFinishTime=now_iso())
            return
        port = _free_port()
        pods_dir = self.mount_root.parent / "pods" / job_id
        procs = []
        with self.lock:
            if job["Status"] != "EnvPreparing" or self._closed or self.jobs.get(job_id) is not job:
                return  # stopped, or forgotten by a reset, while it was being prepared
            for rank, pod in enumerate(job["_pods"]):
                workdir = pods_dir / str(rank)
                workdir.mkdir(parents=True, exist_ok=True)
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8",
                       **job["Envs"], "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "WORLD_SIZE": str(len(job["_pods"])), "RANK": str(rank)}
                log = workdir / "pod.log"
                with open(log, "wb") as out:
                    procs.append(subprocess.Popen(["sh", "-c", body["UserCommand"]], cwd=workdir, env=env,
                                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                  start_new_session=True))
                pod.update(Status="Running", _log=str(log), Ip="127.0.0.1",
                           GmtCreateTime=now_iso(), GmtStartTime=now_iso())
            self._procs[job_id] = procs
            job.update(Status="Running", GmtRunningTime=now_iso())
        codes = [proc.wait() for proc in procs]
        with self.lock:
            for pod, code in zip(job["_pods"], codes, strict=True):
                pod.update(Status="Succeeded" if code == 0 else "Failed", GmtFinishTime=now_iso())
            self._procs.pop(job_id, None)
        failed = [(rank, code) for rank, code in enumerate(codes) if code != 0]
        if not failed:
            self._move(job_id, "Succeeded", GmtFinishTime=now_iso(), GmtSuccessedTime=now_iso())
        else:
            rank, code = failed[0]
            self._move(job_id, "Failed", GmtFinishTime=now_iso(), GmtFailedTime=now_iso(), ReasonCode="JobFailed",
                       ReasonMessage=f"pod {job_id}-worker-{rank} exited with code {code}")

    def _mount(self, sources: list[dict[str, Any]]) -> None:
        """Copy each oss://<bucket>.<host>/<prefix>/ to its MountPath (which must be under mount_root)."""
        for source in sources:
            uri = source.get("Uri") or ""
            if not uri.startswith("oss://"):
                continue
            host, _, prefix = uri.removeprefix("oss://").partition("/")
            bucket = host.split(".", 1)[0]
            target = Path(source.get("MountPath") or "").resolve()
            if not target.is_relative_to(self.mount_root):
                raise ValueError(f"MountPath {target} is outside what this fake may write ({self.mount_root})")
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
                if pod["Status"] in ("Pending", "Running"):
                    pod["Status"] = "Stopped"
            job.update(Status="Stopped", ReasonCode="JobStoppedByUser", ReasonMessage="stopped by StopJob",
                       GmtFinishTime=now_iso(), GmtStoppedTime=now_iso())

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


def _public(job: dict[str, Any]) -> dict[str, Any]:
    """The job as GetJob shows it: the fake's own bookkeeping (keys starting with _) left out."""
    return {k: json.loads(json.dumps(v)) for k, v in job.items() if not k.startswith("_") and k != "JobSpecs"}


def _difference(sent: Any, kept: Any, path: str = "") -> list[str]:
    """Where `sent` has keys (or values) the model did not keep."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        out = [f"{path}{k}" for k in sent if k not in kept]
        for k in sent:
            if k in kept:
                out += _difference(sent[k], kept[k], f"{path}{k}.")
        return out
    if isinstance(sent, list) and isinstance(kept, list) and len(sent) == len(kept):
        return [d for i, (a, b) in enumerate(zip(sent, kept, strict=True)) for d in _difference(a, b, f"{path}{i}.")]
    return [] if sent == kept else [f"{path} ({sent!r} read as {kept!r})"]


def alibaba_error(code: int, path: str, headers: Any, error_code: str | None = None) -> tuple[bytes, str]:
    """The fault proxy's answers in Alibaba Cloud's error shape ({RequestId, Code, Message}), as the SDK
    reads it (alibabacloud_tea_openapi: `Code`, `Message`; 4xx ClientException, 5xx ServerException)."""
    default = {401: "InvalidAccessKeyId.NotFound", 403: "Forbidden.RAM", 429: "Throttling.User",
               500: "InternalError", 503: "ServiceUnavailable"}.get(code, "InternalError")
    body = {"RequestId": str(uuid.uuid4()).upper(), "Code": error_code or default, "Message": f"fault proxy: {code}"}
    return json.dumps(body).encode(), "application/json;charset=utf-8"


class DlcStack(BucketStack):
    """What a pai_dlc test needs: moto's S3 (standing in for OSS's S3-compatible API) with the bucket, the
    DLC fake mounting from it, and the config.toml that points the backend at both.

        with DlcStack(tmp) as stack:   # stack.dlc, stack.s3_endpoint, stack.config(dlc_endpoint=...)
    """

    ACCESS_KEY: ClassVar[dict[str, str]] = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-test-access-key",
                                            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "test-secret"}

    @property
    def dlc(self) -> PaiDlcFake:
        return self.fake

    def start_fake(self) -> PaiDlcFake:
        return PaiDlcFake(self.s3_endpoint, self.mount).__enter__()

    def config(self, dlc_endpoint: str | None = None) -> str:
        return (f'[backends.pai_dlc]\nregion = "cn-hangzhou"\nworkspace_id = "{self.dlc.workspace_id}"\n'
                f'bucket = "{self.BUCKET}"\nendpoint = "{dlc_endpoint or self.dlc.endpoint}"\nprotocol = "http"\n'
                f'oss_endpoint = "{self.s3_endpoint}"\nmount_path = "{self.mount}/"\n')
