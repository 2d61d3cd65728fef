"""An in-process fake of Vertex AI CustomJobs (REST v1), Cloud Logging ``entries:list`` and the GCS JSON API.

Import it from tests as ``from fakes.vertex_fake import VertexFake`` (pytest puts ``tests/`` on ``sys.path``).
One ``ThreadingHTTPServer`` on 127.0.0.1:<free port>, plain http, serves all three APIs::

    with VertexFake() as gcp:                       # gcp.endpoint == "http://127.0.0.1:PORT"
        jobs = gcp.job_client()                     # the real JobServiceClient, REST transport, anonymous
        gcs = gcp.storage_client()                  # the real storage.Client, anonymous
        gcp.add_bucket("staging")                   # uploads to a bucket that does not exist -> 404
        job = jobs.create_custom_job(parent="projects/p/locations/us-central1", custom_job=...)
        gcp.set_state(job.name, "JOB_STATE_RUNNING")            # or the numeric id
        gcp.add_log(job.name, "workerpool0-0", "hello")         # -> Cloud Logging entry, as Vertex writes it
        gcp.set_state(job.name, "JOB_STATE_FAILED", error_message="The replica workerpool0-0 exited ...")
        gcp.created_bodies[0]                       # the create body exactly as it came over HTTP (a dict)
        gcp.reset()                                 # between tests

Wire facts for the backend author (checked against google-cloud-aiplatform 2.7.0 / api-core 2.44 /
google-cloud-storage 3.17.1, the versions in .venv):

- Client: ``aiplatform_v1.JobServiceClient(transport="rest", credentials=AnonymousCredentials(),
  client_options={"api_endpoint": "http://127.0.0.1:PORT"})``. The REST transport keeps an ``http://`` or
  ``https://`` prefix of api_endpoint as given and prefixes ``https://`` only when there is none, so for real Vertex
  pass ``"{region}-aiplatform.googleapis.com"`` (bare host) and for the fake pass the full ``http://`` URL.
- Paths (``{name}`` = ``projects/{p}/locations/{l}/customJobs/{id}``, id numeric, assigned by the server):
  create ``POST /v1/projects/{p}/locations/{l}/customJobs`` (body = the CustomJob itself, not a request wrapper);
  get ``GET /v1/{name}``; list ``GET /v1/projects/{p}/locations/{l}/customJobs?filter=..&pageSize=..&pageToken=..``;
  cancel ``POST /v1/{name}:cancel`` with body ``{}``, answer ``{}`` (google.protobuf.Empty).
- Every REST call carries the query ``$alt=json;enum-encoding=int``; the transport serialises bodies with
  ``MessageToJson(use_integers_for_enums=True)``: camelCase keys, enums as integers (``"acceleratorType": 9``,
  ``"strategy": 4``), int64 as strings (``"replicaCount": "1"``), Duration as ``"3600s"``, default values omitted.
  The fake (like Google) parses names and numbers for enums alike, accepts snake_case or camelCase keys, and answers
  enums as ints when that ``$alt`` asks for it, as names otherwise. Responses are parsed by the client with
  ``ignore_unknown_fields=True``.
- Errors are ``{"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT"}}``. Over REST, api-core picks
  the exception class from the HTTP code only: every 400 (INVALID_ARGUMENT and FAILED_PRECONDITION alike) raises
  ``google.api_core.exceptions.BadRequest`` (never InvalidArgument/FailedPrecondition), 404 NotFound, 503
  ServiceUnavailable; the Google status is ``exc.response.json()["error"]["status"]``. None of
  create/get/list/cancel has a default retry in the v1 client: a 503 on create raises at once.
- The flattened ``list_custom_jobs`` takes only ``parent``: pass ``request={"parent": .., "filter": ..,
  "page_size": ..}``. Iterating the pager fetches every page.
- List filter (AIP-160): ``labels.launch_job_id="abc"`` (quoted or bare value), ``labels.launch_job_id:*``
  (existence), ``display_name="x"`` / ``display_name:"job-*"``, ``state="JOB_STATE_RUNNING"`` / ``!=``,
  ``create_time>"2024-05-18T00:00:00Z"``, ``AND`` / ``OR`` / ``NOT`` / parentheses. Mind AIP-160 precedence: OR
  binds tighter than AND (``a AND b OR c`` is ``a AND (b OR c)``); the fake implements that. Unknown fields -> 400.
  Label keys with ``-`` work in the fake; that real Vertex parses ``labels.my-key=..`` is unverified: prefer ``_``.
  Order: newest create_time first (the fake's choice); default page size 100 (``VertexFake.default_page_size``).
- Create validation (400 INVALID_ARGUMENT, nothing stored): the strict proto parse; display_name;
  worker_pool_specs; pool 0 non-empty with replica_count 1 (later pools may be ``{}``); machine_type; one of
  container_spec.image_uri / python_package_spec; accelerator type <-> count; GPU machine families
  (a2/a3/a4/g2/n1) against their fixed accelerator and counts (a3-highgpu-{1,2,4,8}g + NVIDIA_H100_80GB x{1,2,4,8},
  a2-highgpu-* A100 40GB, a2-ultragpu-* NVIDIA_A100_80GB, g2-standard-{4,8,12,16,32}=1/24=2/48=4/96=8 NVIDIA_L4,
  n1 + T4 {1,2,4}; cloud-tpu + TPU_V2/TPU_V3 x8 or a multiple of 32; tpu_topology only on a TPU VM machine type,
  ct5lp/ct5p/ct6e/ct4p-*-{1,4,8}t, whose topology the fake does not check);
  GCP label rules (keys ``[a-z][a-z0-9_-]{0,62}``, values ``[a-z0-9_-]{0,63}``, <= 64 labels);
  boot disk type. Output-only fields in the body (name, state, times) are ignored, as Google does. The messages are
  the fake's own wording, so match on the status/exception class, not the text.
- States: a new job is JOB_STATE_PENDING with create_time/update_time. Jobs never move by themselves: drive them
  with ``set_state``. cancel: PENDING/QUEUED/RUNNING/PAUSED/UPDATING -> CANCELLING (move it on with
  ``set_state(.., "JOB_STATE_CANCELLED")``, which also sets error code 1); CANCELLING -> accepted, unchanged (an
  assumption); a terminal job -> 400 FAILED_PRECONDITION. Unknown job -> 404 NOT_FOUND.
- Logs: ``POST /v2/entries:list`` (host logging.googleapis.com for real), body ``{"resourceNames":
  ["projects/P"], "filter": ..., "orderBy": "timestamp asc", "pageSize": N, "pageToken": ...}``, answer
  ``{"entries": [...], "nextPageToken": ...}`` (no ``entries`` key when empty). pageSize default 50, 1..1000;
  orderBy only ``timestamp asc|desc``; a pageToken is only valid with the same request. Vertex writes one log per
  task: ``logName`` ``projects/P/logs/workerpool0-0``, ``resource`` ``{"type": "ml_job", "labels": {"job_id":
  "<numeric id>", "task_name": "workerpool0-0", "project_id": P}}`` - job_id is the numeric id, NOT the display
  name. Payload is ``textPayload`` or ``jsonPayload.message``. Filter: ``resource.type="ml_job"
  resource.labels.job_id="123" resource.labels.task_name="workerpool1-0" timestamp>="2024-01-01T00:00:00.5Z"``
  (implicit AND by whitespace), plus any dotted field, ``!=``, ``:`` (case-insensitive substring), ``=~``,
  ``severity>=WARNING``. Equal timestamps are ordered by insertId. ``add_log`` may add an entry older than ones
  already read, like Logging's late ingestion: poll with ``timestamp>=last`` and drop insertIds already shown.
- GCS: ``storage.Client(project=P, credentials=AnonymousCredentials(), client_options={"api_endpoint":
  endpoint})`` (or ``STORAGE_EMULATOR_HOST=endpoint``). Uploads of <= 8 MiB of known size are
  ``POST /upload/storage/v1/b/{b}/o?uploadType=multipart`` (multipart/related: JSON metadata with name/crc32c,
  then the bytes); bigger ones and ``upload_from_file`` without size are resumable (POST ``uploadType=resumable``
  -> ``Location`` session URL -> PUT with ``Content-Range``). Object names are %-encoded in paths (``a/b`` ->
  ``a%2Fb``). ``blob.exists()``/``reload()``: ``GET /storage/v1/b/{b}/o/{name}``; ``bucket.exists()``:
  ``GET /storage/v1/b/{b}?fields=name``; each Client also fetches a bucket's metadata once, in a background
  daemon thread, on its first upload there (``GET /storage/v1/b/{b}?projection=noAcl``, errors swallowed), so
  ``requests`` may hold that GET at any point: don't assert exact GCS request sequences. Downloads
  ``GET /download/storage/v1/b/{b}/o/{name}?alt=media`` (checked against ``x-goog-hash``). ``ifGenerationMatch``
  is honoured (412 -> PreconditionFailed).
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import google_crc32c
from google.cloud import aiplatform_v1
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory, timestamp_pb2

from . import bugs
from .fault_proxy import read_request_body

JobState = aiplatform_v1.JobState
TERMINAL_STATES = frozenset({JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED,
                             JobState.JOB_STATE_EXPIRED, JobState.JOB_STATE_PARTIALLY_SUCCEEDED})
CANCELLABLE_STATES = frozenset({JobState.JOB_STATE_QUEUED, JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING,
                                JobState.JOB_STATE_PAUSED, JobState.JOB_STATE_UPDATING})
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 501: "UNIMPLEMENTED", 503: "UNAVAILABLE"}
_SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_JOB_PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/customJobs"


class ApiError(Exception):
    """Answered as a Google JSON error. ``status`` defaults from the HTTP code."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status or _STATUS_NAMES.get(code, "UNKNOWN")


# -- machine types --------------------------------------------------------------------------------------------------
_N1_GPUS = {"NVIDIA_TESLA_T4": {1, 2, 4}, "NVIDIA_TESLA_V100": {1, 2, 4, 8}, "NVIDIA_TESLA_P100": {1, 2, 4},
            "NVIDIA_TESLA_P4": {1, 2, 4}, "NVIDIA_TESLA_K80": {1, 2, 4, 8}}


def _fixed_gpus(machine_type: str) -> tuple[str, int] | None:
    """(accelerator, count) a GPU-bound machine type comes with; None for other types. Unknown variant -> 400."""
    table: list[tuple[str, str, Callable[[str], int | None]]] = [
        (r"a3-highgpu-(1|2|4|8)g", "NVIDIA_H100_80GB", int),
        (r"a3-megagpu-(8)g", "NVIDIA_H100_MEGA_80GB", int),
        (r"a3-ultragpu-(8)g", "NVIDIA_H200_141GB", int),
        (r"a4-highgpu-(8)g", "NVIDIA_B200", int),
        (r"a2-highgpu-(1|2|4|8)g", "NVIDIA_TESLA_A100", int),
        (r"a2-megagpu-(16)g", "NVIDIA_TESLA_A100", int),
        (r"a2-ultragpu-(1|2|4|8)g", "NVIDIA_A100_80GB", int),
        (r"g2-standard-(\d+)", "NVIDIA_L4",
         lambda n: {"4": 1, "8": 1, "12": 1, "16": 1, "32": 1, "24": 2, "48": 4, "96": 8}.get(n)),
    ]
    for pattern, accelerator, count in table:
        m = re.fullmatch(pattern, machine_type)
        if m and count(m.group(1)) is not None:
            return accelerator, int(count(m.group(1)) or 0)
    if re.match(r"(a2|a3|a4|g2)-", machine_type):
        raise ApiError(400, f'Machine type "{machine_type}" is not supported.')
    return None


# -- timestamps -----------------------------------------------------------------------------------------------------
def _parse_ts(value: str) -> tuple[int, int]:
    ts = timestamp_pb2.Timestamp()
    try:
        ts.FromJsonString(value)
    except ValueError as e:
        raise ApiError(400, f"Invalid timestamp {value!r}: {e}") from None
    return ts.seconds, ts.nanos


def _rfc3339_nanos(key: tuple[int, int]) -> str:
    seconds, nanos = key
    base = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def _now_key() -> tuple[int, int]:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts.seconds, ts.nanos


# -- AIP-160 / Logging query filters ----------------------------------------------------------------------------------
_TOKEN = re.compile(r'\s*(?:(?P<q>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|=~|!~|[=<>:])|(?P<p>[()])|(?P<w>[^\s()"=<>!:~]+))')


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ApiError(400, f"Invalid filter at offset {pos}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "q":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif kind == "w" and value in ("AND", "OR", "NOT"):
            kind = "kw"
        tokens.append((kind, value))
        pos = m.end()
    return tokens


def parse_filter(text: str) -> Any:
    """Parse a filter into a tree: ("and"|"or", [..]), ("not", x), ("cmp", field, op, value, quoted) or None.

    Precedence as AIP-160 and the Logging query language: NOT, then OR, then AND (explicit or by juxtaposition).
    """
    tokens = _tokenize(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise ApiError(400, f"Invalid filter: unexpected end of {text!r}")
        pos += 1
        return tokens[pos - 1]

    def and_expr() -> Any:
        items = [or_expr()]
        while (tok := peek()) is not None and tok != ("p", ")"):
            if tok == ("kw", "AND"):
                take()
            items.append(or_expr())
        return items[0] if len(items) == 1 else ("and", items)

    def or_expr() -> Any:
        items = [unary()]
        while peek() == ("kw", "OR"):
            take()
            items.append(unary())
        return items[0] if len(items) == 1 else ("or", items)

    def unary() -> Any:
        kind, value = take()
        if (kind, value) == ("kw", "NOT"):
            return ("not", unary())
        if (kind, value) == ("p", "("):
            inner = and_expr()
            if take() != ("p", ")"):
                raise ApiError(400, f"Invalid filter: missing ')' in {text!r}")
            return inner
        if kind != "w":
            raise ApiError(400, f"Invalid filter: unexpected {value!r} in {text!r}")
        op_kind, op = take()
        if op_kind != "op":
            raise ApiError(400, f"Invalid filter: expected a comparison after {value!r} in {text!r}")
        v_kind, v = take()
        if v_kind not in ("w", "q"):
            raise ApiError(400, f"Invalid filter: expected a value after {value}{op} in {text!r}")
        return ("cmp", value, op, v, v_kind == "q")

    if not tokens:
        return None
    tree = and_expr()
    if pos != len(tokens):
        raise ApiError(400, f"Invalid filter: unexpected {tokens[pos][1]!r} in {text!r}")
    return tree


def eval_filter(tree: Any, match: Callable[[str, str, str, bool], bool]) -> bool:
    if tree is None:
        return True
    kind = tree[0]
    if kind == "and":
        return all(eval_filter(t, match) for t in tree[1])
    if kind == "or":
        return any(eval_filter(t, match) for t in tree[1])
    if kind == "not":
        return not eval_filter(tree[1], match)
    return match(*tree[1:])


def _compare(left: Any, op: str, right: Any) -> bool:
    return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
            ">": left > right, ">=": left >= right}[op]


def _check_fields(tree: Any, ok: Callable[[str], bool]) -> None:
    if tree is None:
        return
    if tree[0] == "cmp":
        if not ok(tree[1]):
            raise ApiError(400, f"Unsupported field in filter: {tree[1]}")
    elif tree[0] == "not":
        _check_fields(tree[1], ok)
    else:
        for t in tree[1]:
            _check_fields(t, ok)


# -- the dynamic ListLogEntriesRequest (google-cloud-logging is not installed) --------------------------------------
def _log_request_class() -> Any:
    fdp = descriptor_pb2.FileDescriptorProto(name="vertex_fake/logging.proto", package="google.logging.v2",
                                             syntax="proto3")
    msg = fdp.message_type.add(name="ListLogEntriesRequest")
    f = descriptor_pb2.FieldDescriptorProto
    for name, number, ftype, label in [("project_ids", 1, f.TYPE_STRING, f.LABEL_REPEATED),
                                       ("filter", 2, f.TYPE_STRING, f.LABEL_OPTIONAL),
                                       ("order_by", 3, f.TYPE_STRING, f.LABEL_OPTIONAL),
                                       ("page_size", 4, f.TYPE_INT32, f.LABEL_OPTIONAL),
                                       ("page_token", 5, f.TYPE_STRING, f.LABEL_OPTIONAL),
                                       ("resource_names", 8, f.TYPE_STRING, f.LABEL_REPEATED)]:
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
        msg.field.add(name=name, number=number, type=ftype, label=label, json_name=camel)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.logging.v2.ListLogEntriesRequest"))


ListLogEntriesRequest = _log_request_class()


class VertexFake:
    """Vertex AI CustomJobs + Cloud Logging entries:list + GCS JSON API on one local http server."""

    default_page_size = 100

    def __init__(self, project: str = "test-project", location: str = "us-central1",
                 buckets: Iterable[str] = ()) -> None:
        self.project, self.location = project, location
        self._initial_buckets = tuple(buckets)
        self.endpoint = ""
        self.port = 0
        self._server: bugs.RecordingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> VertexFake:
        if self._server is not None:
            return self
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        server = bugs.RecordingHTTPServer("VertexFake", ("127.0.0.1", 0), Handler)  # port 0: the OS picks one
        self._server = server
        self.port = server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="vertex-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> VertexFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget jobs, logs, objects, recorded requests and pending failures; buckets back to the initial ones."""
        with self.lock:
            self.jobs: dict[str, aiplatform_v1.CustomJob] = {}
            self.created_bodies: list[Any] = []
            self.cancel_requests: list[str] = []
            self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, %-encoded path, query)
            self.upload_metadata: list[dict[str, Any]] = []  # JSON metadata parts of multipart uploads
            self.log_entries: list[dict[str, Any]] = []
            self.objects: dict[tuple[str, str], bytes] = {}
            self.object_meta: dict[tuple[str, str], dict[str, Any]] = {}
            self.buckets: set[str] = set(self._initial_buckets)
            self._fail_after_store = 0
            self._failures: list[list[Any]] = []
            self._page_tokens: dict[str, tuple[str, int]] = {}
            self._uploads: dict[str, dict[str, Any]] = {}
            self._last_log_key = (0, 0)
            self._generation = itertools.count(1_700_000_000_000_000)

    # -- real clients ----------------------------------------------------------------------------------------------
    def job_client(self) -> aiplatform_v1.JobServiceClient:
        from google.auth.credentials import AnonymousCredentials

        return aiplatform_v1.JobServiceClient(transport="rest", credentials=AnonymousCredentials(),
                                              client_options={"api_endpoint": self.endpoint})

    def storage_client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=self.project, credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.endpoint})

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    # -- test hooks: Vertex ------------------------------------------------------------------------------------------
    def job(self, job: str) -> aiplatform_v1.CustomJob:
        """The stored CustomJob by full name or numeric id (KeyError if none)."""
        with self.lock:
            if job in self.jobs:
                return self.jobs[job]
            for name, stored in self.jobs.items():
                if name.rsplit("/", 1)[-1] == job:
                    return stored
        raise KeyError(job)

    def set_state(self, job: str, state: str | int, error_message: str | None = None, *,
                  error_code: int | None = None) -> aiplatform_v1.CustomJob:
        """Move a job to ``state`` ("JOB_STATE_RUNNING", "RUNNING" or a JobState), with times as Vertex sets them.

        RUNNING sets start_time (once); a terminal state sets end_time (and start_time if it never ran only for
        SUCCEEDED); FAILED sets ``error`` (code 3 unless ``error_code``, the message or a default), CANCELLED sets
        error code 1 (CANCELLED); ``error_message`` with any other state sets error too.
        """
        if isinstance(state, str):
            state = JobState[state if state.startswith("JOB_STATE_") else f"JOB_STATE_{state}"]
        state = JobState(state)
        with self.lock:
            pb = aiplatform_v1.CustomJob.pb(self.job(job))
            now = _now_key()
            pb.state = state
            pb.update_time.seconds, pb.update_time.nanos = now
            if state == JobState.JOB_STATE_RUNNING and not pb.HasField("start_time"):
                pb.start_time.seconds, pb.start_time.nanos = now
            if state in TERMINAL_STATES:
                if state == JobState.JOB_STATE_SUCCEEDED and not pb.HasField("start_time"):
                    pb.start_time.seconds, pb.start_time.nanos = now
                pb.end_time.seconds, pb.end_time.nanos = now
            else:
                pb.ClearField("end_time")
            pb.ClearField("error")
            if state == JobState.JOB_STATE_FAILED:
                pb.error.code = 3 if error_code is None else error_code
                pb.error.message = error_message or "The replica workerpool0-0 exited with a non-zero status of 1."
            elif state == JobState.JOB_STATE_CANCELLED:
                pb.error.code = 1 if error_code is None else error_code
                pb.error.message = error_message or "CANCELED"
            elif error_message is not None or error_code is not None:
                pb.error.code = 13 if error_code is None else error_code
                pb.error.message = error_message or ""
            return self.job(job)

    def fail_next_create_after_storing(self, times: int = 1) -> None:
        """The next ``times`` creates store the job (and answer nothing of it) but return 503 UNAVAILABLE."""
        with self.lock:
            self._fail_after_store += times

    def fail_next(self, path_regex: str, code: int = 503, *, method: str | None = None, times: int = 1,
                  message: str = "The service is currently unavailable.") -> None:
        """Answer the next ``times`` requests whose path matches (re.search) with ``code``, before any handling."""
        with self.lock:
            self._failures.append([re.compile(path_regex), method, code, message, times])

    # -- test hooks: Logging -----------------------------------------------------------------------------------------
    def add_log(self, job: str, task_name: str, text: str | dict[str, Any],
                timestamp: str | dt.datetime | None = None, *, as_json: bool = False, severity: str = "INFO",
                project: str | None = None, insert_id: str | None = None) -> dict[str, Any]:
        """Store a log entry as Vertex writes it for task ``task_name`` ("workerpool0-0") of job ``job``.

        ``job`` is a full job name or the numeric id. The payload is ``textPayload``; with ``as_json`` it is
        ``jsonPayload: {"message": text}``, and a dict ``text`` is the whole jsonPayload. ``timestamp`` (str RFC 3339
        or aware datetime) defaults to now, kept strictly after the previous default one. Returns the entry.
        """
        job_id = job.rsplit("/", 1)[-1]
        if project is None:
            project = job.split("/")[1] if job.startswith("projects/") else self.project
        with self.lock:
            if timestamp is None:
                now = _now_key()
                key = max(now, (self._last_log_key[0], self._last_log_key[1] + 1000))
                if key[1] >= 1_000_000_000:
                    key = (key[0] + 1, key[1] - 1_000_000_000)
                self._last_log_key = key
            elif isinstance(timestamp, dt.datetime):
                key = _parse_ts(timestamp.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"))
            else:
                key = _parse_ts(timestamp)
            ts = _rfc3339_nanos(key)
            entry: dict[str, Any] = {
                "insertId": insert_id or f"{len(self.log_entries) + 1:06d}{hashlib.sha1(ts.encode()).hexdigest()[:8]}",
                "resource": {"type": "ml_job", "labels": {"job_id": job_id, "task_name": task_name,
                                                          "project_id": project}},
                "timestamp": ts,
                "severity": severity,
                "logName": f"projects/{project}/logs/{task_name}",
                "receiveTimestamp": _rfc3339_nanos(_now_key()),
            }
            if isinstance(text, dict):
                entry["jsonPayload"] = dict(text)
            elif as_json:
                entry["jsonPayload"] = {"message": text}
            else:
                entry["textPayload"] = text
            self.log_entries.append(entry)
            return entry

    # -- test hooks: GCS ----------------------------------------------------------------------------------------------
    def add_bucket(self, name: str) -> None:
        with self.lock:
            self.buckets.add(name)

    # -- HTTP dispatch ------------------------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, query: dict[str, str], headers: Any,
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.requests.append((method, raw_path, dict(query)))
            for failure in self._failures:
                regex, fmethod, code, message, times = failure
                if times > 0 and regex.search(raw_path) and fmethod in (None, method):
                    failure[4] -= 1
                    raise ApiError(code, message)
            for rx, verb, fn in self._routes():
                m = re.fullmatch(rx, raw_path)
                if m and verb == method:
                    groups = {k: unquote(v) for k, v in m.groupdict().items()}
                    return fn(query=query, headers=headers, body=body, **groups)
        raise ApiError(404, f"The fake has no route for {method} {raw_path}.")

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any, dict[str, str]]]]]:
        obj = r"/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<name>[^?]+)"
        return [
            (_JOB_PARENT, "POST", self._create_job),
            (_JOB_PARENT, "GET", self._list_jobs),
            (_JOB_PARENT + r"/(?P<job_id>[^/:]+)", "GET", self._get_job),
            (_JOB_PARENT + r"/(?P<job_id>[^/:]+):cancel", "POST", self._cancel_job),
            (r"/v2/entries:list", "POST", self._list_entries),
            (r"/storage/v1/b", "POST", self._create_bucket),
            (r"/storage/v1/b/(?P<bucket>[^/]+)", "GET", self._get_bucket),
            (r"/storage/v1/b/(?P<bucket>[^/]+)/o", "GET", self._list_objects),
            (obj, "GET", self._get_object),
            (obj, "DELETE", self._delete_object),
            (r"/download" + obj, "GET", self._get_object),
            (r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o", "POST", self._upload),
            (r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o", "PUT", self._resumable_put),
        ]

    # -- Vertex ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _job_json(job: aiplatform_v1.CustomJob, query: dict[str, str]) -> dict[str, Any]:
        ints = "enum-encoding=int" in query.get("$alt", "")
        return json_format.MessageToDict(aiplatform_v1.CustomJob.pb(job), use_integers_for_enums=ints)

    def _create_job(self, project: str, location: str, query: dict[str, str], body: bytes,
                    **_: Any) -> tuple[int, Any, dict[str, str]]:
        text = body.decode("utf-8", errors="replace")
        try:
            self.created_bodies.append(json.loads(text))
        except ValueError:
            self.created_bodies.append(text)
        job = aiplatform_v1.CustomJob()
        try:
            json_format.Parse(text, aiplatform_v1.CustomJob.pb(job), ignore_unknown_fields=False)
        except json_format.ParseError as e:
            raise ApiError(400, f"Invalid JSON payload received. {e}") from None
        _validate_custom_job(job)
        pb = aiplatform_v1.CustomJob.pb(job)
        for output_only in ("name", "state", "create_time", "start_time", "end_time", "update_time", "error",
                            "web_access_uris"):
            pb.ClearField(output_only)
        job_id = str(8_000_000_000_000_000_000 + next(self._ids) * 7919)
        pb.name = f"projects/{project}/locations/{location}/customJobs/{job_id}"
        pb.state = JobState.JOB_STATE_PENDING
        now = _now_key()
        pb.create_time.seconds, pb.create_time.nanos = now
        pb.update_time.seconds, pb.update_time.nanos = now
        self.jobs[pb.name] = job
        if self._fail_after_store > 0:
            self._fail_after_store -= 1
            raise ApiError(503, "The service is currently unavailable.")
        return 200, self._job_json(job, query), {}

    def _find(self, project: str, location: str, job_id: str) -> aiplatform_v1.CustomJob:
        name = f"projects/{project}/locations/{location}/customJobs/{job_id}"
        if name not in self.jobs:
            raise ApiError(404, f'The CustomJob "{name}" does not exist.')
        return self.jobs[name]

    def _get_job(self, project: str, location: str, job_id: str, query: dict[str, str],
                 **_: Any) -> tuple[int, Any, dict[str, str]]:
        return 200, self._job_json(self._find(project, location, job_id), query), {}

    def _cancel_job(self, project: str, location: str, job_id: str, body: bytes,
                    **_: Any) -> tuple[int, Any, dict[str, str]]:
        job = self._find(project, location, job_id)
        _parse_json_object(body, allowed=set())  # CancelCustomJobRequest minus the path's name: {}
        self.cancel_requests.append(job.name)
        if job.state in TERMINAL_STATES:
            raise ApiError(400, f"Cannot cancel CustomJob {job.name} because it is in state {job.state.name}.",
                           "FAILED_PRECONDITION")
        if job.state in CANCELLABLE_STATES:
            self.set_state(job.name, JobState.JOB_STATE_CANCELLING)
        return 200, {}, {}

    def _list_jobs(self, project: str, location: str, query: dict[str, str],
                   **_: Any) -> tuple[int, Any, dict[str, str]]:
        unknown = set(query) - {"filter", "pageSize", "pageToken", "readMask", "$alt", "page_size", "page_token",
                                "read_mask"}
        if unknown:
            raise ApiError(400, f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}: "
                                "Cannot bind query parameter.")
        flt = query.get("filter", "")
        tree = parse_filter(flt)
        _check_fields(tree, lambda f: f in ("display_name", "state", "create_time") or f.startswith("labels."))
        parent = f"projects/{project}/locations/{location}/"
        jobs = [j for name, j in self.jobs.items() if name.startswith(parent)]
        jobs = [j for j in jobs if eval_filter(tree, lambda f, op, v, q, j=j: _match_job(j, f, op, v, q))]
        jobs.sort(key=lambda j: (aiplatform_v1.CustomJob.pb(j).create_time.ToNanoseconds(), j.name), reverse=True)
        size = _int(query.get("pageSize", query.get("page_size", "0")), "pageSize") or self.default_page_size
        offset = self._token_offset(query.get("pageToken", query.get("page_token", "")), f"jobs|{parent}|{flt}")
        page = jobs[offset:offset + max(size, 1)]
        out: dict[str, Any] = {}
        if page:
            out["customJobs"] = [self._job_json(j, query) for j in page]
        if offset + len(page) < len(jobs):
            out["nextPageToken"] = self._new_token(f"jobs|{parent}|{flt}", offset + len(page))
        return 200, out, {}

    def _token_offset(self, token: str, signature: str) -> int:
        if not token:
            return 0
        sig, offset = self._page_tokens.get(token, ("", -1))
        if sig != signature:
            raise ApiError(400, "The page token is invalid for this request.")
        return offset

    def _new_token(self, signature: str, offset: int) -> str:
        token = base64.urlsafe_b64encode(hashlib.sha256(f"{signature}|{offset}".encode()).digest()[:18]).decode()
        self._page_tokens[token] = (signature, offset)
        return token

    # -- Logging -------------------------------------------------------------------------------------------------
    def _list_entries(self, body: bytes, **_: Any) -> tuple[int, Any, dict[str, str]]:
        req = ListLogEntriesRequest()
        try:
            json_format.Parse(body.decode("utf-8", errors="replace") or "{}", req, ignore_unknown_fields=False)
        except json_format.ParseError as e:
            raise ApiError(400, f"Invalid JSON payload received. {e}") from None
        names = list(req.resource_names) + [f"projects/{p}" for p in req.project_ids]
        if not names:
            raise ApiError(400, "resource_names: at least one resource name is required.")
        projects = set()
        for name in names:
            m = re.fullmatch(r"projects/([^/]+)", name)
            if not m:
                raise ApiError(400, f"The fake only supports resource names projects/PROJECT, got {name!r}.")
            projects.add(m.group(1))
        order = " ".join(req.order_by.split()).lower() or "timestamp asc"
        if order not in ("timestamp asc", "timestamp desc"):
            raise ApiError(400, f"Invalid order_by {req.order_by!r}: only 'timestamp asc' and 'timestamp desc'.")
        if req.page_size < 0 or req.page_size > 1000:
            raise ApiError(400, f"page_size must be between 0 and 1000, got {req.page_size}.")
        tree = parse_filter(req.filter)
        entries = [e for e in self.log_entries if e["logName"].split("/")[1] in projects
                   and eval_filter(tree, lambda f, op, v, q, e=e: _match_entry(e, f, op, v, q))]
        entries.sort(key=lambda e: (_parse_ts(e["timestamp"]), e["insertId"]), reverse=order.endswith("desc"))
        signature = f"logs|{sorted(names)}|{req.filter}|{order}"
        offset = self._token_offset(req.page_token, signature)
        size = req.page_size or 50
        page = entries[offset:offset + size]
        out: dict[str, Any] = {}
        if page:
            out["entries"] = json.loads(json.dumps(page))
        if offset + len(page) < len(entries):
            out["nextPageToken"] = self._new_token(signature, offset + len(page))
        return 200, out, {}

    # -- GCS -------------------------------------------------------------------------------------------------------
    def _bucket_json(self, bucket: str) -> dict[str, Any]:
        return {"kind": "storage#bucket", "id": bucket, "name": bucket, "selfLink": f"{self.endpoint}/storage/v1/b/"
                f"{bucket}", "projectNumber": "123456789012", "location": "US", "storageClass": "STANDARD",
                "metageneration": "1", "timeCreated": "2024-01-01T00:00:00.000Z", "updated":
                "2024-01-01T00:00:00.000Z", "etag": "CAE="}

    def _need_bucket(self, bucket: str) -> None:
        if bucket not in self.buckets:
            raise ApiError(404, "The specified bucket does not exist.", "notFound")

    def _create_bucket(self, body: bytes, **_: Any) -> tuple[int, Any, dict[str, str]]:
        name = _parse_json_object(body).get("name", "")
        if not name:
            raise ApiError(400, "Required: bucket name.", "required")
        if name in self.buckets:
            raise ApiError(409, "Your previous request to create the named bucket succeeded and you already own it.",
                           "conflict")
        self.buckets.add(name)
        return 200, self._bucket_json(name), {}

    def _get_bucket(self, bucket: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._need_bucket(bucket)
        return 200, self._bucket_json(bucket), {}

    def _object_json(self, bucket: str, name: str) -> dict[str, Any]:
        return dict(self.object_meta[bucket, name])

    def _need_object(self, bucket: str, name: str) -> None:
        self._need_bucket(bucket)
        if (bucket, name) not in self.objects:
            raise ApiError(404, f"No such object: {bucket}/{name}", "notFound")

    def _get_object(self, bucket: str, name: str, query: dict[str, str],
                    **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._need_object(bucket, name)
        meta = self.object_meta[bucket, name]
        if query.get("alt") == "media":
            data = self.objects[bucket, name]
            return 200, data, {"Content-Type": meta.get("contentType", "application/octet-stream"),
                               "x-goog-hash": f"crc32c={meta['crc32c']},md5={meta['md5Hash']}",
                               "x-goog-generation": meta["generation"],
                               "x-goog-stored-content-length": str(len(data))}
        return 200, self._object_json(bucket, name), {}

    def _delete_object(self, bucket: str, name: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._need_object(bucket, name)
        del self.objects[bucket, name], self.object_meta[bucket, name]
        return 204, b"", {}

    def _list_objects(self, bucket: str, query: dict[str, str], **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._need_bucket(bucket)
        prefix = query.get("prefix", "")
        items = [self._object_json(b, n) for (b, n) in sorted(self.objects) if b == bucket and n.startswith(prefix)]
        return 200, {"kind": "storage#objects", **({"items": items} if items else {})}, {}

    def _store_object(self, bucket: str, name: str, data: bytes, meta: dict[str, Any],
                      query: dict[str, str]) -> dict[str, Any]:
        self._need_bucket(bucket)
        if not name:
            raise ApiError(400, "Required: object name.", "required")
        if "ifGenerationMatch" in query:
            current = self.object_meta.get((bucket, name), {}).get("generation", "0")
            if query["ifGenerationMatch"] != current:
                raise ApiError(412, "At least one of the pre-conditions you specified did not hold.",
                               "conditionNotMet")
        crc = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        for key, actual in (("crc32c", crc), ("md5Hash", md5)):
            if key in meta and meta[key] != actual:
                raise ApiError(400, f"Provided {key} \"{meta[key]}\" doesn't match calculated {key} \"{actual}\".",
                               "invalid")
        generation = str(next(self._generation))
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        quoted = name.replace("/", "%2F")
        obj = {"kind": "storage#object", "id": f"{bucket}/{name}/{generation}",
               "selfLink": f"{self.endpoint}/storage/v1/b/{bucket}/o/{quoted}",
               "mediaLink": f"{self.endpoint}/download/storage/v1/b/{bucket}/o/{quoted}?generation={generation}"
                            "&alt=media",
               "name": name, "bucket": bucket, "generation": generation, "metageneration": "1",
               "contentType": meta.get("contentType") or "application/octet-stream", "storageClass": "STANDARD",
               "size": str(len(data)), "md5Hash": md5, "crc32c": crc, "etag": "CAE=", "timeCreated": now,
               "updated": now, "timeStorageClassUpdated": now}
        if meta.get("metadata"):
            obj["metadata"] = dict(meta["metadata"])
        self.objects[bucket, name] = bytes(data)
        self.object_meta[bucket, name] = obj
        return dict(obj)

    def _upload(self, bucket: str, query: dict[str, str], headers: Any, body: bytes,
                **_: Any) -> tuple[int, Any, dict[str, str]]:
        kind = query.get("uploadType", "")
        if kind == "media":
            meta = {"name": query.get("name", ""), "contentType": headers.get("Content-Type")}
            return 200, self._store_object(bucket, meta["name"], body, meta, query), {}
        if kind == "multipart":
            meta, data = _parse_multipart(headers.get("Content-Type", ""), body)
            self.upload_metadata.append(dict(meta))
            return 200, self._store_object(bucket, meta.get("name") or query.get("name", ""), data, meta, query), {}
        if kind == "resumable":
            self._need_bucket(bucket)
            meta = _parse_json_object(body) if body.strip() else {}
            meta.setdefault("name", query.get("name", ""))
            if headers.get("X-Upload-Content-Type"):
                meta.setdefault("contentType", headers["X-Upload-Content-Type"])
            upload_id = hashlib.sha1(f"{bucket}|{meta['name']}|{len(self._uploads)}".encode()).hexdigest()
            self._uploads[upload_id] = {"bucket": bucket, "meta": meta, "data": bytearray(), "query": dict(query)}
            location = f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&upload_id={upload_id}"
            return 200, b"", {"Location": location, "X-GUploader-UploadID": upload_id}
        raise ApiError(400, f"Unsupported uploadType {kind!r}.", "invalid")

    def _resumable_put(self, bucket: str, query: dict[str, str], headers: Any, body: bytes,
                       **_: Any) -> tuple[int, Any, dict[str, str]]:
        upload = self._uploads.get(query.get("upload_id", ""))
        if upload is None or upload["bucket"] != bucket:
            raise ApiError(404, "No such upload session.", "notFound")
        m = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", headers.get("Content-Range", "").strip())
        if m is None and body:
            raise ApiError(400, f"Invalid Content-Range {headers.get('Content-Range')!r}.", "invalid")
        data: bytearray = upload["data"]
        if m and m.group(1) is not None:
            start = int(m.group(1))
            if start != len(data):
                raise ApiError(400, f"Chunk starts at {start}, expected {len(data)}.", "invalid")
            data.extend(body)
        total = m.group(3) if m else "*"
        if total != "*" and int(total) == len(data):
            del self._uploads[query["upload_id"]]
            return 200, self._store_object(bucket, upload["meta"]["name"], bytes(data), upload["meta"],
                                           upload["query"]), {}
        return 308, b"", ({"Range": f"bytes=0-{len(data) - 1}"} if data else {})


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"Invalid value for {what}: {value!r}") from None


def _parse_json_object(body: bytes, allowed: set[str] | None = None) -> dict[str, Any]:
    try:
        obj = json.loads(body.decode("utf-8") or "{}")
    except ValueError as e:
        raise ApiError(400, f"Invalid JSON payload received. {e}") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.")
    if allowed is not None and set(obj) - allowed:
        raise ApiError(400, f"Invalid JSON payload received. Unknown name {sorted(set(obj) - allowed)[0]!r}: "
                            "Cannot find field.")
    return obj


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/related") or m is None:
        raise ApiError(400, f"Multipart upload needs multipart/related with a boundary, got {content_type!r}.")
    parts = body.split(b"--" + m.group(1).encode())
    if len(parts) < 4 or not parts[-1].startswith(b"--"):
        raise ApiError(400, "Malformed multipart body: expected metadata and media parts.")
    chunks = []
    for part in parts[1:3]:
        head, _, payload = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        chunks.append((head.decode("latin-1").lower(), payload.removesuffix(b"\r\n")))
    meta = _parse_json_object(chunks[0][1])
    ctype = re.search(r"content-type:\s*([^\r\n]+)", chunks[1][0])
    if ctype:
        meta.setdefault("contentType", ctype.group(1).strip())
    return meta, chunks[1][1]


def _label_errors(labels: Any, where: str) -> list[str]:
    errors = []
    if len(labels) > 64:
        errors.append(f"{where}: at most 64 labels, got {len(labels)}")
    for key, value in labels.items():
        if key.startswith("aiplatform.googleapis.com/"):
            errors.append(f"{where}: label key {key!r} is reserved for system labels")
        elif not _LABEL_KEY.fullmatch(key):
            errors.append(f"{where}: label key {key!r} must start with a lowercase letter and have at most 63 "
                          "lowercase letters, digits, '_' or '-'")
        if not _LABEL_VALUE.fullmatch(value):
            errors.append(f"{where}: label value {value!r} of {key!r} must have at most 63 lowercase letters, digits,"
                          " '_' or '-'")
    return errors


def _validate_custom_job(job: aiplatform_v1.CustomJob) -> None:
    """Vertex's own checks beyond the proto parse, as 'List of found errors' (its wording, our messages)."""
    errors: list[str] = []
    if not job.display_name:
        errors.append("Field: custom_job.display_name; Message: Required field is not set.")
    errors += [f"Field: custom_job.labels; Message: {e}" for e in _label_errors(job.labels, "labels")]
    pools = job.job_spec.worker_pool_specs
    if not pools:
        errors.append("Field: custom_job.job_spec.worker_pool_specs; Message: Required field is not set.")
    for i, pool in enumerate(pools):
        where = f"custom_job.job_spec.worker_pool_specs[{i}]"
        if i > 0 and pool == aiplatform_v1.WorkerPoolSpec():
            continue  # an empty placeholder pool is allowed after the first
        if i == 0 and pool.replica_count != 1:
            errors.append(f"Field: {where}.replica_count; Message: The first worker pool must have exactly 1 "
                          f"replica, got {pool.replica_count}.")
        elif pool.replica_count < 1:
            errors.append(f"Field: {where}.replica_count; Message: must be at least 1.")
        spec = pool.machine_spec
        if not spec.machine_type:
            errors.append(f"Field: {where}.machine_spec.machine_type; Message: Required field is not set.")
        has_container, has_package = "container_spec" in pool, "python_package_spec" in pool
        if has_container == has_package:
            errors.append(f"Field: {where}; Message: exactly one of container_spec or python_package_spec must be "
                          "set.")
        if has_container and not pool.container_spec.image_uri:
            errors.append(f"Field: {where}.container_spec.image_uri; Message: Required field is not set.")
        errors += [f"Field: {where}.container_spec.env[{j}].name; Message: Required field is not set."
                   for j, env in enumerate(pool.container_spec.env) if not env.name]
        accel = aiplatform_v1.AcceleratorType(spec.accelerator_type).name
        unset = spec.accelerator_type == aiplatform_v1.AcceleratorType.ACCELERATOR_TYPE_UNSPECIFIED
        if unset != (spec.accelerator_count == 0):
            errors.append(f"Field: {where}.machine_spec; Message: accelerator_type and accelerator_count must be set "
                          "together.")
        elif spec.machine_type:
            try:
                fixed = _fixed_gpus(spec.machine_type)
            except ApiError as e:
                errors.append(f"Field: {where}.machine_spec.machine_type; Message: {e.message}")
                fixed = None
            if fixed is not None and fixed != (accel, spec.accelerator_count):
                errors.append(f"Field: {where}.machine_spec; Message: machine type {spec.machine_type} requires "
                              f"accelerator {fixed[0]} x{fixed[1]}, got {accel} x{spec.accelerator_count}.")
            elif spec.machine_type == "cloud-tpu":  # TPU v2/v3: 8 TensorCores, or a Pod slice of 32k
                if accel not in ("TPU_V2", "TPU_V3") or (spec.accelerator_count != 8 and spec.accelerator_count % 32):
                    errors.append(f"Field: {where}.machine_spec; Message: cloud-tpu takes TPU_V2 or TPU_V3 x8 or a "
                                  f"multiple of 32, got {accel} x{spec.accelerator_count}.")
            elif fixed is None and not unset:
                if not spec.machine_type.startswith("n1-"):
                    errors.append(f"Field: {where}.machine_spec; Message: accelerators cannot be attached to "
                                  f"machine type {spec.machine_type}.")
                elif spec.accelerator_count not in _N1_GPUS.get(accel, set()):
                    errors.append(f"Field: {where}.machine_spec; Message: {accel} x{spec.accelerator_count} is not "
                                  f"supported on {spec.machine_type}.")
        tpu_vm = re.fullmatch(r"ct(5lp|5p|6e|4p)-(hightpu|standard)-(1|4|8)t", spec.machine_type or "")
        if spec.tpu_topology and not tpu_vm:
            errors.append(f"Field: {where}.machine_spec.tpu_topology; Message: {spec.machine_type} is not a TPU VM "
                          "machine type.")
        disk = pool.disk_spec
        if disk.boot_disk_type and disk.boot_disk_type not in ("pd-ssd", "pd-standard", "hyperdisk-balanced"):
            errors.append(f"Field: {where}.disk_spec.boot_disk_type; Message: invalid value {disk.boot_disk_type!r}.")
    sched = aiplatform_v1.CustomJob.pb(job).job_spec.scheduling
    if sched.HasField("timeout") and sched.timeout.ToNanoseconds() <= 0:
        errors.append("Field: custom_job.job_spec.scheduling.timeout; Message: must be positive.")
    if errors:
        raise ApiError(400, "List of found errors:\t" + "\t".join(f"{n}.{e}" for n, e in enumerate(errors, 1)))


def _match_job(job: aiplatform_v1.CustomJob, field: str, op: str, value: str, quoted: bool) -> bool:
    if op in ("=~", "!~"):
        raise ApiError(400, f"Unsupported operator {op} in filter.")
    if field.startswith("labels."):
        key = field[len("labels."):]
        if op == ":" and value == "*" and not quoted:
            return key in job.labels
        if key not in job.labels:
            return op == "!="
        actual = job.labels[key]
        return fnmatch.fnmatchcase(actual, value) if op == ":" else _compare(actual, op, value)
    if field == "display_name":
        if op == ":":
            return fnmatch.fnmatchcase(job.display_name, value)
        if op not in ("=", "!="):
            raise ApiError(400, f"display_name does not support {op}.")
        return _compare(job.display_name, op, value)
    if field == "state":
        if op not in ("=", "!="):
            raise ApiError(400, f"state does not support {op}.")
        return _compare(job.state.name, op, value)
    created = aiplatform_v1.CustomJob.pb(job).create_time
    if op == ":":
        raise ApiError(400, "create_time does not support ':'.")
    return _compare((created.seconds, created.nanos), op, _parse_ts(value))


def _lookup(entry: dict[str, Any], field: str) -> Any:
    node: Any = entry
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _match_entry(entry: dict[str, Any], field: str, op: str, value: str, quoted: bool) -> bool:
    actual = _lookup(entry, field)
    if op == ":" and value == "*" and not quoted:
        return actual is not None
    if actual is None:
        return False
    if field in ("timestamp", "receiveTimestamp"):
        if op == ":":
            raise ApiError(400, f"{field} does not support ':'.")
        return _compare(_parse_ts(actual), op, _parse_ts(value))
    if field == "severity" and op not in (":", "=~", "!~"):
        if value.upper() not in _SEVERITIES:
            raise ApiError(400, f"Unknown severity {value!r}.")
        return _compare(_SEVERITIES.index(str(actual)), op, _SEVERITIES.index(value.upper()))
    actual = actual if isinstance(actual, str) else json.dumps(actual)
    if op == ":":
        return value.lower() in actual.lower()
    if op in ("=~", "!~"):
        return (re.search(value, actual) is not None) == (op == "=~")
    return _compare(actual, op, value)


class _Handler(BaseHTTPRequestHandler):
    fake: VertexFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        body = read_request_body(self)
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            code, payload, headers = self.fake.handle(method, parts.path, query, self.headers, body)
        except ApiError as e:
            code, headers = e.code, {}
            error: dict[str, Any] = {"code": e.code, "message": e.message}
            if parts.path.startswith(("/storage/", "/upload/", "/download/")):
                # GCS style: the reason goes in errors[]; "status" names it the Google way otherwise
                error["errors"] = [{"message": e.message, "domain": "global",
                                    "reason": e.status if e.status[:1].islower() else "backendError"}]
            else:
                error["status"] = e.status
            payload = {"error": error}
        except Exception as e:  # a bug in the fake: answer 500 (the client must not hang) and fail the test
            bugs.record("VertexFake")
            code, headers, payload = 500, {}, {"error": {"code": 500, "message": f"fake crashed: {e!r}",
                                                         "status": "INTERNAL"}}
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        if not isinstance(payload, bytes):
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")
