"""A local fake of the Azure OpenAI (and OpenAI) files and fine-tuning API, held to Azure's published spec.

Import it from tests as ``from fakes.azure_openai_fake import AzureOpenAIFake``::

    with AzureOpenAIFake(api_key="k") as fake:       # Azure: fake.endpoint == "http://127.0.0.1:PORT"
        ...                                            # (the real AzureOpenAI client, azure_endpoint=fake.endpoint)
    with AzureOpenAIFake(api_key="k", flavour="openai") as fake:   # OpenAI: fake.base_url == ".../v1"
        fake.step_s = 0.05                             # how long a job stays in each state
        fake.hold = True                               # jobs stop at running (cancel, conformance)
        fake.reject_files = "reason"                   # the service's own file check fails uploads
        fake.fail_next(r"/fine_tuning/jobs$", 429, retry_after=0)   # inject any status
        fake.set_state(ft_id, "paused")                # a raw state this version never saw
        fake.jobs, fake.files, fake.calls              # what it holds and received
        fake.violations                                # requests/responses the spec rejects (must stay [])

Azure's paths are ``/openai/files``, ``/openai/fine_tuning/jobs`` (events, cancel), with the
``api-version`` query on every call and the ``api-key`` header (or an Entra ``Authorization:
Bearer`` token); OpenAI's are ``/v1/...`` with ``Authorization: Bearer <key>`` and no api-version.
Every request (query, JSON body, multipart form) and every JSON response is checked against the
operation in ``tests/vendor/azureopenai-2024-10-21-finetuning.json`` (an extract of Azure's
azureopenai.json, see PROVENANCE.md there), with strict key sets on Azure's side (the definitions
leave additionalProperties open; the service does not take unknown fields). Where OpenAI differs,
the same models are used with its differences allowed and nothing else: a create may carry
``method`` and ``metadata`` (Azure 2024-10-21 has neither), a job answers with ``metadata`` and
OpenAI's statuses (validating_files, queued) instead of Azure's (pending), an uploaded file is
processed at once. Jobs move through their states by time (``step_s`` a state), emit events as
they go and, on success, a result file (CSV: step, train_loss, train_mean_token_accuracy).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import bugs

SPEC_PATH = Path(__file__).resolve().parent.parent / "vendor" / "azureopenai-2024-10-21-finetuning.json"
API_VERSION = "2024-10-21"
STATES = {"azure": ("pending", "running", "succeeded"), "openai": ("validating_files", "queued", "running",
                                                                      "succeeded")}
TERMINAL = ("succeeded", "failed", "cancelled")
OPENAI_CREATE_EXTRAS = {"method", "metadata"}  # in OpenAI's create, not in Azure 2024-10-21's model
OPENAI_JOB_EXTRAS = {"metadata", "method", "organization_id", "user_provided_suffix"}
# OpenAI pages its file list by cursor; Azure 2024-10-21 lists every file at once (no has_more either)
OPENAI_QUERY_EXTRAS = {"Files_List": {"after", "limit", "order"}}
OPENAI_LIST_EXTRAS = {"has_more", "first_id", "last_id"}
ROUTES = [  # (method, path under the prefix, spec path)
    ("GET", r"/files", "/files"),
    ("POST", r"/files", "/files"),
    ("GET", r"/files/(?P<id>[^/]+)", "/files/{file-id}"),
    ("GET", r"/files/(?P<id>[^/]+)/content", "/files/{file-id}/content"),
    ("GET", r"/fine_tuning/jobs", "/fine_tuning/jobs"),
    ("POST", r"/fine_tuning/jobs", "/fine_tuning/jobs"),
    ("GET", r"/fine_tuning/jobs/(?P<id>[^/]+)", "/fine_tuning/jobs/{fine-tuning-job-id}"),
    ("GET", r"/fine_tuning/jobs/(?P<id>[^/]+)/events", "/fine_tuning/jobs/{fine-tuning-job-id}/events"),
    ("POST", r"/fine_tuning/jobs/(?P<id>[^/]+)/cancel", "/fine_tuning/jobs/{fine-tuning-job-id}/cancel"),
]


def _packed_in(job_id: str, suffix: str) -> bool:
    from backends.azure_openai.ids import pack_job_id

    packed = pack_job_id(job_id)
    return bool(packed) and packed in suffix.split("_")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class SpecCheck:
    """Validators for the operations' parameters, bodies and responses, from the vendored Swagger 2.0."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        from jsonschema import Draft4Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        self.document = json.loads(path.read_text())
        self._registry = Registry().with_resource("urn:aoai", Resource.from_contents(
            self.document, default_specification=DRAFT4))
        self._validator = Draft4Validator
        self._cache: dict[str, Any] = {}

    def schema(self, schema: dict[str, Any], value: Any) -> list[str]:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._cache:
            ref = schema.get("$ref", "")
            target = {"$ref": "urn:aoai" + ref} if ref.startswith("#") else schema
            self._cache[key] = self._validator(target, registry=self._registry)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in self._cache[key].iter_errors(value)]

    def definition(self, ref: str) -> dict[str, Any]:
        return self.document["definitions"][ref.rsplit("/", 1)[-1]]

    def strict(self, ref: str, value: Any, allowed: set[str] = frozenset(), where: str = "") -> list[str]:
        """Keys the definition does not list (recursively through object properties that are $refs)."""
        definition = self.definition(ref)
        if not isinstance(value, dict) or definition.get("type") != "object":
            return []
        props = definition.get("properties", {})
        found = [f"{where or '<root>'}: unknown key {k!r}" for k in value if k not in props and k not in allowed]
        for key, prop in props.items():
            if key in value and "$ref" in prop:
                found += self.strict(prop["$ref"], value[key], set(), f"{where}/{key}")
            items = prop.get("items", {})
            if key in value and "$ref" in items and isinstance(value[key], list):
                for index, item in enumerate(value[key]):
                    found += self.strict(items["$ref"], item, allowed if key == "data" else set(),
                                         f"{where}/{key}/{index}")
        return found

    def parameters(self, operation: dict[str, Any], query: dict[str, str], form: dict[str, Any] | None,
                   flavour: str) -> list[str]:
        found = []
        declared = {}
        for parameter in operation.get("parameters", []):
            if "$ref" in parameter:
                parameter = self.document["parameters"][parameter["$ref"].rsplit("/", 1)[-1]]
            declared[(parameter["in"], parameter["name"])] = parameter
        for (where, name), parameter in declared.items():
            if where == "path" or (flavour == "openai" and name == "api-version"):
                continue
            given = query if where == "query" else form if where == "formData" else None
            if given is None:
                continue
            if name not in given:
                if parameter.get("required"):
                    found.append(f"{where} {name}: required")
                continue
            value = given[name]
            if parameter.get("type") == "integer":
                if not re.fullmatch(r"\d+", str(value)):
                    found.append(f"{where} {name}: not an integer: {value!r}")
            elif parameter.get("type") == "string" and "enum" in parameter and value not in parameter["enum"]:
                found.append(f"{where} {name}: {value!r} not in {parameter['enum']}")
        extra = OPENAI_QUERY_EXTRAS.get(operation["operationId"], set()) if flavour == "openai" else set()
        for name in query:
            if ("query", name) not in declared and name not in extra:
                found.append(f"query {name}: not a parameter of {operation['operationId']}")
        if form is not None:
            for name in form:
                if ("formData", name) not in declared:
                    found.append(f"formData {name}: not a parameter of {operation['operationId']}")
        return found


class AzureOpenAIFake:
    def __init__(self, api_key: str = "secret-test-key", *, flavour: str = "azure", step_s: float = 0.1,
                 token: str | None = None) -> None:
        self.api_key = api_key
        self.token = token  # an Entra ID bearer token the fake accepts (Azure)
        self.flavour = flavour
        self.step_s = step_s
        self.hold = False
        self.reject_files: str | None = None
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.violations: list[str] = []
        self.errors: list[str] = []
        self._failures: list[list[Any]] = []
        self._lock = threading.RLock()
        self._check = SpecCheck()
        self._server: Any = None
        self._filename: str | None = None

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> AzureOpenAIFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = bugs.RecordingHTTPServer("AzureOpenAIFake", ("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.endpoint}/v1"

    # -- moves only the provider makes ------------------------------------------

    def fail_next(self, path_regex: str, status: int, *, times: int = 1, retry_after: int | None = None,
                  method: str | None = None) -> None:
        with self._lock:
            self._failures.append([re.compile(path_regex), status, times, retry_after, method])

    def set_state(self, ft_id: str, raw: str) -> None:
        with self._lock:
            self.jobs[ft_id]["forced"] = raw

    def release(self) -> None:
        """Held jobs go on to succeed."""
        with self._lock:
            self.hold = False
            for job in self.jobs.values():
                job["started"] = time.monotonic() - self.step_s * job["at"]

    def complete(self, ft_id: str) -> None:
        """A held job goes through its remaining states to success now (events and results included)."""
        with self._lock:
            job = self.jobs[ft_id]
            states = STATES[self.flavour]
            job["at"] = len(states) - 1
            while job["status"] not in TERMINAL and job["shown"] < job["at"]:
                job["shown"] += 1
                self._enter(job, states[job["shown"]])

    def state(self, ft_id: str) -> str:
        with self._lock:
            return self._job(ft_id)["status"]

    def job_for(self, job_id: str) -> str:
        """The fine-tuning job id of the launch job `job_id` (by the suffix or metadata launch gave it)."""
        with self._lock:
            for ft_id, job in self.jobs.items():
                if job_id in json.dumps(job.get("metadata") or {}) or _packed_in(job_id, job.get("suffix") or ""):
                    return ft_id
        raise KeyError(job_id)

    def creates(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.calls if method == "POST" and path.endswith("/fine_tuning/jobs")]

    def uploads(self) -> list[str]:
        return [body for method, path, body in self.calls if method == "POST" and path.endswith("/files")]

    # -- serving -------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            status, body, headers = self._answer(method, parts.path, parse_qs(parts.query), raw, handler.headers)
        except Exception:  # a bug of the fake: recorded (a test fails on it), never passed off as the API's 500
            import traceback

            self.errors.append(f"{method} {parts.path}: {traceback.format_exc()}")
            bugs.record("AzureOpenAIFake")
            status, body, headers = 500, _error("internalFailure", "the fake raised; see fake.errors"), {}
        if isinstance(body, bytes):
            data, kind = body, "application/octet-stream"
        else:
            data, kind = json.dumps(body).encode(), "application/json"
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _authorized(self, headers: Any) -> bool:
        bearer = headers.get("Authorization") or ""
        if self.flavour == "openai":
            return bearer == f"Bearer {self.api_key}"
        return headers.get("api-key") == self.api_key or (self.token is not None and bearer == f"Bearer {self.token}")

    def _answer(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
                headers: Any) -> tuple[int, Any, dict[str, str]]:
        prefix = "/openai" if self.flavour == "azure" else "/v1"
        with self._lock:
            if not path.startswith(prefix):
                return 404, _error("notFound", f"no route {method} {path}"), {}
            tail = path[len(prefix):]
            route = next(((spec_path, m.groupdict()) for verb, pattern, spec_path in ROUTES if verb == method
                          for m in [re.fullmatch(pattern, tail)] if m), None)
            if route is None:
                return 404, _error("notFound", f"no route {method} {path}"), {}
            spec_path, params = route
            operation = self._check.document["paths"][spec_path][method.lower()]
            flat = {k: v[-1] for k, v in query.items()}
            body, form = self._body(operation, raw, headers)
            self.calls.append((method, path, body if form is None else self._filename))
            problems = self._check.parameters(operation, flat, form, self.flavour)
            if self.flavour == "azure" and flat.get("api-version") not in (None, API_VERSION):
                problems.append(f"api-version {flat.get('api-version')!r}: this fake serves {API_VERSION}")
            problems += self._body_problems(operation, body)
            if not self._authorized(headers):
                return self._respond(operation, 401, _error("unauthorized", "Access denied due to invalid "
                                                            "subscription key or wrong API endpoint."))
            for failure in self._failures:
                pattern, status, times, retry_after, only = failure
                if times > 0 and pattern.search(tail) and only in (None, method):
                    failure[2] -= 1
                    extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                    code = "tooManyRequests" if status == 429 else "serviceUnavailable"
                    return self._respond(operation, status, _error(code, f"injected {status}"), extra)
            if problems:
                self.violations += [f"{method} {path}: {p}" for p in problems]
                return self._respond(operation, 400, _error("invalidPayload", "; ".join(problems)))
            handler = getattr(self, "_" + operation["operationId"].lower())
            status, answer = handler(flat, body, form, **params)
            return self._respond(operation, status, answer)

    def _body(self, operation: dict[str, Any], raw: bytes, headers: Any) -> tuple[Any, dict[str, Any] | None]:
        if "multipart/form-data" in operation.get("consumes", []):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + (headers.get("Content-Type") or "").encode() + b"\r\n\r\n" + raw)
            form: dict[str, Any] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                form[name] = part.get_payload(decode=True)
                if name == "file":
                    self._filename = part.get_filename()
                else:
                    form[name] = form[name].decode()
            return None, form
        return (json.loads(raw) if raw else None), None

    def _body_problems(self, operation: dict[str, Any], body: Any) -> list[str]:
        schema = next((p["schema"] for p in operation.get("parameters", []) if p.get("in") == "body"), None)
        if schema is None:
            return [] if body is None else ["this operation takes no JSON body"]
        allowed = OPENAI_CREATE_EXTRAS if self.flavour == "openai" else set()
        return self._check.schema(schema, body) + self._check.strict(schema["$ref"], body, allowed)

    def _respond(self, operation: dict[str, Any], status: int, body: Any,
                 headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        responses = operation["responses"]
        schema = (responses.get(str(status)) or responses["default"]).get("schema", {})
        if not isinstance(body, bytes) and schema.get("type") != "file":
            body_checked = self._as_azure(body)
            problems = self._check.schema(schema, body_checked)
            if "$ref" in schema:
                allowed = (OPENAI_JOB_EXTRAS | OPENAI_LIST_EXTRAS) if self.flavour == "openai" else set()
                problems += self._check.strict(schema["$ref"], body_checked, allowed)
            self.violations += [f"response {operation['operationId']} {status}: {p}" for p in problems]
        return status, body, headers or {}

    def _as_azure(self, body: Any) -> Any:
        """A response as Azure's models can check it: OpenAI's own statuses (validating_files, queued)
        and a state forced by set_state (one no spec lists) read as pending; nothing else changes."""
        if isinstance(body, dict) and body.get("object") == "list":
            return {**body, "data": [self._as_azure(item) for item in body.get("data") or []]}
        if isinstance(body, dict) and body.get("object") == "fine_tuning.job":
            forced = self.jobs.get(body.get("id"), {}).get("forced")
            if forced or (self.flavour == "openai" and body.get("status") in ("validating_files", "queued")):
                return {**body, "status": "pending"}
        return body

    # -- files ---------------------------------------------------------------

    def _file(self, file_id: str) -> dict[str, Any]:
        record = self.files[file_id]
        if record["status"] == "pending" and time.monotonic() - record["at"] > self.step_s:
            record["status"] = "error" if record.get("reject") else "processed"
            if record.get("reject"):
                record["status_details"] = record["reject"]
        return {k: v for k, v in record.items() if k not in ("at", "reject")}

    def _files_list(self, query: dict[str, str], body: Any, form: Any) -> tuple[int, Any]:
        files = [self._file(i) for i in self.files if query.get("purpose") in (None, self.files[i]["purpose"])]
        if self.flavour == "azure":
            return 200, {"object": "list", "data": files}
        page, more = self._page(files, query)
        return 200, {"object": "list", "data": page, "has_more": more}

    def _files_upload(self, query: dict[str, str], body: Any, form: dict[str, Any]) -> tuple[int, Any]:
        file_id = f"file-{secrets.token_hex(12)}"
        content = form.get("file") or b""
        self.contents[file_id] = content
        self.files[file_id] = {"object": "file", "id": file_id, "purpose": form["purpose"],
                               "filename": self._filename or "upload.jsonl", "bytes": len(content),
                               "created_at": int(time.time()), "at": time.monotonic(),
                               "status": "pending" if self.flavour == "azure" else "processed",
                               "reject": self.reject_files}
        if self.flavour == "openai" and self.reject_files:  # OpenAI checks the file at upload
            del self.files[file_id]
            return 400, _error("invalidPayload", self.reject_files)
        return 201, self._file(file_id)

    def _files_get(self, query: dict[str, str], body: Any, form: Any, id: str) -> tuple[int, Any]:
        if id not in self.files:
            return 404, _error("notFound", f"file {id} not found")
        return 200, self._file(id)

    def _files_getcontent(self, query: dict[str, str], body: Any, form: Any, id: str) -> tuple[int, Any]:
        if id not in self.contents:
            return 404, _error("notFound", f"file {id} not found")
        return 200, self.contents[id]

    # -- jobs ----------------------------------------------------------------

    def _job(self, ft_id: str) -> dict[str, Any]:
        """The job as it stands now: its state advanced by time, events and results added as it moves."""
        job = self.jobs[ft_id]
        states = STATES[self.flavour]
        if job["status"] not in TERMINAL:
            reached = min(int((time.monotonic() - job["started"]) / self.step_s), len(states) - 1)
            if self.hold:
                reached = min(reached, states.index("running"))
            job["at"] = max(job["at"], reached)
            while job["shown"] < job["at"]:
                job["shown"] += 1
                self._enter(job, states[job["shown"]])
        view = {k: v for k, v in job.items() if k not in ("started", "at", "shown", "events", "forced")}
        if job.get("forced"):
            view["status"] = job["forced"]
        return view

    def _enter(self, job: dict[str, Any], state: str) -> None:
        job["status"] = state
        self._event(job, f"Job entered state {state}")
        if state == "running":
            for step in (1, 2, 3):
                self._event(job, f"Step {step}/3: training loss={1.5 / step:.4f}", "metrics",
                            {"step": step, "train_loss": round(1.5 / step, 4)})
        if state == "succeeded":
            result = f"file-{secrets.token_hex(12)}"
            self.contents[result] = ("step,train_loss,train_mean_token_accuracy\n"
                                     + "".join(f"{s},{1.5 / s:.4f},{0.5 + s / 10:.2f}\n" for s in (1, 2, 3))).encode()
            self.files[result] = {"object": "file", "id": result, "purpose": "fine-tune-results",
                                  "filename": "results.csv", "bytes": len(self.contents[result]),
                                  "created_at": int(time.time()), "at": 0.0, "status": "processed", "reject": None}
            job["result_files"] = [result]
            suffix = job.get("suffix")
            job["fine_tuned_model"] = f"{job['model']}.ft-{job['id'][-8:]}" + (f"-{suffix}" if suffix else "")
            job["trained_tokens"] = 3 * max(1, len(self.contents.get(job["training_file"], b"")) // 4)
            job["finished_at"] = int(time.time())
            self._event(job, "Training job successfully completed")

    def _event(self, job: dict[str, Any], message: str, kind: str = "message", data: Any = None) -> None:
        event = {"object": "fine_tuning.job.event", "id": f"ftevent-{secrets.token_hex(8)}",
                 "created_at": int(time.time()), "level": "info", "message": message, "type": kind}
        if data is not None:
            event["data"] = data
        job["events"].append(event)

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
        ids = [item["id"] for item in items]
        start = ids.index(query["after"]) + 1 if query.get("after") in ids else 0
        limit = int(query.get("limit") or 20)
        return items[start:start + limit], start + limit < len(items)

    def _finetuning_list(self, query: dict[str, str], body: Any, form: Any) -> tuple[int, Any]:
        jobs = [self._job(i) for i in reversed(list(self.jobs))]  # newest first
        page, more = self._page(jobs, query)
        return 200, {"object": "list", "data": page, "has_more": more}

    def _finetuning_create(self, query: dict[str, str], body: dict[str, Any], form: Any) -> tuple[int, Any]:
        for key in ("training_file", "validation_file"):
            file_id = body.get(key)
            if file_id is not None and (file_id not in self.files or self._file(file_id)["status"] != "processed"):
                return 400, _error("invalidPayload", f"{key} {file_id} is not a processed file")
        ft_id = f"ftjob-{secrets.token_hex(12)}"
        first = STATES[self.flavour][0]
        job = {"object": "fine_tuning.job", "id": ft_id, "model": body["model"], "status": first,
               "training_file": body["training_file"], "created_at": int(time.time()),
               "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0,
                                   **(body.get("hyperparameters") or {})},
               "result_files": [], "seed": body.get("seed", 42),
               "started": time.monotonic(), "at": 0, "shown": 0, "events": []}
        for key in ("validation_file", "suffix"):
            if body.get(key) is not None:
                job[key] = body[key]
        if self.flavour == "openai":
            job["metadata"] = body.get("metadata") or {}
            job["organization_id"] = "org-fake"
            if "method" in body:
                job["method"] = body["method"]
        self.jobs[ft_id] = job
        self._event(job, "Created fine-tuning job")
        return 201, self._job(ft_id)

    def _finetuning_get(self, query: dict[str, str], body: Any, form: Any, id: str) -> tuple[int, Any]:
        if id not in self.jobs:
            return 404, _error("notFound", f"fine-tuning job {id} not found")
        return 200, self._job(id)

    def _finetuning_getevents(self, query: dict[str, str], body: Any, form: Any, id: str) -> tuple[int, Any]:
        if id not in self.jobs:
            return 404, _error("notFound", f"fine-tuning job {id} not found")
        self._job(id)
        page, more = self._page(list(reversed(self.jobs[id]["events"])), query)  # newest first
        return 200, {"object": "list", "data": page, "has_more": more}

    def _finetuning_cancel(self, query: dict[str, str], body: Any, form: Any, id: str) -> tuple[int, Any]:
        if id not in self.jobs:
            return 404, _error("notFound", f"fine-tuning job {id} not found")
        job = self.jobs[id]
        if self._job(id)["status"] in TERMINAL:
            return 409, _error("conflict", f"job {id} has already ended ({job['status']})")
        job["status"] = "cancelled"
        job["finished_at"] = int(time.time())
        self._event(job, "Job was cancelled")
        return 200, self._job(id)
