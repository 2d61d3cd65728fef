"""A local fake of Tencent Cloud TI-ONE's API (2021-11-11) whose training tasks really run, on this machine.

    with TioneFake(s3_endpoint, mount_root) as tione:   # tione.endpoint: "127.0.0.1:PORT" (protocol "http")
        tione.fail_next_create("ResourceInsufficient.Gpu") # the next CreateTrainingTask is refused with this code
        tione.hold = True                                  # new tasks stay PENDING until hold is False again
        tione.created_bodies                               # every CreateTrainingTask request as received
        tione.tasks                                        # {Id: task dict} (TrainingTaskDetail's shape plus "_pods")
        tione.violations                                   # requests the API definition rejects (must stay [])

The official SDK reaches it through ``HttpProfile(endpoint="127.0.0.1:PORT", protocol="http")``: every call is
POST / with a JSON body, X-TC-Action and X-TC-Version headers and a TC3-HMAC-SHA256 Authorization (checked
present and well formed; the signature itself is not recomputed). Every request is checked against the API's
machine-readable definition (``tests/vendor/tione-2021-11-11-api.json``, see PROVENANCE.md: tccli's api.json):
an unknown member, a value of the wrong type or a missing required member is recorded as a violation and
answered in Tencent's error shape (HTTP 200, ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``,
codes UnknownParameter / InvalidParameter / MissingParameter). Every answer is checked against the output
type's definition, and read back through the SDK's own response model with its "fields are useless" warning
as an error, before it is sent (a fake bug, see bugs.py).

A task moves through TI-ONE's states (SUBMITTING, PENDING, STARTING, RUNNING, then SUCCEED / FAILED, or
STOPPING, STOPPED) and really runs: its DataConfigs' COS sources are "mounted" by copying that COS prefix (an S3
bucket of the moto server the test gives) to their MappingPath, which must lie under ``mount_root``; then
each of its InstanceNum worker pods runs StartCmdInfo.StartCmd with ``sh -c`` and the task's Envs plus what
TI-ONE's distributed-training guide (cloud.tencent.com/document/product/851/103087) lists: NODE_LIST, INDEX,
GPU_NUM, GPU_NUM_PER_NODE for every task, and for a DDP task MASTER_ADDR (127.0.0.1 here), MASTER_PORT,
WORLD_SIZE and RANK. A pod's output is its log (DescribeLogs of the task's LatestInstanceId and the pod's
name, paged with Context); as that guide says, the task fails when any pod exits non-zero; StopTrainingTask
ends every pod's process group.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
import warnings
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

from fakes.bucket_stack import BucketStack, ServedJobsFake

from . import bugs

API_PATH = Path(__file__).resolve().parent.parent / "vendor" / "tione-2021-11-11-api.json"  # PROVENANCE.md
VERSION = "2021-11-11"
TERMINAL = ("SUCCEED", "FAILED", "STOPPED", "SUBMIT_FAILED")
PRIMITIVES = {"string": str, "int": int, "bool": bool, "float": (int, float)}


def now_iso(at: float | None = None) -> str:
    return datetime.datetime.fromtimestamp(at or time.time(), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiDefinition:
    """tccli's api.json for tione/v20211111: which object each action takes and gives, and each object's members."""

    def __init__(self, path: Path = API_PATH) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        self.actions: dict[str, dict[str, str]] = data["actions"]
        self.objects: dict[str, dict[str, Any]] = data["objects"]

    def problems(self, obj: str, value: Any, where: str, *, inbound: bool) -> list[tuple[str, str]]:
        """(Tencent error code, what is wrong) for every member of `value` the definition of `obj` does not
        allow; `inbound` (a request) also requires its required members. None (null) is allowed in answers."""
        if not isinstance(value, dict):
            return [("InvalidParameter", f"{where or obj} must be an object, not {type(value).__name__}")]
        members = {m["name"]: m for m in self.objects[obj]["members"]}
        found: list[tuple[str, str]] = []
        for key, item in value.items():
            path = f"{where}.{key}" if where else key
            member = members.get(key)
            if member is None:
                found.append(("UnknownParameter", f"{path} is not a member of {obj}"))
                continue
            if item is None and not inbound:
                continue
            if member["type"] == "list":
                if not isinstance(item, list):
                    found.append(("InvalidParameter", f"{path} must be a list"))
                    continue
                for i, element in enumerate(item):
                    found += self._one(member["member"], element, f"{path}.{i}", inbound=inbound)
            else:
                found += self._one(member["member"], item, path, inbound=inbound)
        if inbound:
            found += [("MissingParameter", f"{where + '.' if where else ''}{name} is required by {obj}")
                      for name, m in members.items() if m.get("required") and name not in value]
        return found

    def _one(self, type_name: str, value: Any, path: str, *, inbound: bool) -> list[tuple[str, str]]:
        if type_name in self.objects:
            return self.problems(type_name, value, path, inbound=inbound)
        expected = PRIMITIVES.get({"uint64": "int", "int64": "int", "double": "float"}.get(type_name, type_name))
        if expected is None:
            return [("InvalidParameter", f"{path}: the definition's type {type_name!r} is unknown to this fake")]
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            return [("InvalidParameter", f"{path} must be {type_name}, not {type(value).__name__} {value!r}")]
        if type_name == "uint64" and value < 0:
            return [("InvalidParameter", f"{path} must not be negative")]
        return []


class TioneFake(ServedJobsFake):
    NAME: ClassVar[str] = "tione_fake"

    def __init__(self, s3_endpoint: str, mount_root: Path, *, region: str = "ap-guangzhou",
                 step_s: float = 0.05) -> None:
        self.s3_endpoint = s3_endpoint
        self.mount_root = Path(mount_root).resolve()
        self.region = region
        self.step_s = step_s  # time between two of a task's states before it runs
        self.lock = threading.RLock()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.created_bodies: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.calls: list[str] = []  # X-TC-Action of every request
        self.hold = False
        self._closed = False  # stopped: no task moves on (their threads must not write into a removed directory)
        self._create_failures: list[str] = []
        self._procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.api = ApiDefinition()
        self._server: bugs.RecordingHTTPServer | None = None
        self._s3: Any = None
        self.endpoint = ""

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.stop_all()
        with self.lock:
            self.tasks.clear()
            self.created_bodies.clear()
            self.calls.clear()
            self._create_failures.clear()
            self.hold = False

    def stop_all(self) -> None:
        """End every task: those not running yet never start, running pods are ended (a test leaves nothing)."""
        with self.lock:
            for task in self.tasks.values():
                if task["Status"] not in TERMINAL:
                    task.update(Status="STOPPED", EndTime=now_iso(), UpdateTime=now_iso())
            ids = list(self._procs)
        for task_id in ids:
            self._kill(task_id)

    # -- the moves only a provider makes -----------------------------------------------------------------------
    def fail_next_create(self, code: str) -> None:
        with self.lock:
            self._create_failures.append(code)

    def task_by_job(self, job_id: str) -> dict[str, Any]:
        """The task carrying launch's job-id tag `job_id`."""
        with self.lock:
            (task,) = [t for t in self.tasks.values()
                       if {"TagKey": "launch-job-id", "TagValue": job_id} in t["Tags"]]
            return task

    def wait_ended(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                tasks = [t for t in self.tasks.values()
                         if {"TagKey": "launch-job-id", "TagValue": job_id} in t["Tags"]]
                if tasks and all(t["Status"] in TERMINAL for t in tasks):
                    return tasks[0]
            time.sleep(0.05)
        raise AssertionError(f"TI-ONE task of {job_id} did not end within {timeout}s")

    # -- HTTP --------------------------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        action = handler.headers.get("X-TC-Action") or ""
        with self.lock:
            self.calls.append(action)
        problem = self._check_headers(handler, action)
        params: dict[str, Any] = {}
        if problem is None:
            try:
                params = json.loads(raw or b"{}")
            except ValueError as exc:
                problem = ("InvalidParameter", f"{action}: body is not JSON: {exc}")
        if problem is None:
            found = self.api.problems(self.api.actions[action]["input"], params, "", inbound=True)
            problem = (found[0][0], f"{action}: " + "; ".join(p for _, p in found)) if found else None
        if problem is not None:
            with self.lock:
                self.violations.append(problem[1])
            return self._send(handler, {"Error": {"Code": problem[0], "Message": problem[1]}})
        try:
            answer = getattr(self, f"_{action}")(params)
        except Exception:
            bugs.record("tione_fake")
            return self._send(handler, {"Error": {"Code": "InternalError", "Message": "the fake raised"}})
        if "Error" not in answer:
            self._check_answer(action, answer)
        return self._send(handler, answer)

    def _check_headers(self, handler: BaseHTTPRequestHandler, action: str) -> tuple[str, str] | None:
        if handler.path != "/":
            return ("InvalidAction", f"POST {handler.path}: TI-ONE is served at /")
        if action not in self.api.actions:
            return ("InvalidAction", f"no such action {action!r} (or not one this fake serves)")
        auth = handler.headers.get("Authorization") or ""
        if not auth.startswith("TC3-HMAC-SHA256 Credential=") or "SignedHeaders=" not in auth \
                or "Signature=" not in auth or "/tione/tc3_request" not in auth:
            return ("AuthFailure.SignatureFailure", f"{action}: no TC3-HMAC-SHA256 signature for tione "
                    f"(Authorization: {auth[:48]!r})")
        if handler.headers.get("X-TC-Version") != VERSION:
            return ("InvalidParameter", f"{action}: X-TC-Version {handler.headers.get('X-TC-Version')!r}")
        if not handler.headers.get("X-TC-Timestamp") or not handler.headers.get("X-TC-Region"):
            return ("MissingParameter", f"{action}: X-TC-Timestamp / X-TC-Region missing")
        return None

    def _check_answer(self, action: str, answer: dict[str, Any]) -> None:
        """The answer against the output type, then through the SDK's response model (unknown fields warn there)."""
        from tencentcloud.tione.v20211111 import models

        output = self.api.actions[action]["output"]
        found = self.api.problems(output, {**answer, "RequestId": "x"}, "", inbound=False)
        if found:
            bugs.record("tione_fake", AssertionError(f"{action} answer breaks {output}: {found}"))
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*are useless")
            try:
                getattr(models, output)()._deserialize(json.loads(json.dumps(answer)))
            except Exception as exc:
                bugs.record("tione_fake", AssertionError(f"the SDK's {output} does not read the answer: {exc}"))

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, response: dict[str, Any]) -> None:
        data = json.dumps({"Response": {**response, "RequestId": str(uuid.uuid4())}}).encode()
        handler.send_response(200)  # TI-ONE answers errors with 200 too; the SDK reads Response.Error
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _error(code: str, message: str) -> dict[str, Any]:
        return {"Error": {"Code": code, "Message": message}}

    def _find(self, task_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.tasks.get(task_id)

    # -- operations --------------------------------------------------------------------------------------------
    def _CreateTrainingTask(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.created_bodies.append(json.loads(json.dumps(body)))
            if self._create_failures:
                code = self._create_failures.pop(0)
                return self._error(code, f"the fake refused this task ({code})")
        if body["ChargeType"] not in ("PREPAID", "POSTPAID_BY_HOUR"):
            return self._error("InvalidParameterValue.ChargeType", f"no charge type {body['ChargeType']!r}")
        task_id = f"train-{uuid.uuid4().int % 10**17:017d}"
        pods = sum(int(r.get("InstanceNum") or 1) for r in body["ResourceConfigInfos"])
        task = {
            "Id": task_id, "Name": body["Name"], "Region": self.region, "ChargeType": body["ChargeType"],
            "ResourceConfigInfos": body["ResourceConfigInfos"], "Tags": list(body.get("Tags") or []),
            "TrainingMode": body.get("TrainingMode"), "StartCmdInfo": body.get("StartCmdInfo") or {},
            "DataSource": body.get("DataSource"), "DataConfigs": body.get("DataConfigs") or [],
            "ImageInfo": body.get("ImageInfo"), "Status": "SUBMITTING", "CreateTime": now_iso(),
            "UpdateTime": now_iso(), "ChargeStatus": "NOT_BILLING", "LatestInstanceId": None,
            "Envs": list(body.get("Envs") or []),
            "_pods": [{"Name": f"{task_id}-worker-{i}", "Status": "PENDING"} for i in range(pods)],
        }
        with self.lock:
            self.tasks[task_id] = task
        threading.Thread(target=self._life, args=(task_id,), daemon=True).start()
        return {"Id": task_id}

    def _DescribeTrainingTask(self, params: dict[str, Any]) -> dict[str, Any]:
        task = self._find(params["Id"])
        if task is None:
            return self._error("ResourceNotFound", f"no training task {params['Id']}")
        with self.lock:
            return {"TrainingTaskDetail": _public(task, detail=True)}

    def _DescribeTrainingTasks(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            tasks = list(self.tasks.values())
            for tag in params.get("TagFilters") or []:
                tasks = [t for t in tasks if any(x["TagKey"] == tag.get("TagKey") and
                                                 (not tag.get("TagValues") or x["TagValue"] in tag["TagValues"])
                                                 for x in t["Tags"])]
            for flt in params.get("Filters") or []:
                if flt.get("Name") in ("Id", "Name", "Status", "ChargeType"):
                    tasks = [t for t in tasks if t[flt["Name"]] in (flt.get("Values") or [])]
            field = params.get("OrderField") or "UpdateTime"
            tasks.sort(key=lambda t: (t.get(field) or "", t["Id"]), reverse=params.get("Order", "DESC") == "DESC")
            offset, limit = int(params.get("Offset") or 0), int(params.get("Limit") or 10)
            if limit > 50:
                return self._error("InvalidParameterValue.Limit", "Limit is at most 50")
            page = [_public(t, detail=False) for t in tasks[offset:offset + limit]]
            return {"TrainingTaskSet": page, "TotalCount": len(tasks)}

    def _StopTrainingTask(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            task = self.tasks.get(params["Id"])
            if task is None:
                return self._error("ResourceNotFound", f"no training task {params['Id']}")
            if task["Status"] in TERMINAL:
                return self._error("FailedOperation.StopTaskNotAllowed",
                                   f"task {params['Id']} is {task['Status']}: there is nothing to stop")
            task.update(Status="STOPPING", UpdateTime=now_iso())
        threading.Thread(target=self._stop, args=(params["Id"],), daemon=True).start()
        return {}

    def _DescribeTrainingTaskPods(self, params: dict[str, Any]) -> dict[str, Any]:
        task = self._find(params["Id"])
        if task is None:
            return self._error("ResourceNotFound", f"no training task {params['Id']}")
        with self.lock:
            pods = [p for p in task["_pods"] if p["Status"] != "PENDING"]
            return {"PodNames": [p["Name"] for p in pods], "TotalCount": len(pods),
                    "PodInfoList": [{"Name": p["Name"], "IP": "127.0.0.1", "Status": p["Status"],
                                     "StartTime": p.get("StartTime"), "EndTime": p.get("EndTime")} for p in pods]}

    def _DescribeLogs(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["Service"] != "TRAIN":
            return self._error("InvalidParameterValue.Service", f"this fake serves TRAIN logs, not {params['Service']}")
        with self.lock:
            tasks = [t for t in self.tasks.values() if t["LatestInstanceId"] and
                     t["LatestInstanceId"] == params.get("ServiceId")]
            pods = {p["Name"]: p for t in tasks for p in t["_pods"]}
        pod = pods.get(params.get("PodName") or "")
        if pod is None:
            return self._error("ResourceNotFound", f"no pod {params.get('PodName')!r} in {params.get('ServiceId')!r}")
        limit = int(params.get("Limit") or 100)
        if limit > 1000:
            return self._error("InvalidParameterValue.Limit", "Limit is at most 1000")
        log = pod.get("_log")
        text = Path(log).read_text(errors="replace") if log and Path(log).exists() else ""
        lines = text.split("\n")
        lines.pop()  # after the last newline: empty, or a line still being written (not a line yet)
        if params.get("Order", "DESC") == "DESC":
            start, page = 0, list(reversed(lines))[:limit]
        else:
            start = _context_offset(params.get("Context"), pod["Name"])
            if start is None:
                return self._error("InvalidParameterValue.Context", "the Context is not one this API gave")
            page = lines[start:start + limit]
        stamp = now_iso()
        content = [{"Id": f"{pod['Name']}-{start + i}", "Message": line, "PodName": pod["Name"], "Timestamp": stamp,
                    "PkgId": "pkg", "PkgLogId": str(start + i)} for i, line in enumerate(page)]
        context = base64.urlsafe_b64encode(f"{pod['Name']}:{start + len(page)}".encode()).decode()
        return {"Context": context, "Content": content}

    # -- a task's life -----------------------------------------------------------------------------------------
    def _move(self, task_id: str, status: str, **extra: Any) -> bool:
        """Move on unless the task was stopped meanwhile (StopTrainingTask wins)."""
        with self.lock:
            task = self.tasks.get(task_id)
            if self._closed or task is None or task["Status"] in ("STOPPING", *TERMINAL):
                return False
            task.update(Status=status, UpdateTime=now_iso(), **extra)
            return True

    def _life(self, task_id: str) -> None:
        for status in ("PENDING", "STARTING"):
            time.sleep(self.step_s)
            if not self._move(task_id, status):
                return
            while status == "PENDING" and self.hold and not self._closed:
                time.sleep(0.05)
        with self.lock:
            task = self.tasks[task_id]
        try:
            self._mount(task["DataConfigs"])
        except Exception as exc:  # a mount TI-ONE could not make fails the task, as TI-ONE does
            self._move(task_id, "FAILED", FailureReason=f"data mount failed: {exc}", EndTime=now_iso())
            return
        port = _free_port()
        pods_dir = self.mount_root.parent / "pods" / task_id
        procs = []
        with self.lock:
            if task["Status"] != "STARTING" or self._closed or self.tasks.get(task_id) is not task:
                return  # stopped, or forgotten by a reset, while it was being prepared
            envs = {e["Name"]: e.get("Value") or "" for e in task["Envs"]}
            for rank, pod in enumerate(task["_pods"]):
                workdir = pods_dir / str(rank)
                workdir.mkdir(parents=True, exist_ok=True)
                gpus = int((task["ResourceConfigInfos"][0].get("Gpu") or 0) // 100)
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8",
                       **envs, "INDEX": str(rank), "GPU_NUM_PER_NODE": str(gpus),
                       "GPU_NUM": str(gpus * len(task["_pods"])),
                       "NODE_LIST": ",".join(f"{p['Name']}.training-job.svc.cluster.local:{gpus}"
                                             for p in task["_pods"])}
                if task.get("TrainingMode") == "DDP":
                    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                               WORLD_SIZE=str(len(task["_pods"])), RANK=str(rank))
                log = workdir / "pod.log"
                with open(log, "wb") as out:
                    procs.append(subprocess.Popen(["sh", "-c", task["StartCmdInfo"].get("StartCmd") or "true"],
                                                  cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL, start_new_session=True))
                pod.update(Status="RUNNING", _log=str(log), StartTime=now_iso())
            self._procs[task_id] = procs
            task.update(Status="RUNNING", StartTime=now_iso(), UpdateTime=now_iso(), ChargeStatus="BILLING",
                        LatestInstanceId=f"{task_id}-{uuid.uuid4().hex[:8]}")
        codes = [proc.wait() for proc in procs]
        with self.lock:
            for pod, code in zip(task["_pods"], codes, strict=True):
                if pod["Status"] == "RUNNING":
                    pod.update(Status="SUCCEEDED" if code == 0 else "FAILED", EndTime=now_iso())
            self._procs.pop(task_id, None)
        failed = [(rank, code) for rank, code in enumerate(codes) if code != 0]
        if not failed:
            self._move(task_id, "SUCCEED", EndTime=now_iso(), ChargeStatus="NOT_BILLING")
        else:
            rank, code = failed[0]
            self._move(task_id, "FAILED", EndTime=now_iso(), ChargeStatus="NOT_BILLING",
                       FailureReason=f"pod {task_id}-worker-{rank} exited with code {code}")

    def _mount(self, configs: list[dict[str, Any]]) -> None:
        """Copy each COS source's bucket/prefix to its MappingPath (which must be under mount_root)."""
        for config in configs:
            source = config.get("COSSource")
            if config.get("DataSourceType") != "COS" or not source:
                continue
            target = Path(config.get("MappingPath") or "").resolve()
            if not target.is_relative_to(self.mount_root):
                raise ValueError(f"MappingPath {target} is outside what this fake may write ({self.mount_root})")
            (prefix,) = source["Paths"]  # api.json: "目前只支持单个" (one path only, for now)
            bucket = source["Bucket"]
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    dest = target / item["Key"][len(prefix):]
                    if dest.exists() and dest.stat().st_size == item["Size"]:
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    self._s3.download_file(bucket, item["Key"], str(dest))

    def _stop(self, task_id: str) -> None:
        self._kill(task_id)
        with self.lock:
            task = self.tasks[task_id]
            for pod in task["_pods"]:
                if pod["Status"] in ("PENDING", "RUNNING"):
                    pod.update(Status="TERMINATED", EndTime=now_iso())
            task.update(Status="STOPPED", EndTime=now_iso(), UpdateTime=now_iso(), ChargeStatus="NOT_BILLING")

    def _kill(self, task_id: str) -> None:
        with self.lock:
            procs = list(self._procs.get(task_id, []))
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


DETAIL_ONLY = ("DataSource", "DataConfigs", "StartCmdInfo", "LatestInstanceId", "Region")
LIST_ONLY = ("Envs",)


def _public(task: dict[str, Any], *, detail: bool) -> dict[str, Any]:
    """The task as DescribeTrainingTask (detail) or DescribeTrainingTasks shows it, bookkeeping left out."""
    leave = LIST_ONLY if detail else DETAIL_ONLY
    return {k: json.loads(json.dumps(v)) for k, v in task.items() if not k.startswith("_") and k not in leave}


def _context_offset(context: str | None, pod: str) -> int | None:
    """The line a DescribeLogs Context points at (None: not a Context of this pod's logs)."""
    if not context:
        return 0
    try:
        name, _, offset = base64.urlsafe_b64decode(context.encode()).decode().rpartition(":")
        return int(offset) if name == pod else None
    except ValueError:
        return None


def tencent_error(code: int, path: str, headers: Any, error_code: str | None = None) -> tuple[bytes, str]:
    """The fault proxy's answers in Tencent Cloud's error shape. TI-ONE answers its errors with HTTP 200 and
    Response.Error; the SDK reads any other status as ServerNetworkError, so a proxy's 5xx stays that."""
    default = {401: "AuthFailure.SecretIdNotFound", 403: "UnauthorizedOperation", 429: "RequestLimitExceeded",
               500: "InternalError", 503: "InternalError"}.get(code, "InternalError")
    body = {"Response": {"Error": {"Code": error_code or default, "Message": f"fault proxy: {code}"},
                         "RequestId": str(uuid.uuid4())}}
    return json.dumps(body).encode(), "application/json"


class TioneStack(BucketStack):
    """What a tione test needs: moto's S3 (standing in for COS's S3-compatible API) with the bucket, the
    TI-ONE fake mounting from it, and the config.toml that points the backend at both.

        with TioneStack(tmp) as stack:   # stack.tione, stack.s3_endpoint, stack.config(endpoint=...)
    """

    BUCKET = "launch-1250000000"
    SECRET: ClassVar[dict[str, str]] = {"TENCENTCLOUD_SECRET_ID": "AKIDtestsecretid",
                                        "TENCENTCLOUD_SECRET_KEY": "test-secret-key"}

    @property
    def tione(self) -> TioneFake:
        return self.fake

    def start_fake(self) -> TioneFake:
        return TioneFake(self.s3_endpoint, self.mount).__enter__()

    def config(self, endpoint: str | None = None) -> str:
        return (f'[backends.tione]\nregion = "{self.tione.region}"\ncos_bucket = "{self.BUCKET}"\n'
                f'endpoint = "{endpoint or self.tione.endpoint}"\nprotocol = "http"\n'
                f'cos_endpoint = "{self.s3_endpoint}"\nmount_path = "{self.mount}/"\n')
