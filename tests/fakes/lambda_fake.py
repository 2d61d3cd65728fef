"""A local fake of Lambda Cloud's REST API (v1) that holds every exchange to the published spec.

Import it from tests as ``from fakes.lambda_fake import LambdaFake``::

    with LambdaFake(api_key="k", ip="127.0.0.1") as fake:    # fake.base_url == "http://127.0.0.1:PORT/api/v1"
        fake.capacity = {"gpu_1x_a10": ["us-east-1"]}          # where each type has capacity (launch checks it)
        fake.request_interval_s = 0.05                         # enforced: a faster client gets 429 + Retry-After
        fake.launch_interval_s = 0.3
        fake.fail_next(r"/instances$", 503, times=2)           # inject 5xx / 429 / any envelope
        fake.fail_launch(rank=1, code="global/quota-exceeded") # the 2nd launch of this fake fails so
        fake.unhealthy_on_boot(rank=0)                         # the 1st launch's instance turns unhealthy booting
        fake.preempt(instance_id); fake.vanish(instance_id)
        fake.forget_terminated_s = 1.0                         # GET /instances stops listing a terminated one
        fake.add_instance("name", tags)                        # an instance someone else launched in the account
        fake.live(); fake.listed()                             # instances not terminated; what GET /instances lists
        fake.await_terminated(instance_id, "curl/")            # until a node's own call gave it back
        fake.calls                                             # (method, path, body, user agent) as received
        fake.violations                                        # requests/responses the spec rejects (must stay [])
        fake.errors                                            # exceptions the fake raised serving (must stay [])

Every request body is validated against the operation's requestBody schema and every response
the fake sends against the schema of that status code, both taken from
``tests/vendor/lambda-cloud-openapi-1.10.0.json`` (vendored, see PROVENANCE.md there; an OpenAPI 3.1 document: JSON
Schema 2020-12 with ``$ref`` into ``#/components/schemas``). A request the spec rejects gets
the API's ``global/invalid-parameters`` 400 and is recorded in ``violations``. Instances boot
for ``boot_s`` seconds, then are ``active`` with ``ip``: point the backend's ssh port at a test
sshd to make them real machines.

``GET /instances`` is documented as listing *running* instances: a terminated one is listed for
``forget_terminated_s`` more seconds, then only ``GET /instances/{id}`` (documented as saying
"whether or not the instance is running") still answers for it. ``fake.instances`` keeps every
instance for the tests to inspect.

An instance is a machine: when it is terminated, preempted or vanishes (or the fake stops), the
processes running on it end, as they would on a real machine that goes away. Every instance of
this fake is the same test sshd, so an instance's processes are the ones whose environment says
they are its job's node (``LAUNCH_JOB_ID`` and ``LAUNCH_NODE_RANK`` equal to the instance's
``launch-job-id`` and ``launch-node-rank`` tags); each is ended with its whole process group.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import bugs

SPEC_PATH = Path(__file__).resolve().parent.parent / "vendor" / "lambda-cloud-openapi-1.10.0.json"  # PROVENANCE.md

INSTANCE_TYPES = {
    "gpu_1x_a10": ("1x A10 (24 GB PCIe)", "A10 (24 GB PCIe)", 129, 30, 200, 1400, 1),
    "gpu_1x_a100_sxm4": ("1x A100 (40 GB SXM4)", "A100 (40 GB SXM4)", 199, 30, 200, 512, 1),
    "gpu_8x_a100_80gb_sxm4": ("8x A100 (80 GB SXM4)", "A100 (80 GB SXM4)", 2232, 240, 1800, 20480, 8),
    "gpu_1x_h100_pcie": ("1x H100 (80 GB PCIe)", "H100 (80 GB PCIe)", 329, 26, 225, 1024, 1),
    "gpu_1x_h100_sxm5": ("1x H100 (80 GB SXM5)", "H100 (80 GB SXM5)", 429, 26, 225, 2750, 1),
    "gpu_8x_h100_sxm5": ("8x H100 (80 GB SXM5)", "H100 (80 GB SXM5)", 3192, 208, 1800, 24780, 8),
}
REGIONS = {"us-east-1": "Virginia, USA", "us-west-1": "California, USA", "us-south-1": "Texas, USA"}
LIVE = ("booting", "active", "unhealthy")
GONE = ("terminated", "preempted")
JOB_TAG, RANK_TAG = "launch-job-id", "launch-node-rank"  # how launch tags an instance (lambda_cloud/instances.py)

ROUTES = [
    ("GET", re.compile(r"/api/v1/instance-types"), "/api/v1/instance-types", "get"),
    ("GET", re.compile(r"/api/v1/instances"), "/api/v1/instances", "get"),
    ("GET", re.compile(r"/api/v1/instances/(?P<id>[^/]+)"), "/api/v1/instances/{id}", "get"),
    ("POST", re.compile(r"/api/v1/instances/(?P<id>[^/]+)"), "/api/v1/instances/{id}", "post"),
    ("POST", re.compile(r"/api/v1/instance-operations/launch"), "/api/v1/instance-operations/launch", "post"),
    ("POST", re.compile(r"/api/v1/instance-operations/terminate"), "/api/v1/instance-operations/terminate", "post"),
]


def _error(code: str, message: str, suggestion: str | None = None) -> dict[str, Any]:
    body = {"code": code, "message": message}
    if suggestion is not None:
        body["suggestion"] = suggestion
    return {"error": body}


class SpecCheck:
    """Validators for an operation's request body and responses, straight from the OpenAPI file."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.document = json.loads(path.read_text())
        self._registry = Registry().with_resource("urn:lambda", Resource.from_contents(
            self.document, default_specification=DRAFT202012))
        self._validator = Draft202012Validator
        self._cache: dict[str, Any] = {}

    def _check(self, pointer: str, value: Any) -> list[str]:
        if pointer not in self._cache:
            self._cache[pointer] = self._validator({"$ref": f"urn:lambda#{pointer}"}, registry=self._registry)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in self._cache[pointer].iter_errors(value)]

    @staticmethod
    def _escape(path: str) -> str:
        return path.replace("~", "~0").replace("/", "~1")

    def request(self, path: str, method: str, body: Any) -> list[str]:
        operation = self.document["paths"][path][method]
        if "requestBody" not in operation:
            return [] if body is None else ["this operation takes no body"]
        return self._check(f"/paths/{self._escape(path)}/{method}/requestBody/content/application~1json/schema",
                           body)

    def response(self, path: str, method: str, status: int, body: Any) -> list[str]:
        responses = self.document["paths"][path][method]["responses"]
        if str(status) not in responses:
            return [f"the spec documents no {status} response for {method.upper()} {path}"]
        return self._check(f"/paths/{self._escape(path)}/{method}/responses/{status}/content/application~1json/"
                           "schema", body)

    def schema(self, name: str, body: Any) -> list[str]:
        return self._check(f"/components/schemas/{name}", body)


class LambdaFake:
    def __init__(self, api_key: str = "secret-test-key", ip: str = "127.0.0.1", *, boot_s: float = 0.2,
                 id_prefix: str = "") -> None:
        self.api_key = api_key
        self.ip = ip
        self.boot_s = boot_s
        self.id_prefix = id_prefix
        self.spec = SpecCheck()
        self.capacity: dict[str, list[str]] = {name: ["us-east-1"] for name in INSTANCE_TYPES}
        self.request_interval_s = 0.0
        self.launch_interval_s = 0.0
        self.instances: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any, str]] = []
        self.violations: list[str] = []
        self.errors: list[str] = []  # tracebacks of exceptions the fake raised while serving (its own bugs)
        self.forget_terminated_s = 1.0
        self._unhealthy_launches: set[int] = set()
        self.throttled = 0
        self._failures: list[dict[str, Any]] = []
        self._launch_failures: dict[int, str] = {}
        self._launches = 0
        self._last_request = float("-inf")
        self._last_launch = float("-inf")
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> LambdaFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = bugs.RecordingHTTPServer("LambdaFake", ("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            machines = list(self.instances.values())
        for instance in machines:  # the fake's machines go away with it
            end_processes(instance)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/v1"

    # -- test controls ---------------------------------------------------------

    def fail_next(self, path_regex: str, status: int, *, times: int = 1, retry_after: int | None = None,
                  code: str = "global/internal-error") -> None:
        self._failures.append({"regex": re.compile(path_regex), "status": status, "times": times,
                               "retry_after": retry_after, "code": code})

    def fail_launch(self, rank: int, code: str = "instance-operations/launch/insufficient-capacity") -> None:
        """The launch number `rank` (0-based, counted since the last reset) fails with `code`."""
        self._launch_failures[rank] = code

    def unhealthy_on_boot(self, rank: int) -> None:
        """The instance of launch number `rank` (0-based, since the last reset) turns `unhealthy`
        instead of `active` when it has booted (and stays so, billing, until terminated)."""
        self._unhealthy_launches.add(rank)

    def preempt(self, instance_id: str) -> None:
        with self._lock:
            instance = self.instances[instance_id]
            instance.update(status="preempted", _ended=time.monotonic())
        end_processes(instance)

    def vanish(self, instance_id: str) -> None:
        with self._lock:
            instance = self.instances.pop(instance_id)
        end_processes(instance)

    def add_instance(self, name: str, tags: list[dict[str, str]], instance_type: str = "gpu_1x_a10") -> str:
        """An active instance someone else launched in the account (the console, another tool), tagged as given."""
        instance_id = f"{self.id_prefix}{uuid.uuid4().hex}"
        with self._lock:
            self.instances[instance_id] = {
                "id": instance_id, "name": name, "status": "active", "ip": self.ip, "private_ip": self.ip,
                "hostname": self.ip, "ssh_key_names": ["test-key"], "file_system_names": [],
                "region": {"name": "us-east-1", "description": REGIONS["us-east-1"]},
                "instance_type": self._type(instance_type),
                "actions": {a: {"available": True} for a in ("migrate", "rebuild", "restart", "cold_reboot",
                                                             "terminate")},
                "tags": tags, "_created": time.monotonic(), "_unhealthy": False}
        return instance_id

    def listed(self) -> list[str]:
        """The ids `GET /instances` answers with now."""
        with self._lock:
            return [i["id"] for i in self._get_instances(None)[1]["data"]]

    def live(self) -> list[dict[str, Any]]:
        with self._lock:
            return [i for i in self._listed() if i["status"] in LIVE]

    def terminated_by(self, agent_prefix: str) -> list[str]:
        """Ids named in terminate calls whose User-Agent starts with `agent_prefix` (curl/: a node)."""
        with self._lock:
            return [i for method, path, body, agent in self.calls if path.endswith("/terminate")
                    and agent.startswith(agent_prefix) for i in body["instance_ids"]]

    def await_terminated(self, instance_id: str, agent_prefix: str, timeout: float = 20) -> None:
        """Block until a caller like `agent_prefix` has terminated the instance (it is no longer live)."""
        deadline = time.monotonic() + timeout
        while instance_id not in self.terminated_by(agent_prefix) or any(i["id"] == instance_id
                                                                        for i in self.live()):
            if time.monotonic() > deadline:
                raise AssertionError(f"no terminate call for {instance_id} from {agent_prefix}* in {timeout}s")
            time.sleep(0.1)

    def terminate_all(self) -> None:
        with self._lock:
            machines = list(self.instances.values())
            for instance in machines:
                if instance["status"] not in GONE:
                    instance.update(status="terminated", _ended=time.monotonic())
        for instance in machines:
            end_processes(instance)

    def reset(self) -> None:
        with self._lock:
            self.instances.clear()
            self.calls.clear()
            self.violations.clear()
            self.errors.clear()
            self._failures.clear()
            self._launch_failures.clear()
            self._unhealthy_launches.clear()
            self.forget_terminated_s = 1.0
            self._launches = 0
            self._last_request = self._last_launch = float("-inf")
            self.throttled = 0
            self.capacity = {name: ["us-east-1"] for name in INSTANCE_TYPES}

    # -- serving -------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            status, body, headers = self._answer(method, path, raw, handler.headers)
        except Exception:  # a bug of the fake: recorded (a test fails on it), never passed off as the API's 500
            import traceback

            self.errors.append(f"{method} {path}: {traceback.format_exc()}")
            bugs.record("LambdaFake")  # fails whichever test is running at its teardown (tests/conftest.py)
            status, body, headers = 500, _error("global/internal-error", "the fake raised; see fake.errors"), {}
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, method: str, path: str, raw: bytes, headers: Any) -> tuple[int, Any, dict[str, str]]:
        from urllib.parse import unquote

        with self._lock:
            route = next(((r, m.groupdict()) for r in ROUTES if r[0] == method
                          for m in [r[1].fullmatch(path)] if m), None)
            if route is None:
                return 404, _error("global/object-does-not-exist", f"no route {method} {path}"), {}
            (_, _, template, verb), params = route
            body = json.loads(raw) if raw else None
            self.calls.append((method, path, body, headers.get("User-Agent") or ""))
            if headers.get("Authorization") != f"Bearer {self.api_key}":
                return self._respond(template, verb, 401, _error(
                    "global/invalid-api-key", "API key was invalid, expired, or deleted.",
                    "Check your API key or create a new one, then try again."))
            now = time.monotonic()
            is_launch = template.endswith("/launch")
            wait = self._last_request + self.request_interval_s - now
            if is_launch:
                wait = max(wait, self._last_launch + self.launch_interval_s - now)
            if wait > 1e-3:
                self.throttled += 1
                return 429, _error("global/too-many-requests", "Too many requests"), \
                    {"Retry-After": str(max(1, math.ceil(wait)))}
            self._last_request = now
            if is_launch:
                self._last_launch = now
            for failure in self._failures:
                if failure["times"] > 0 and failure["regex"].search(path):
                    failure["times"] -= 1
                    extra = {"Retry-After": str(failure["retry_after"])} if failure["retry_after"] else {}
                    return failure["status"], _error(failure["code"], "injected failure",
                                                     "Try again later."), extra
            problems = self.spec.request(template, verb, body)
            if problems:
                self.violations += [f"{method} {path} request: {p}" for p in problems]
                return self._respond(template, verb, 400, _error("global/invalid-parameters",
                                                                 "; ".join(problems)))
            params = {k: unquote(v) for k, v in params.items()}
            status, answer = getattr(self, f"_{verb}_{template.rsplit('/', 1)[-1].strip('{}').replace('-', '_')}")(
                body, **params)
            return self._respond(template, verb, status, answer)

    def _respond(self, template: str, verb: str, status: int, body: Any) -> tuple[int, Any, dict[str, str]]:
        problems = self.spec.response(template, verb, status, body)
        if problems:
            self.violations += [f"{verb.upper()} {template} response {status}: {p}" for p in problems]
            return 500, _error("global/internal-error", "the fake built a response the spec rejects",
                               "fix the fake"), {}
        return status, body, {}

    # -- the API ---------------------------------------------------------------

    def _type(self, name: str) -> dict[str, Any]:
        description, gpu, cents, vcpus, memory, storage, gpus = INSTANCE_TYPES[name]
        return {"name": name, "description": description, "gpu_description": gpu, "price_cents_per_hour": cents,
                "specs": {"vcpus": vcpus, "memory_gib": memory, "storage_gib": storage, "gpus": gpus}}

    def _get_instance_types(self, body: Any) -> tuple[int, Any]:
        return 200, {"data": {name: {"instance_type": self._type(name), "regions_with_capacity_available": [
            {"name": r, "description": REGIONS[r]} for r in self.capacity.get(name, [])]} for name in INSTANCE_TYPES}}

    def _listed(self) -> list[dict[str, Any]]:
        """Every instance the fake ever launched, as the API shows it now (terminated ones too)."""
        now = time.monotonic()
        for instance in self.instances.values():
            if instance["status"] == "booting" and now - instance["_created"] >= self.boot_s:
                if instance["_unhealthy"]:
                    instance["status"] = "unhealthy"
                else:
                    instance.update(status="active", ip=self.ip, private_ip=self.ip, hostname=self.ip)
            if instance["status"] == "terminating" and now - instance["_stopping"] >= 0.2:
                instance.update(status="terminated", _ended=now)
        return [{k: v for k, v in i.items() if not k.startswith("_")} for i in self.instances.values()]

    def _get_instances(self, body: Any) -> tuple[int, Any]:
        """The running instances, and those ended less than `forget_terminated_s` ago."""
        self._listed()
        now = time.monotonic()
        return 200, {"data": [{k: v for k, v in i.items() if not k.startswith("_")} for i in self.instances.values()
                              if i["status"] not in GONE or now - i["_ended"] < self.forget_terminated_s]}

    def _get_id(self, body: Any, id: str) -> tuple[int, Any]:
        listed = {i["id"]: i for i in self._listed()}
        if id not in listed:
            return 404, _error("global/object-does-not-exist", "Specified instance does not exist.")
        return 200, {"data": listed[id]}

    def _post_id(self, body: Any, id: str) -> tuple[int, Any]:
        if id not in self.instances:
            return 404, _error("global/object-does-not-exist", "Specified instance does not exist.")
        if "name" in body:
            self.instances[id]["name"] = body["name"]
        return self._get_id(None, id)

    def _post_launch(self, body: Any) -> tuple[int, Any]:
        number, self._launches = self._launches, self._launches + 1
        code = self._launch_failures.pop(number, None)
        if code is None and body["region_name"] not in self.capacity.get(body["instance_type_name"], []):
            code = "instance-operations/launch/insufficient-capacity"
        if body["instance_type_name"] not in INSTANCE_TYPES:
            return 404, _error("global/object-does-not-exist", "Instance type not found.")
        if code == "global/quota-exceeded":
            return 400, _error(code, "Quota exceeded.", "Contact Support to increase your quota.")
        if code:
            return 400, _error(code, "Not enough capacity to fulfill launch request.")
        instance_id = f"{self.id_prefix}{uuid.uuid4().hex}"
        self.instances[instance_id] = {
            "id": instance_id, "name": body.get("name", ""), "status": "booting",
            "ssh_key_names": body["ssh_key_names"], "file_system_names": body.get("file_system_names", []),
            "region": {"name": body["region_name"], "description": REGIONS.get(body["region_name"], "")},
            "instance_type": self._type(body["instance_type_name"]),
            "actions": {a: {"available": True} for a in ("migrate", "rebuild", "restart", "cold_reboot",
                                                         "terminate")},
            "tags": body.get("tags", []), "_created": time.monotonic(),
            "_unhealthy": number in self._unhealthy_launches}
        return 200, {"data": {"instance_ids": [instance_id]}}

    def _end_processes(self, instances: list[dict[str, Any]]) -> None:
        try:
            for instance in instances:
                end_processes(instance)
        except Exception:
            import traceback

            self.errors.append(f"ending the processes of terminated instances: {traceback.format_exc()}")
            bugs.record("LambdaFake")

    def _post_terminate(self, body: Any) -> tuple[int, Any]:
        missing = [i for i in body["instance_ids"] if i not in self.instances]
        if missing:
            return 404, _error("global/object-does-not-exist", f"Specified instance does not exist: {missing[0]}")
        stopping = []
        for instance_id in body["instance_ids"]:
            instance = self.instances[instance_id]
            if instance["status"] in LIVE:
                instance.update(status="terminating", _stopping=time.monotonic())
                stopping.append(instance)
        # the machines go down once this answer is out (a node terminating itself still gets it)
        ending = threading.Timer(0.2, self._end_processes, (stopping,))
        ending.daemon = True
        ending.start()
        listed = {i["id"]: i for i in self._listed()}
        return 200, {"data": {"terminated_instances": [listed[i] for i in body["instance_ids"]]}}


def _environment(pid: int) -> dict[bytes, bytes]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(entry.partition(b"=")[::2] for entry in raw.split(b"\0") if entry)


def _node_processes(job_id: str, rank: str) -> list[int]:
    """Pids (this user's, zombies excluded) whose environment says they are node `rank` of `job_id`."""
    wanted = {b"LAUNCH_JOB_ID": job_id.encode(), b"LAUNCH_NODE_RANK": rank.encode()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X"):
            continue
        environment = _environment(int(entry.name))
        if all(environment.get(k) == v for k, v in wanted.items()):
            found.append(int(entry.name))
    return found


def end_processes(instance: dict[str, Any], timeout: float = 5.0) -> None:
    """End what runs on this instance: every process of its node, with its process group."""
    tags = {t.get("key"): t.get("value") for t in instance.get("tags") or []}
    if not tags.get(JOB_TAG) or tags.get(RANK_TAG) is None:
        return
    deadline = time.monotonic() + timeout
    while pids := _node_processes(tags[JOB_TAG], tags[RANK_TAG]):
        for pid in pids:
            with contextlib.suppress(OSError):
                group = os.getpgid(pid)
                if group != os.getpgrp() and group in pids:  # its own group (setsid): the node's whole job
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise AssertionError(f"processes of instance {instance['id']} survive SIGKILL: {pids}")
        time.sleep(0.02)
