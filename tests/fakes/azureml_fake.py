"""An in-process fake of the Azure ML workspace APIs the `azureml` backend reaches through azure-ai-ml.

Import it from tests as ``from fakes.azureml_fake import AzureMLFake`` (pytest puts ``tests/`` on ``sys.path``).
One ``ThreadingHTTPServer`` on 127.0.0.1:<free port>, over TLS with a throwaway self-signed certificate
(SAN IP:127.0.0.1), serves ARM (workspaces, computes, environments, code versions, jobs), the code-upload
blob container and run history::

    with AzureMLFake() as azure:                  # azure.url == "https://127.0.0.1:PORT/", azure.ca_file
        azure.add_compute("gpu-cluster")          # job PUTs naming another compute fail as the service does
        client = azure.ml_client()                # the real MLClient, a unique cloud, a static-token credential
        client.jobs.create_or_update(job)
        azure.set_status("job-name", "Running")   # jobs never move by themselves
        azure.add_log("job-name", "hello\\n", node=0)   # appended to user_logs/std_log.txt (node 0)
        azure.job_puts[0]                         # the job PUT body exactly as it came over HTTP (a dict)

Wire facts (azure-ai-ml 1.35.2, azure-core 1.41, azure-storage-blob 12.31; read from the SDK and what it sends):

- Requests are ARM: ``{rm}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/
  workspaces/{ws}/...?api-version=...`` with ``Authorization: Bearer <token>``. Plain http is refused by the SDK's
  upload and streaming paths ("Bearer token authentication is not permitted for non-TLS"), hence TLS here and
  ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` pointing at ``ca_file``.
- Bodies are checked against the SDK's own REST models (``_restclient.arm_ml_service.models`` for jobs and
  environments, ``v2023_04_01`` / ``v2022_10_01`` msrest models for code): an unknown key, a missing required
  key or a value of the wrong JSON type answers 400 ``UserError`` with the path, and nothing is stored.
- Job PUT is create-or-update by our name: a second PUT of the same body answers 200 with the stored job (the
  retry after a lost answer); a PUT whose compute is not a compute of the workspace answers 400, as the service
  does. ``cancel``: POST ``jobs/{name}/cancel`` answers 202 with ``Location`` (polled: 200 ``{}``); a job that
  has ended is left as it is (202 too). Unknown job: 404 ``ResourceNotFound`` / ``UserError``.
- Code assets: the SDK lists code versions with ``hash=<content hash>&hashVersion=202208`` before uploading;
  the service answers the versions of any name registered with that ``hash_sha256`` property (the REST spec:
  "regardless of name"), and the SDK then references that asset and uploads nothing. Else it asks
  ``startPendingUpload`` for a SAS into the container, PUTs the blobs (``blob_put_bytes`` counts their bytes)
  and only then PUTs the code version (refused here when nothing was uploaded under its ``codeUri``).
  ``working_directory(job, dir)`` lays out what a node of the job starts with: the code asset's files.
- Run history (``/history/v1.0/.../runs/{name}``, and ``/artifact/v2.0/...`` content URLs) lists the log
  files of a run as ``logFiles``: ``user_logs/std_log.txt`` (single node) or ``user_logs/std_log_process_N.txt``
  (one per node), each a SAS-style URL into the fake's blob container, read with ``Range`` headers.
- ``fail_auth = True`` answers every request 401 ``InvalidAuthenticationToken``; ``deny = True`` 403.
"""

from __future__ import annotations

import datetime
import email.utils
import ipaddress
import json
import os
import re
import shutil
import ssl
import tempfile
import threading
import urllib.parse
import uuid
import weakref
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from backends.azureml.backend import StaticToken  # the backend's LAUNCH_AZURE_ACCESS_TOKEN credential

from . import bugs

WS_PREFIX = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
             r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)")
CONTAINER = "azureml-blobstore-fake"
TERMINAL = {"Completed", "Failed", "Canceled"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (also its own CA), written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "fake-azure-cert.pem", directory / "fake-azure-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- body validation against the SDK's REST models --------------------------------------------------


def _arm_model(name: str) -> Any:
    from azure.ai.ml._restclient.arm_ml_service import models

    return getattr(models, name)


class UncheckedModel(TypeError):
    """The checker met a model field it cannot check (a hint it cannot resolve, a type it does not
    know). Raised, never skipped: a field left unchecked would let any body through."""


def check_model(value: Any, model: Any, path: str = "") -> list[str]:
    """Problems of a JSON value against one of the SDK's typespec models (``_model_base.Model``):
    unknown keys, missing required keys, wrong JSON types; discriminated subtypes are followed."""
    if not isinstance(value, dict):
        return [f"{path or 'body'}: expected an object"]
    discriminators: list[str] = []
    while getattr(model, "__mapping__", None):  # follow jobType, distributionType, ... to the concrete model
        field = model._get_discriminator(discriminators)
        if field is None:
            break
        discriminators.append(field._rest_name)
        kind = value.get(field._rest_name)
        if kind not in model.__mapping__:
            return [f"{path}{field._rest_name}: unknown value {kind!r} (known: {sorted(model.__mapping__)})"]
        if model.__mapping__[kind] is model:
            break
        model = model.__mapping__[kind]
    model.__new__(model)  # the SDK computes a model's field table on its first instance (else: its parent's)
    fields = {f._rest_name: f for f in model._attr_to_rest_field.values()}
    problems = [f"{path}{key}: unknown field" for key in value if key not in fields]
    hints = _type_hints(model)
    for attr, field in model._attr_to_rest_field.items():
        key = field._rest_name
        if attr not in hints:
            raise UncheckedModel(f"{model.__name__}.{attr} ({path}{key}) has no type hint to check it against")
        annotation = hints[attr]
        writable = not field._visibility or any(v in field._visibility for v in ("create", "update"))
        if key not in value:
            if not _optional(annotation) and writable and key not in discriminators:
                problems.append(f"{path}{key}: required")
            continue
        problems.extend(_check_value(value[key], annotation, f"{path}{key}."))
    return problems


def _type_hints(model: Any) -> dict[str, Any]:
    import typing

    from azure.ai.ml._restclient.arm_ml_service import models

    hints: dict[str, Any] = {}
    for klass in reversed(model.__mro__):
        if klass.__module__.startswith("azure.ai.ml._restclient.arm_ml_service"):
            try:
                hints.update(typing.get_type_hints(klass, localns={"_models": models}))
            except Exception as exc:
                raise UncheckedModel(f"cannot resolve the type hints of {klass.__name__}: {exc!r}") from exc
    return hints


def _optional(annotation: Any) -> bool:
    import typing

    return type(None) in typing.get_args(annotation)


def _check_value(value: Any, annotation: Any, path: str) -> list[str]:
    import datetime
    import enum
    import types
    import typing

    from azure.ai.ml._restclient.arm_ml_service._utils import model_base

    if value is None or annotation is typing.Any:  # Any: the model takes whatever JSON value
        return []
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _check_value(value, options[0], path)
        results = [_check_value(value, option, path) for option in options]
        return [] if any(not r for r in results) else results[0]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path.rstrip('.')}: expected an object"]
        if args[1] is str:  # property bags: the SDK sends e.g. hash_version as a number and ARM coerces it
            return [f"{path}{k}: expected a scalar" for k, v in value.items() if isinstance(v, (dict, list))]
        return [p for k, v in value.items() for p in _check_value(v, args[1], f"{path}{k}.")]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path.rstrip('.')}: expected a list"]
        return [p for i, v in enumerate(value) for p in _check_value(v, args[0], f"{path}{i}.")]
    if origin is typing.Literal:
        return [] if value in args else [f"{path.rstrip('.')}: {value!r} is not one of {list(args)}"]
    if isinstance(annotation, type):
        if hasattr(annotation, "_calculated"):  # one of the SDK's models (its field table may not exist yet)
            return check_model(value, annotation, path)
        if issubclass(annotation, enum.Enum) or annotation is str:
            return [] if isinstance(value, str) else [f"{path.rstrip('.')}: expected a string"]
        if annotation is bool:
            return [] if isinstance(value, bool) else [f"{path.rstrip('.')}: expected true/false"]
        if annotation in (int, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return [] if ok else [f"{path.rstrip('.')}: expected a number"]
        if annotation in (datetime.datetime, datetime.timedelta):  # ISO 8601 text, read as the SDK reads it
            try:
                model_base._DESERIALIZE_MAPPING[annotation](value)
            except Exception as exc:
                return [f"{path.rstrip('.')}: not an ISO 8601 {annotation.__name__}: {exc}"]
            return [] if isinstance(value, str) else [f"{path.rstrip('.')}: expected ISO 8601 text"]
    raise UncheckedModel(f"{path.rstrip('.')}: the checker has no rule for type {annotation!r}")


# -- the fake ---------------------------------------------------------------------------------------


class AzureMLFake:
    def __init__(self, subscription: str = "00000000-0000-0000-0000-000000000001", resource_group: str = "rg-test",
                 workspace: str = "ws-test", location: str = "eastus") -> None:
        self.subscription, self.resource_group, self.workspace, self.location = \
            subscription, resource_group, workspace, location
        self._dir = Path(tempfile.mkdtemp(prefix="azureml-fake-"))
        # the certificate lives as long as the fake (clients read ca_file), then goes: no temp dir left behind
        weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        self.ca_file, self._key_file = make_certificate(self._dir)
        self._server: bugs.RecordingHTTPServer | None = None
        self._lock = threading.RLock()
        # the address the fake puts in the URLs it hands out (blob, discovery, next pages, cancel polls):
        # a proxy in front (tests/fakes/fault_proxy.py) sets its own, so those calls pass through it too
        self.public_url: str | None = None
        self.reset()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> AzureMLFake:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = bugs.RecordingHTTPServer("AzureMLFake", ("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self._key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AzureMLFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests: list[tuple[str, str]] = []
            self.job_puts: list[dict[str, Any]] = []
            self.environment_puts: list[dict[str, Any]] = []
            self.code_puts: list[dict[str, Any]] = []
            self.jobs: dict[str, dict[str, Any]] = {}
            self.environments: dict[tuple[str, str], dict[str, Any]] = {}
            self.codes: dict[tuple[str, str], dict[str, Any]] = {}
            self.blobs: dict[str, bytes] = {}
            self.blob_metadata: dict[str, dict[str, str]] = {}
            self.blob_put_bytes: list[tuple[str, int]] = []  # (blob, bytes) of each data PUT (whole blob or block)
            self.computes: set[str] = set()
            self.logs: dict[tuple[str, str], bytearray] = {}
            self.fail_auth = False
            self.deny = False
            self.tokens: list[str] = []
            self._failures: list[list[Any]] = []

    # -- what tests use ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "start the fake first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return self.public_url or self.own_url

    @property
    def own_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    def client_env(self, token: str) -> dict[str, str]:
        """What a launcher process needs to reach this fake: trust its throwaway certificate, and a token
        (LAUNCH_AZURE_ACCESS_TOKEN) instead of a credential chain."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca_file), "LAUNCH_AZURE_ACCESS_TOKEN": token}

    def cloud_metadata(self) -> dict[str, str]:
        return {"azure_portal": self.url, "resource_manager": self.url, "active_directory": self.url,
                "aml_resource_id": self.url, "storage_endpoint": "127.0.0.1",
                "registry_discovery_endpoint": self.url}

    def workspace_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{self.workspace}")

    def ml_client(self, cloud: str | None = None, token: str = "fake-token") -> Any:
        """The real MLClient pointed here (a unique cloud name: cloud settings are process-global)."""
        from azure.ai.ml import MLClient

        return MLClient(StaticToken(token), self.subscription, self.resource_group, self.workspace,
                        cloud=cloud or f"fake-{uuid.uuid4().hex[:12]}", cloud_metadata=self.cloud_metadata(),
                        enable_telemetry=False, show_progress=False)

    def add_compute(self, name: str) -> None:
        self.computes.add(name)

    def set_status(self, name: str, status: str, error: str | None = None) -> None:
        with self._lock:
            job = self.jobs[name]
            job["properties"]["status"] = status
            if error:
                job["_error"] = error
            if status in TERMINAL:
                job["_ended"] = _now()

    def add_log(self, name: str, text: str, node: int = 0, path: str | None = None) -> None:
        """Append to a node's std_log (or any run-history log `path`) of job `name`."""
        with self._lock:
            job = self.jobs[name]
            nodes = int(job["properties"].get("resources", {}).get("instanceCount") or 1)
            if path is None:
                path = "user_logs/std_log.txt" if nodes == 1 else f"user_logs/std_log_process_{node}.txt"
            self.logs.setdefault((name, path), bytearray()).extend(text.encode())

    def working_directory(self, name: str, into: Path) -> tuple[str, dict[str, str]]:
        """What a node of job `name` starts with, as Azure ML gives it: the files of the job's code asset
        copied into its working directory (`into`), the job's command and its environment variables."""
        with self._lock:
            props = self.jobs[name]["properties"]
            into.mkdir(parents=True, exist_ok=True)
            if props.get("codeId"):
                match = re.search(r"/codes/([^/]+)/versions/([^/]+)$", props["codeId"])
                assert match is not None, props["codeId"]
                uri = self.codes[(match.group(1), match.group(2))]["properties"]["codeUri"]
                prefix = urllib.parse.urlsplit(uri).path.removeprefix(f"/{CONTAINER}/").rstrip("/") + "/"
                for blob, data in self.blobs.items():
                    if blob.startswith(prefix) and "#" not in blob:
                        target = into / blob.removeprefix(prefix)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
            return props["command"], dict(props.get("environmentVariables") or {})

    def fail_next(self, path_regex: str, status: int = 503, *, method: str | None = None, times: int = 1,
                  code: str = "ServiceUnavailable", after: bool = False) -> None:
        """Answer the next `times` matching requests with `status` (after storing them, when `after`);
        times=0 ends every failure still pending."""
        with self._lock:
            if times == 0:
                self._failures.clear()
                return
            self._failures.append([re.compile(path_regex), method, times, status, code, after])

    # -- request handling ----------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        parsed = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(parsed.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        with self._lock:
            self.requests.append((method, path))
        anonymous = path.startswith(f"/{CONTAINER}") or path == "/discovery"  # SAS URLs; discovery is public
        if not anonymous:
            auth = headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return 401, _error("AuthenticationFailed", "no bearer token"), {}
            self.tokens.append(auth.removeprefix("Bearer "))
            if self.fail_auth:
                return 401, _error("InvalidAuthenticationToken", "The access token is invalid."), {}
            if self.deny:
                return 403, _error("AuthorizationFailed", "The client does not have authorization to perform "
                                   "action 'Microsoft.MachineLearningServices/workspaces/jobs/write'."), {}
        failure = self._take_failure(method, path)
        if failure is not None and not failure[5]:
            return failure[3], _error(failure[4], "injected failure"), {"Retry-After": "0"}
        for verb, pattern, action in self._routes():
            if verb != method:
                continue
            match = re.fullmatch(pattern, path)
            if match is None:
                continue
            try:
                with self._lock:
                    answer = action(query=query, headers=headers, body=body, **match.groupdict())
            except ApiError as exc:
                return exc.status, _error(exc.code, exc.message), {}
            if failure is not None:
                return failure[3], _error(failure[4], "injected failure after storing"), {"Retry-After": "0"}
            return answer
        return 404, _error("NotFound", f"the fake does not serve {method} {path}"), {}

    def _take_failure(self, method: str, path: str) -> list[Any] | None:
        with self._lock:
            for failure in self._failures:
                pattern, verb, times = failure[0], failure[1], failure[2]
                if times > 0 and pattern.search(path) and (verb is None or verb == method):
                    failure[2] -= 1
                    return failure
        return None

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any, dict[str, str]]]]]:
        ws = WS_PREFIX
        return [
            ("GET", ws, self._get_workspace),
            ("GET", ws + r"/computes/(?P<name>[^/]+)", self._get_compute),
            ("GET", ws + r"/datastores/(?P<name>[^/]+)", self._get_datastore),
            ("GET", ws + r"/datastores", self._list_datastores),
            ("POST", ws + r"/datastores/(?P<name>[^/]+)/listSecrets", self._datastore_secrets),
            ("PUT", ws + r"/environments/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._put_environment),
            ("GET", ws + r"/environments/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._get_environment),
            ("GET", ws + r"/codes/(?P<name>[^/]+)/versions", self._list_codes),
            ("POST", ws + r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)/startPendingUpload",
             self._pending_upload),
            ("PUT", ws + r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._put_code),
            ("GET", ws + r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._get_code),
            ("PUT", ws + r"/jobs/(?P<name>[^/]+)", self._put_job),
            ("GET", ws + r"/jobs/(?P<name>[^/]+)", self._get_job),
            ("GET", ws + r"/jobs", self._list_jobs),
            ("POST", ws + r"/jobs/(?P<name>[^/]+)/cancel", self._cancel_job),
            ("GET", r"/operations/cancel/(?P<name>[^/]+)", self._cancel_result),
            ("GET", r"/discovery", self._discovery),
            ("GET", r"/history/v1\.0" + ws + r"/runs/(?P<name>[^/]+)/details", self._run_details),
            ("GET", rf"/{CONTAINER}/logs/(?P<name>[^/]+)/(?P<log>.+)", self._read_log),
            ("PUT", rf"/{CONTAINER}/(?P<blob>.+)", self._put_blob),
            ("HEAD", rf"/{CONTAINER}/(?P<blob>.+)", self._head_blob),
            ("GET", rf"/{CONTAINER}", self._list_blobs),
            ("GET", rf"/{CONTAINER}/(?P<blob>.+)", self._get_blob),
        ]

    # -- workspace, computes, datastores -------------------------------------------------------------

    def _check_scope(self, sub: str, rg: str, ws: str) -> None:
        if (sub, rg, ws) != (self.subscription, self.resource_group, self.workspace):
            raise ApiError(404, "ResourceNotFound", f"workspace {sub}/{rg}/{ws} not found")

    def _get_workspace(self, sub: str, rg: str, ws: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        return 200, {"id": self.workspace_id(), "name": ws, "type": "Microsoft.MachineLearningServices/workspaces",
                     "location": self.location,
                     "properties": {"discoveryUrl": f"{self.url}discovery", "workspaceId": str(uuid.UUID(int=7)),
                                    "mlFlowTrackingUri": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0"
                                                         f"{self.workspace_id()}"}}, {}

    def _get_compute(self, sub: str, rg: str, ws: str, name: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        if name not in self.computes:
            raise ApiError(404, "ResourceNotFound", f"Compute {name} not found in workspace {ws}")
        return 200, {"id": f"{self.workspace_id()}/computes/{name}", "name": name, "location": self.location,
                     "properties": {"computeType": "AmlCompute", "provisioningState": "Succeeded",
                                    "properties": {"vmSize": "STANDARD_ND96ISR_H100_V5", "vmPriority": "Dedicated",
                                                   "scaleSettings": {"maxNodeCount": 4, "minNodeCount": 0,
                                                                     "nodeIdleTimeBeforeScaleDown": "PT120S"}}}}, {}

    def _datastore(self) -> dict[str, Any]:
        return {"id": f"{self.workspace_id()}/datastores/workspaceblobstore", "name": "workspaceblobstore",
                "properties": {"datastoreType": "AzureBlob", "isDefault": True, "accountName": "fakeaccount",
                               "containerName": CONTAINER, "endpoint": "core.windows.net", "protocol": "https",
                               "credentials": {"credentialsType": "AccountKey"}}}

    def _get_datastore(self, sub: str, rg: str, ws: str, name: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        return 200, self._datastore(), {}

    def _list_datastores(self, sub: str, rg: str, ws: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        return 200, {"value": [self._datastore()]}, {}

    def _datastore_secrets(self, **_: Any) -> tuple[int, Any, dict[str, str]]:
        return 200, {"secretsType": "AccountKey", "key": "ZmFrZQ=="}, {}

    # -- environments --------------------------------------------------------------------------------

    def _put_environment(self, sub: str, rg: str, ws: str, name: str, version: str, body: bytes,
                         **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        data = _json(body)
        problems = check_model(data, _arm_model("EnvironmentVersion"))
        if problems:
            raise ApiError(400, "UserError", "invalid environment version: " + "; ".join(problems))
        self.environment_puts.append(data)
        stored = {"id": f"{self.workspace_id()}/environments/{name}/versions/{version}", "name": version,
                  "type": "Microsoft.MachineLearningServices/workspaces/environments/versions",
                  "properties": {**data["properties"], "provisioningState": "Succeeded"},
                  "systemData": {"createdAt": _now(), "createdBy": "fake"}}
        self.environments[(name, version)] = stored
        return 200, stored, {}

    def _get_environment(self, sub: str, rg: str, ws: str, name: str, version: str,
                         **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        if (name, version) not in self.environments:
            raise ApiError(404, "ResourceNotFound", f"environment {name}:{version} not found")
        return 200, self.environments[(name, version)], {}

    # -- code ----------------------------------------------------------------------------------------

    def _list_codes(self, sub: str, rg: str, ws: str, name: str, query: dict[str, str],
                    **_: Any) -> tuple[int, Any, dict[str, str]]:
        """Versions of code `name`; with `hash` (and `hashVersion`), the versions of any name whose content
        hash is that one ("regardless of name", as the REST spec says): how the SDK finds an anonymous
        code asset already registered for the same files."""
        self._check_scope(sub, rg, ws)
        wanted, version = query.get("hash"), query.get("hashVersion")
        if wanted:
            found = [c for c in self.codes.values() if c["_hash"] == (wanted, version or c["_hash"][1])]
        else:
            found = [c for (n, _v), c in self.codes.items() if n == name]
        return 200, {"value": [_public(c) for c in found]}, {}

    def _pending_upload(self, sub: str, rg: str, ws: str, name: str, version: str, body: bytes,
                        **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        data = _json(body)
        if data.get("pendingUploadType") != "TemporaryBlobReference":
            raise ApiError(400, "UserError", f"pendingUploadType must be TemporaryBlobReference: {data}")
        upload_id = uuid.uuid4().hex
        blob = f"{self.url}{CONTAINER}/LocalUpload/{upload_id}"
        return 200, {"pendingUploadId": upload_id, "pendingUploadType": "TemporaryBlobReference",
                     "blobReferenceForConsumption": {
                         "blobUri": blob, "storageAccountArmId": "/subscriptions/x/storageAccounts/fake",
                         "credential": {"credentialType": "SAS", "sasUri": f"{blob}?sv=2021&sig=fake"}}}, {}

    def _put_code(self, sub: str, rg: str, ws: str, name: str, version: str, body: bytes,
                  **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        data = _json(body)
        problems = check_model(data, _arm_model("CodeVersion"))
        uri = data.get("properties", {}).get("codeUri", "")
        prefix = uri.removeprefix(self.url).removeprefix(f"{CONTAINER}/") + "/"
        if not uri.startswith(f"{self.url}{CONTAINER}/") or not any(b.startswith(prefix) for b in self.blobs):
            problems.append(f"properties.codeUri: nothing was uploaded under {uri!r}")
        if problems:
            raise ApiError(400, "UserError", "invalid code version: " + "; ".join(problems))
        self.code_puts.append(data)
        extra = data["properties"].get("properties") or {}  # the SDK's content hash of the files
        stored = {"id": f"{self.workspace_id()}/codes/{name}/versions/{version}", "name": version,
                  "type": "Microsoft.MachineLearningServices/workspaces/codes/versions",
                  "properties": {**data["properties"], "provisioningState": "Succeeded"},
                  "systemData": {"createdAt": _now(), "createdBy": "fake"},
                  "_hash": (str(extra.get("hash_sha256", "")), str(extra.get("hash_version", "")))}
        self.codes[(name, version)] = stored
        return 201, _public(stored), {}

    def _get_code(self, sub: str, rg: str, ws: str, name: str, version: str, **_: Any) -> tuple[int, Any, dict]:
        self._check_scope(sub, rg, ws)
        if (name, version) not in self.codes:
            raise ApiError(404, "ResourceNotFound", f"code {name}:{version} not found")
        return 200, _public(self.codes[(name, version)]), {}

    # -- blobs ---------------------------------------------------------------------------------------

    def _put_blob(self, blob: str, headers: Any, body: bytes, query: dict[str, str],
                  **_: Any) -> tuple[int, Any, dict[str, str]]:
        if query.get("comp") == "metadata":
            self.blob_metadata[blob] = {k[len("x-ms-meta-"):]: v for k, v in headers.items()
                                        if k.lower().startswith("x-ms-meta-")}
            return 200, b"", {"ETag": '"1"'}
        if query.get("comp") == "block":
            self.blob_put_bytes.append((blob, len(body)))
            self.blobs.setdefault(f"{blob}#blocks", b"")
            self.blobs[f"{blob}#block#{query['blockid']}"] = body
            return 201, b"", {}
        if query.get("comp") == "blocklist":
            ids = re.findall(r"<(?:Latest|Uncommitted|Committed)>([^<]+)<", body.decode())
            self.blobs[blob] = b"".join(self.blobs.pop(f"{blob}#block#{i}", b"") for i in ids)
            return 201, b"", {"ETag": '"1"', "Last-Modified": email.utils.formatdate(usegmt=True)}
        if headers.get("x-ms-blob-type", "BlockBlob") != "BlockBlob":
            raise ApiError(400, "InvalidHeaderValue", "only block blobs")
        self.blob_put_bytes.append((blob, len(body)))
        self.blobs[blob] = body
        self.blob_metadata[blob] = {k.lower()[len("x-ms-meta-"):]: v for k, v in headers.items()
                                    if k.lower().startswith("x-ms-meta-")}
        return 201, b"", {"ETag": '"1"', "Last-Modified": email.utils.formatdate(usegmt=True),
                          "Content-MD5": ""}

    def _blob_headers(self, blob: str) -> dict[str, str]:
        if blob not in self.blobs:
            raise ApiError(404, "BlobNotFound", "The specified blob does not exist.")
        return {"Content-Length": str(len(self.blobs[blob])), "x-ms-blob-type": "BlockBlob", "ETag": '"1"',
                "Last-Modified": email.utils.formatdate(usegmt=True),
                **{f"x-ms-meta-{k}": v for k, v in self.blob_metadata.get(blob, {}).items()}}

    def _head_blob(self, blob: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        return 200, None, self._blob_headers(blob)

    def _get_blob(self, blob: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        return 200, self.blobs.get(blob, b""), self._blob_headers(blob)

    def _list_blobs(self, query: dict[str, str], **_: Any) -> tuple[int, Any, dict[str, str]]:
        prefix = query.get("prefix", "")
        names = sorted(b for b in self.blobs if b.startswith(prefix) and "#" not in b)
        items = "".join(f"<Blob><Name>{n}</Name><Properties><Content-Length>{len(self.blobs[n])}</Content-Length>"
                        f"<BlobType>BlockBlob</BlobType></Properties><Metadata>"
                        + "".join(f"<{k}>{v}</{k}>" for k, v in self.blob_metadata.get(n, {}).items())
                        + "</Metadata></Blob>" for n in names)
        xml = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="{CONTAINER}">'
               f"<Prefix>{prefix}</Prefix><Blobs>{items}</Blobs><NextMarker /></EnumerationResults>")
        return 200, xml.encode(), {"Content-Type": "application/xml"}

    # -- jobs ----------------------------------------------------------------------------------------

    def _put_job(self, sub: str, rg: str, ws: str, name: str, body: bytes, **_: Any) -> tuple[int, Any, dict]:
        self._check_scope(sub, rg, ws)
        data = _json(body)
        problems = check_model(data, _arm_model("JobBase"))
        props = data.get("properties") if isinstance(data.get("properties"), dict) else {}
        if props.get("jobType") != "Command":
            problems.append(f"properties.jobType: the fake serves Command jobs, not {props.get('jobType')!r}")
        for key in ("environmentId", "codeId"):
            ref = props.get(key)
            if ref and not self._resolves(ref):
                problems.append(f"properties.{key}: {ref!r} does not exist")
        if problems:
            raise ApiError(400, "UserError", "invalid job: " + "; ".join(problems))
        compute = props.get("computeId")
        if compute and compute.rsplit("/", 1)[-1] not in self.computes:
            raise ApiError(400, "UserError", f"Compute {compute.rsplit('/', 1)[-1]} does not exist in workspace "
                           f"{ws}; pass an existing compute or serverless resources")
        self.job_puts.append(data)
        if name in self.jobs:
            return 200, _public(self.jobs[name]), {}
        now = _now()
        stored = {"id": f"{self.workspace_id()}/jobs/{name}", "name": name,
                  "type": "Microsoft.MachineLearningServices/workspaces/jobs",
                  "properties": {**props, "status": "NotStarted",
                                 "services": {"Studio": {"jobServiceType": "Studio",
                                                         "endpoint": f"https://ml.azure.com/runs/{name}?wsid="
                                                                     f"{self.workspace_id()}"}}},
                  "systemData": {"createdAt": now, "createdBy": "fake", "createdByType": "User"}}
        self.jobs[name] = stored
        return 201, _public(stored), {}

    def _resolves(self, ref: str) -> bool:
        match = re.search(r"/(environments|codes)/([^/]+)/versions/([^/]+)$", ref)
        if match is None:
            return ref.startswith("azureml:")
        table = self.environments if match.group(1) == "environments" else self.codes
        return (match.group(2), match.group(3)) in table

    def _job(self, name: str) -> dict[str, Any]:
        if name not in self.jobs:
            raise ApiError(404, "UserError", f"Could not find job {name}")
        return self.jobs[name]

    def _get_job(self, sub: str, rg: str, ws: str, name: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        return 200, _public(self._job(name)), {}

    def _list_jobs(self, sub: str, rg: str, ws: str, query: dict[str, str], **_: Any) -> tuple[int, Any, dict]:
        self._check_scope(sub, rg, ws)
        jobs = sorted(self.jobs.values(), key=lambda j: j["systemData"]["createdAt"], reverse=True)
        tag = query.get("tag")
        if tag:
            jobs = [j for j in jobs if tag in (j["properties"].get("tags") or {})]
        page_size = 2
        start = int(query.get("$skipToken") or 0)
        page = jobs[start:start + page_size]
        answer: dict[str, Any] = {"value": [_public(j) for j in page]}
        if start + page_size < len(jobs):
            base = f"{self.url.rstrip('/')}{self.workspace_id()}/jobs"
            params = {k: v for k, v in query.items() if k != "$skipToken"}
            params["$skipToken"] = str(start + page_size)
            answer["nextLink"] = f"{base}?{urllib.parse.urlencode(params)}"
        return 200, answer, {}

    def _cancel_job(self, sub: str, rg: str, ws: str, name: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        job = self._job(name)
        if job["properties"]["status"] not in TERMINAL and job["properties"]["status"] != "CancelRequested":
            job["properties"]["status"] = "CancelRequested"
        location = f"{self.url}operations/cancel/{name}?api-version=2023-04-01"
        return 202, b"", {"Location": location, "Retry-After": "0"}

    def _cancel_result(self, name: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        return 200, {}, {}

    # -- run history ---------------------------------------------------------------------------------

    def _discovery(self, **_: Any) -> tuple[int, Any, dict[str, str]]:
        base = self.url.rstrip("/")
        return 200, {"api": base, "catalog": base, "experimentation": base, "gallery": base, "history": base,
                     "hyperdrive": base, "labeling": base, "modelmanagement": base, "pipelines": base,
                     "studiocoreservices": base}, {}

    def _run_details(self, sub: str, rg: str, ws: str, name: str, **_: Any) -> tuple[int, Any, dict[str, str]]:
        self._check_scope(sub, rg, ws)
        job = self._job(name)
        files = {path: f"{self.url}{CONTAINER}/logs/{name}/{path}?sv=2021&sig=fake"
                 for (job_name, path) in self.logs if job_name == name}
        status = job["properties"]["status"]
        details: dict[str, Any] = {"runId": name, "status": status, "logFiles": files,
                                   "startTimeUtc": job["systemData"]["createdAt"],
                                   "target": job["properties"].get("computeId"), "warnings": []}
        if job.get("_ended"):
            details["endTimeUtc"] = job["_ended"]
        if job.get("_error"):
            details["error"] = {"error": {"code": "UserError", "message": job["_error"]}}
        return 200, details, {}

    def _read_log(self, name: str, log: str, headers: Any, **_: Any) -> tuple[int, Any, dict[str, str]]:
        data = bytes(self.logs.get((name, log), b""))
        if (name, log) not in self.logs:
            raise ApiError(404, "BlobNotFound", "The specified blob does not exist.")
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("Range") or headers.get("x-ms-range") or "")
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) + 1 if match.group(2) else len(data)
            if start >= len(data):
                return 416, b"", {"Content-Range": f"bytes */{len(data)}"}
            return 206, data[start:end], {"Content-Range": f"bytes {start}-{min(end, len(data)) - 1}/{len(data)}"}
        return 200, data, {}


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise ApiError(400, "UserError", f"the body is not JSON: {exc}") from None


class _Handler(BaseHTTPRequestHandler):
    owner: AzureMLFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("AZUREML_FAKE_DEBUG"):
            super().log_message(format, *args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, payload, extra = self.owner.handle(self.command, self.path, self.headers, body)
        except Exception as exc:  # a bug in the fake: answer 500 (the client must not hang) and fail the test
            bugs.record("AzureMLFake")
            status, payload, extra = 500, _error("FakeBug", repr(exc)), {}
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload).encode()
            extra = {"Content-Type": "application/json; charset=utf-8", **extra}
        else:
            data = payload or b""
        self.send_response(status)
        for key, value in extra.items():
            if key != "Content-Length":
                self.send_header(key, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", extra.get("Content-Length", "0"))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", uuid.uuid4().hex)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _serve
