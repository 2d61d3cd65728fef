"""A local fake of Hugging Face Jobs and of the Hub endpoints a private repo upload uses, driven by the real
``HfApi(endpoint=fake.endpoint)``.

    with HfJobsFake(token="hf_test", user="alice") as fake:
        fake.endpoint                      # http://127.0.0.1:PORT
        fake.jobs                          # id -> FakeJob (its body as received, stage, process, log lines)
        fake.created_bodies                # every run_job body received, in order
        fake.set_stage(job_id, "X")        # a stage this version does not know (the response check allows it)
        fake.drop_next_log_stream(after=2) # the next /logs stream is cut after 2 events (no last chunk)
        fake.repos, fake.files             # repo -> private?, (repo, path) -> bytes
        fake.violations                    # requests the client's own schema would not build (must stay [])

Every run_job body is held to what huggingface_hub's ``_create_job_spec`` builds (REQUEST_FIELDS: an
unknown field, a missing one or a wrong type fails) and parsed by its ``JobSpec``; flavors must be
``JobHardware`` values, stages ``JobStage`` values. Every job answer is built as the Hub's JobInfo JSON
and parsed by huggingface_hub's ``JobInfo`` before it is sent (RESPONSE_FIELDS: nothing JobInfo does
not read). A violation is answered 400 and recorded.

Jobs run their command as local processes (a container of their own: their own TMPDIR, their secrets
and environment as environment variables), so logs and exit codes are real. Logs are served as the
Hub serves them, server-sent events ``data: {"data": ..., "timestamp": ...}`` starting with a
``===== Job started`` event; a stream replays what the job printed and then follows it, ending when the
job ends or after ``stream_idle_s`` without a new line (huggingface_hub's client is written for a stream
that ends before its job: it asks the job's stage and reads again).

The Hub half: whoami, create_repo, the resolve URL (HEAD for file_exists, GET for the node's download),
preupload (binary or large files are ``lfs``, as on the Hub), the LFS batch API with one basic PUT, and
the NDJSON commit. Xet is not served: the backend sends its bundle as a file object, which
huggingface_hub uploads over plain LFS.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import bugs

NAME = "HfJobsFake"
# what huggingface_hub's _create_job_spec sends: field -> (required, type check)
REQUEST_FIELDS: dict[str, tuple[bool, Any]] = {
    "command": (True, lambda v: isinstance(v, list) and v and all(isinstance(x, str) for x in v)),
    "arguments": (True, lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "environment": (True, lambda v: _str_map(v)),
    "flavor": (True, lambda v: isinstance(v, str)),
    "secrets": (False, lambda v: _str_map(v) and bool(v)),
    "timeoutSeconds": (False, lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0),
    "attempts": (False, lambda v: isinstance(v, int) and v >= 1),
    "labels": (False, lambda v: _str_map(v) and bool(v)),
    "volumes": (False, lambda v: isinstance(v, list)),
    "expose": (False, lambda v: isinstance(v, dict)),
    "ssh": (False, lambda v: v == {"enabled": True}),
    "network": (False, lambda v: isinstance(v, dict)),
    "resourceGroupId": (False, lambda v: isinstance(v, str)),
    "dockerImage": (False, lambda v: isinstance(v, str) and bool(v)),
    "spaceId": (False, lambda v: isinstance(v, str) and bool(v)),
}
# what huggingface_hub's JobInfo reads from an answer (anything else would be invented by the fake)
RESPONSE_FIELDS = {"id", "createdAt", "startedAt", "finishedAt", "dockerImage", "spaceId", "owner", "command",
                   "arguments", "environment", "secrets", "flavor", "labels", "volumes", "status", "durations",
                   "initiator", "network", "retry", "expose"}
NETWORK_NAME = re.compile(r"^[a-z0-9-]{1,46}$")
ALIAS = re.compile(r"^[a-z0-9-]{1,34}$")
LABEL = re.compile(r"^[A-Za-z0-9._-]{1,63}$")
JOB_NAME = re.compile(r"^[a-zA-Z0-9._-]*$")
LFS_LIMIT = 10 * 1024 * 1024


def _str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Violation(Exception):
    """A request the client's own schema would not build: answered 400 and recorded."""


@dataclass
class FakeJob:
    id: str
    namespace: str
    body: dict[str, Any]
    created_at: str
    stage: str = "SCHEDULING"
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    process: subprocess.Popen[bytes] | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)  # (timestamp, text)
    exit_code: int | None = None
    cancelled: bool = False
    home: Path | None = None


class HfJobsFake:
    def __init__(self, token: str = "hf_fake_token", user: str = "alice", *, stream_idle_s: float = 0.5,
                 schedule_s: float = 0.0) -> None:
        self.token, self.user = token, user
        self.stream_idle_s, self.schedule_s = stream_idle_s, schedule_s
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.jobs: dict[str, FakeJob] = {}
        self.created_bodies: list[dict[str, Any]] = []
        self.repos: dict[str, bool] = {}  # repo id -> private
        self.files: dict[tuple[str, str], bytes] = {}
        self.lfs: dict[str, bytes] = {}
        self.commits: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self._drop_after: int | None = None
        self.dropped_streams = 0
        self._root = Path(tempfile.mkdtemp(prefix="hf-jobs-fake-"))
        self.endpoint = ""
        self._server: bugs.RecordingHTTPServer | None = None
        from huggingface_hub._jobs_api import JobHardware, JobStage

        self.flavors = {h.value for h in JobHardware}
        self.stages = {s.value for s in JobStage}
        self.future_stages: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> HfJobsFake:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = bugs.RecordingHTTPServer(NAME, ("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="hf-jobs-fake",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self.kill_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        import shutil

        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> HfJobsFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """No jobs, repos or faults (processes still running are ended)."""
        self.kill_all()
        with self.lock:
            self.jobs.clear()
            self.created_bodies.clear()
            self.repos.clear()
            self.files.clear()
            self.lfs.clear()
            self.commits.clear()
            self.violations.clear()
            self.requests.clear()
            self.future_stages.clear()
            self._drop_after = None
            self.dropped_streams = 0

    def kill_all(self) -> None:
        with self.lock:
            running = [j for j in self.jobs.values() if j.process is not None and j.process.poll() is None]
        for job in running:
            _kill(job.process)
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.process.wait(timeout=5)

    # -- moves only the provider makes --------------------------------------------------------------------------
    def set_stage(self, job_id: str, stage: str, message: str | None = None) -> None:
        with self.lock:
            if stage not in self.stages:
                self.future_stages.add(stage)
            job = self.jobs[job_id]
            job.stage, job.message = stage, message

    def drop_next_log_stream(self, after: int) -> None:
        """The next /logs stream is cut (no closing chunk) after `after` events."""
        with self.lock:
            self._drop_after = after

    def wait_ended(self, job_id: str, timeout: float = 30) -> FakeJob:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.jobs[job_id].stage in ("SCHEDULING", "RUNNING"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"job {job_id} did not end in {timeout}s")
                self.changed.wait(left)
            return self.jobs[job_id]

    def by_label(self, key: str, value: str) -> list[FakeJob]:
        with self.lock:
            return [j for j in self.jobs.values() if (j.body.get("labels") or {}).get(key) == value]

    # -- jobs ------------------------------------------------------------------------------------------------
    def check_body(self, body: Any) -> None:
        from huggingface_hub._jobs_api import JobSpec

        if not isinstance(body, dict):
            raise Violation("the body is not a JSON object")
        unknown = sorted(set(body) - set(REQUEST_FIELDS))
        if unknown:
            raise Violation(f"unknown fields {unknown}")
        for name, (required, valid) in REQUEST_FIELDS.items():
            if name not in body:
                if required:
                    raise Violation(f"missing field {name!r}")
                continue
            if not valid(body[name]):
                raise Violation(f"field {name!r} has a wrong value: {body[name]!r:.200}")
        if ("dockerImage" in body) == ("spaceId" in body):
            raise Violation("exactly one of dockerImage and spaceId")
        if body["flavor"] not in self.flavors:
            raise Violation(f"flavor {body['flavor']!r} is not a JobHardware value")
        for key, value in (body.get("labels") or {}).items():
            pattern = JOB_NAME if key == "name" else LABEL
            if not LABEL.match(key) or not pattern.match(value):
                raise Violation(f"label {key}={value!r} is not a valid label")
        network = body.get("network")
        if network is not None:
            if set(network) - {"group", "aliases"} or not NETWORK_NAME.match(str(network.get("group", ""))):
                raise Violation(f"network {network!r}: a group of lowercase letters, digits and dashes (<= 46)")
            aliases = network.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) and ALIAS.match(a) for a in aliases) \
                    or len(set(aliases)) != len(aliases) or ("aliases" in network and not aliases):
                raise Violation(f"network aliases {aliases!r}")
        spec = JobSpec(**body)  # the client's own reading of a job spec
        if spec.command != body["command"] or spec.flavor != body["flavor"]:
            raise Violation("JobSpec reads the body differently")

    def run_job(self, namespace: str, body: dict[str, Any]) -> FakeJob:
        job = FakeJob(uuid.uuid4().hex[:24], namespace, body, _now())
        with self.lock:
            self.jobs[job.id] = job
            self.created_bodies.append(json.loads(json.dumps(body)))
        threading.Thread(target=self._run, args=(job,), daemon=True, name=f"hf-job-{job.id}").start()
        return job

    def _run(self, job: FakeJob) -> None:
        if self.schedule_s:
            time.sleep(self.schedule_s)
        job.home = self._root / job.id
        (job.home / "tmp").mkdir(parents=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(job.home), "TMPDIR": str(job.home / "tmp"),
               "LANG": "C.UTF-8", **job.body["environment"], **(job.body.get("secrets") or {}),
               "JOB_ID": job.id, "HF_ENDPOINT": self.endpoint}
        network = job.body.get("network")
        if network:
            env["HF_NETWORK_GROUP_HOSTNAME"] = f"{network['group']}.hf.jobs"
            env["HF_NETWORK_GROUP_PREFIX"] = f"{network['group']}-"
        with self.lock:
            if job.cancelled:
                return
            job.process = subprocess.Popen(job.body["command"], env=env, cwd=job.home, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            job.stage, job.started_at = "RUNNING", _now()
            job.lines.append((job.started_at, f"===== Job started at {job.started_at} ====="))
            self.changed.notify_all()
        timeout = job.body.get("timeoutSeconds")
        timer = threading.Timer(timeout, self._time_out, args=(job,)) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        assert job.process.stdout is not None
        for raw in job.process.stdout:
            with self.lock:
                job.lines.append((_now(), raw.decode(errors="replace").rstrip("\n")))
                self.changed.notify_all()
        code = job.process.wait()
        if timer:
            timer.cancel()
        with self.lock:
            job.exit_code, job.finished_at = code, _now()
            if job.cancelled:
                job.stage = "CANCELED"
            elif job.stage == "RUNNING":
                job.stage, job.message = ("COMPLETED", None) if code == 0 else ("ERROR", f"exit code {code}")
            self.changed.notify_all()

    def _time_out(self, job: FakeJob) -> None:
        with self.lock:
            if job.stage == "RUNNING":
                job.stage, job.message = "ERROR", "Job timed out"
        if job.process is not None:
            _kill(job.process)

    def cancel(self, job: FakeJob) -> None:
        with self.lock:
            if job.stage not in ("SCHEDULING", "RUNNING"):
                return
            job.cancelled = True
            if job.process is None:
                job.stage, job.finished_at = "CANCELED", _now()
                self.changed.notify_all()
                return
        _kill(job.process)

    def job_info(self, job: FakeJob) -> dict[str, Any]:
        """The Hub's JobInfo JSON for `job`, checked by huggingface_hub's own JobInfo."""
        from huggingface_hub._jobs_api import JobInfo

        body = job.body
        info: dict[str, Any] = {
            "id": job.id, "createdAt": job.created_at, "dockerImage": body.get("dockerImage"),
            "command": body["command"], "arguments": body["arguments"], "environment": body["environment"],
            # secrets are kept encrypted: the listing names them, never shows them
            "secrets": dict.fromkeys(body.get("secrets") or {}, "********"),
            "flavor": body["flavor"], "labels": body.get("labels"),
            "status": {"stage": job.stage, "message": job.message},
            "owner": {"id": "5e9ecfc04957053f60648a3e", "name": job.namespace, "type": "user"},
            "initiator": {"type": "user", "id": "5e9ecfc04957053f60648a3e", "name": self.user},
        }
        if job.started_at:
            info["startedAt"] = job.started_at
        if job.finished_at:
            info["finishedAt"] = job.finished_at
        if body.get("network"):
            info["network"] = {"group": body["network"]["group"], "aliases": body["network"].get("aliases", [])}
        extra = set(info) - RESPONSE_FIELDS
        assert not extra, f"the fake answers fields JobInfo does not read: {extra}"
        parsed = JobInfo(**info, endpoint=self.endpoint)
        stage = parsed.status.stage
        assert stage in self.stages or stage in self.future_stages, stage
        return info


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


JOB_ROUTE = re.compile(r"^/api/jobs/(?P<ns>[^/]+)/(?P<id>[0-9a-f]+)(?P<rest>/logs|/cancel)?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
PREUPLOAD = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)$")
COMMIT = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)$")
BATCH = re.compile(r"^/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$")
LFS_PUT = re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$")


class _Handler(BaseHTTPRequestHandler):
    fake: HfJobsFake
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall between

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        from fakes.fault_proxy import read_request_body

        return read_request_body(self)

    def _send(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if not isinstance(body, bytes) else
                         "application/octet-stream")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, code: int, message: str, error_code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if error_code:
            headers["X-Error-Code"] = error_code
        self._send(code, {"error": message}, headers)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.fake.token}":
            return True
        self._error(401, "Invalid credentials in Authorization header")
        return False

    def _base(self) -> str:
        return f"http://{self.headers.get('Host') or self.fake.endpoint.removeprefix('http://')}"

    def _serve(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        with fake.lock:
            fake.requests.append((method, parts.path))
        body = self._body() if method in ("POST", "PUT") else b""
        try:
            self._route(method, parts.path, parse_qsl(parts.query), body)
        except Violation as exc:
            with fake.lock:
                fake.violations.append(f"{method} {parts.path}: {exc}")
            self._error(400, f"invalid request: {exc}")
        except bugs.CLIENT_GONE:
            raise
        except Exception:
            bugs.record(NAME)
            self._error(500, "the fake failed")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    # -- routes ------------------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> None:
        fake = self.fake
        if (match := LFS_PUT.match(path)) and method == "PUT":  # a pre-signed URL: no token, as on S3
            if hashlib.sha256(body).hexdigest() != match["oid"]:
                raise Violation("the uploaded bytes do not match their oid")
            with fake.lock:
                fake.lfs[match["oid"]] = body
            return self._send(200, b"")
        if not self._authorized():
            return None
        if path == "/api/whoami-v2" and method == "GET":
            return self._send(200, {"type": "user", "id": "5e9ecfc04957053f60648a3e", "name": fake.user,
                                    "fullname": fake.user, "orgs": [], "auth": {"type": "access_token"}})
        if path == "/api/jobs/hardware" and method == "GET":
            return self._send(200, [{"name": f, "prettyName": f, "cpu": "8 vCPU", "ram": "32 GB",
                                     "unitCostMicroUSD": 1, "unitCostUSD": 0.000001, "unitLabel": "minute"}
                                    for f in sorted(fake.flavors)])
        if (match := re.match(r"^/api/jobs/(?P<ns>[^/]+)$", path)):
            if method == "POST":
                return self._run_job(match["ns"], body)
            if method == "GET":
                return self._list_jobs(match["ns"], query)
        if (match := JOB_ROUTE.match(path)):
            with fake.lock:
                job = fake.jobs.get(match["id"])
            if job is None or job.namespace != match["ns"]:
                return self._error(404, "Job not found")
            if match["rest"] is None and method == "GET":
                with fake.lock:
                    return self._send(200, fake.job_info(job))
            if match["rest"] == "/cancel" and method == "POST":
                fake.cancel(job)
                return self._send(200, b"")
            if match["rest"] == "/logs" and method == "GET":
                return self._logs(job)
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(json.loads(body or b"{}"))
        if (match := RESOLVE.match(path)) and method in ("GET", "HEAD"):
            return self._resolve(match["repo"], match["path"])
        if (match := PREUPLOAD.match(path)) and method == "POST":
            return self._preupload(match["repo"], json.loads(body))
        if (match := BATCH.match(path)) and method == "POST":
            return self._batch(match["repo"], json.loads(body))
        if (match := COMMIT.match(path)) and method == "POST":
            return self._commit(match["repo"], body)
        raise Violation(f"no such endpoint: {method} {path}")

    def _run_job(self, namespace: str, raw: bytes) -> None:
        body = json.loads(raw)
        self.fake.check_body(body)
        job = self.fake.run_job(namespace, body)
        with self.fake.lock:
            self._send(200, self.fake.job_info(job))

    def _list_jobs(self, namespace: str, query: list[tuple[str, str]]) -> None:
        labels = [value.split("=", 1) for key, value in query if key == "label"]
        stages = {value for key, value in query if key == "stage"}
        if {key for key, _ in query} - {"label", "stage"}:
            raise Violation(f"unknown list parameters {query!r}")
        with self.fake.lock:
            found = [self.fake.job_info(j) for j in self.fake.jobs.values() if j.namespace == namespace
                     and all((j.body.get("labels") or {}).get(k) == v for k, v in labels)
                     and (not stages or j.stage in stages)]
        self._send(200, found)

    def _logs(self, job: FakeJob) -> None:
        """Server-sent events, chunked: what the job printed, then what it prints, until it ends or is quiet."""
        fake = self.fake
        with fake.lock:
            drop, fake._drop_after = fake._drop_after, None
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        quiet_since = time.monotonic()
        while True:
            with fake.changed:
                fresh = job.lines[sent:]
                ended = job.stage not in ("SCHEDULING", "RUNNING") and (job.process is None or
                                                                        job.exit_code is not None)
                if not fresh and not ended:
                    fake.changed.wait(0.1)
                    fresh = job.lines[sent:]
            for ts, text in fresh:
                if drop is not None and sent >= drop:
                    with fake.lock:
                        fake.dropped_streams += 1
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)  # cut: no closing chunk
                    return
                event = f"data: {json.dumps({'data': text, 'timestamp': ts})}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                sent += 1
            if fresh:
                self.wfile.flush()
                quiet_since = time.monotonic()
            if ended and sent >= len(job.lines):
                break
            if time.monotonic() - quiet_since > fake.stream_idle_s:
                break
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- the Hub ---------------------------------------------------------------------------------------------
    def _create_repo(self, body: dict[str, Any]) -> None:
        if set(body) - {"name", "organization", "visibility", "type", "private"} or not body.get("name"):
            raise Violation(f"create_repo body {body!r}")
        repo = f"{body.get('organization') or self.fake.user}/{body['name']}"
        with self.fake.lock:
            if repo in self.fake.repos:  # the Hub's 409 names the repo's URL (create_repo(exist_ok=True) reads it)
                message = "You already created this model repo"
                return self._send(409, {"error": message, "url": f"{self._base()}/{repo}"},
                                  {"X-Error-Message": message})
            self.fake.repos[repo] = body.get("visibility") == "private" or body.get("private") is True
        self._send(200, {"url": f"{self._base()}/{repo}", "name": repo, "id": uuid.uuid4().hex[:24]})

    def _resolve(self, repo: str, path: str) -> None:
        with self.fake.lock:
            if repo not in self.fake.repos:
                return self._error(404, "Repository not found", "RepoNotFound")
            data = self.fake.files.get((repo, path))
        if data is None:
            return self._error(404, "Entry not found", "EntryNotFound")
        etag = hashlib.sha256(data).hexdigest()
        self._send(200, data, {"ETag": f'"{etag}"', "X-Repo-Commit": "0" * 40})

    def _preupload(self, repo: str, body: dict[str, Any]) -> None:
        if repo not in self.fake.repos:
            return self._error(404, "Repository not found", "RepoNotFound")
        files = []
        for item in body.get("files", []):
            sample = base64.b64decode(item["sample"])
            mode = "lfs" if b"\0" in sample or item["size"] > LFS_LIMIT else "regular"
            files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": None})
        self._send(200, {"files": files, "commitOid": "0" * 40})

    def _batch(self, repo: str, body: dict[str, Any]) -> None:
        if body.get("operation") != "upload" or body.get("hash_algo") != "sha256":
            raise Violation(f"LFS batch body {body!r}")
        objects = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                    "actions": {"upload": {"href": f"{self._base()}/lfs-upload/{o['oid']}"}}}
                   for o in body["objects"]]
        self._send(200, {"transfer": "basic", "objects": objects})

    def _commit(self, repo: str, raw: bytes) -> None:
        lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise Violation("a commit starts with its header")
        added = {}
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "lfsFile":
                with self.fake.lock:
                    data = self.fake.lfs.get(value["oid"])
                if data is None or len(data) != value["size"]:
                    raise Violation(f"commit names LFS object {value['oid']} that was not uploaded")
                added[value["path"]] = data
            elif line["key"] == "file":
                added[value["path"]] = base64.b64decode(value["content"])
            else:
                raise Violation(f"unexpected commit operation {line['key']!r}")
        with self.fake.lock:
            for path, data in added.items():
                self.fake.files[(repo, path)] = data
            self.fake.commits.append({"repo": repo, "paths": sorted(added)})
        oid = uuid.uuid4().hex + "0" * 8
        self._send(200, {"commitUrl": f"{self._base()}/{repo}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None})


def hf_error(code: int, path: str, headers: Any, error_code: str | None = None) -> tuple[bytes, str]:
    """The Hub's error answer, {"error": message}, for the fault proxy (huggingface_hub reads the message)."""
    text = {401: "Invalid credentials in Authorization header", 403: "You don't have the rights to run jobs",
            429: "Too many requests", 500: "Internal Error", 503: "Service Unavailable"}.get(code, "error")
    return json.dumps({"error": error_code or text}).encode(), "application/json"
