"""A local fake of Lambda Cloud's REST API (v1) that holds every exchange to the published spec.

Import it from tests as ``from fakes.lambda_fake import LambdaFake``::

    with LambdaFake(api_key="k", ip="127.0.0.1") as fake:    # fake.base_url == "http://127.0.0.1:PORT/api/v1"
        fake.capacity = {"gpu_1x_a10": ["us-east-1"]}          # where each type has capacity (launch checks it)
        fake.request_interval_s = 0.05                         # enforced: a faster client gets 429 + Retry-After
        fake.launch_interval_s = 0.3
        fake.fail_next(r"/instances$", 503, times=2)           # inject 5xx / 429 / any envelope
        fake.fail_launch(rank=1, code="global/quota-exceeded") # the 2nd launch of this fake fails so
        fake.preempt(instance_id); fake.vanish(instance_id)
        fake.live()                                            # instances not terminated (leak check)
        fake.await_terminated(instance_id, "curl/")            # until a node's own call gave it back
        fake.calls                                             # (method, path, body, user agent) as received
        fake.violations                                        # requests/responses the spec rejects (must stay [])

Every request body is validated against the operation's requestBody schema and every response
the fake sends against the schema of that status code, both taken from
``/work/shared/reference/lambda-cloud-openapi-1.10.0.json`` (an OpenAPI 3.1 document: JSON
Schema 2020-12 with ``$ref`` into ``#/components/schemas``). A request the spec rejects gets
the API's ``global/invalid-parameters`` 400 and is recorded in ``violations``. Instances boot
for ``boot_s`` seconds, then are ``active`` with ``ip``: point the backend's ssh port at a test
sshd to make them real machines. Terminated instances stay listed as ``terminated``.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SPEC_PATH = Path("/work/shared/reference/lambda-cloud-openapi-1.10.0.json")
if not SPEC_PATH.exists():  # the repository's sibling checkout layout
    SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "reference" / SPEC_PATH.name

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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

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

    def preempt(self, instance_id: str) -> None:
        with self._lock:
            self.instances[instance_id]["status"] = "preempted"

    def vanish(self, instance_id: str) -> None:
        with self._lock:
            del self.instances[instance_id]

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
            for instance in self.instances.values():
                instance["status"] = "terminated"

    def reset(self) -> None:
        with self._lock:
            self.instances.clear()
            self.calls.clear()
            self.violations.clear()
            self._failures.clear()
            self._launch_failures.clear()
            self._launches = 0
            self._last_request = self._last_launch = float("-inf")
            self.throttled = 0
            self.capacity = {name: ["us-east-1"] for name in INSTANCE_TYPES}

    # -- serving -------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        status, body, headers = self._answer(method, path, raw, handler.headers)
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
        now = time.monotonic()
        for instance in self.instances.values():
            if instance["status"] == "booting" and now - instance["_created"] >= self.boot_s:
                instance.update(status="active", ip=self.ip, private_ip=self.ip, hostname=self.ip)
            if instance["status"] == "terminating" and now - instance["_stopping"] >= 0.2:
                instance["status"] = "terminated"
        return [{k: v for k, v in i.items() if not k.startswith("_")} for i in self.instances.values()]

    def _get_instances(self, body: Any) -> tuple[int, Any]:
        return 200, {"data": self._listed()}

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
            "tags": body.get("tags", []), "_created": time.monotonic()}
        return 200, {"data": {"instance_ids": [instance_id]}}

    def _post_terminate(self, body: Any) -> tuple[int, Any]:
        missing = [i for i in body["instance_ids"] if i not in self.instances]
        if missing:
            return 404, _error("global/object-does-not-exist", f"Specified instance does not exist: {missing[0]}")
        for instance_id in body["instance_ids"]:
            instance = self.instances[instance_id]
            if instance["status"] in LIVE:
                instance.update(status="terminating", _stopping=time.monotonic())
        listed = {i["id"]: i for i in self._listed()}
        return 200, {"data": {"terminated_instances": [listed[i] for i in body["instance_ids"]]}}
