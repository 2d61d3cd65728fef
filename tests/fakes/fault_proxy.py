r"""A fault-injecting HTTP(S) proxy on 127.0.0.1 that any HTTP fake (moto, the Vertex fake, the
Lambda Cloud fake) or HTTPS fake (the Azure ML fake) can sit behind, so the real clients meet the
failures real providers produce. The backend is pointed at ``proxy.endpoint`` through its ordinary endpoint
setting (AWS_ENDPOINT_URL, ``api_endpoint``, ...); nothing in the launcher knows it is there.

Faults (``KINDS``):

- ``429`` / ``500`` / ``503``: answered by the proxy, the request never reaches the fake; the body is
  the provider's own error shape (``aws_error`` / ``google_error``) so the SDK maps it as it would
  the real thing.
- ``reset``: the connection is reset (RST) before the request is forwarded: nothing was done.
- ``lost``: the request IS carried out by the fake, then the connection is reset: the answer is lost.
  This is what a client timeout leaves behind (work done, no answer), without waiting the client's
  real 60 s read timeout in every case.
- ``timeout``: the request is carried out and the answer held for ``hold_s`` seconds before the
  connection is dropped: a client with a shorter read timeout gives up on its own; a client with
  none hangs (which is what this fault exists to catch).

Random faults hit a request with probability ``rate`` (seeded ``random.Random``: the same seed and
the same request order give the same faults); ``only`` limits them to matching requests. Patterns
are searched in ``"METHOD /path?query X-Amz-Target"`` (the target names the operation of AWS JSON
APIs, which all POST to ``/``; Tencent Cloud's X-TC-Action stands in its place), e.g.
``"CreateTrainingJob"`` or ``r"^POST \S*/customJobs "``.
An HTTPS upstream is reached with ``upstream_ca`` trusted; ``tls=(cert_file, key_file)`` makes the
proxy itself speak TLS (the Azure ML fake's throwaway certificate is for 127.0.0.1, so the proxy reuses
it and the client's REQUESTS_CA_BUNDLE stays as it is).
Deterministic one-shot faults and holds (``fail_next``, ``hold_next``) serve the crash tests.
Every request is counted in ``stats`` and ``log``.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from . import bugs

KINDS = ("429", "500", "503", "reset", "lost", "timeout")
STATUS_TEXT = {429: ("ThrottlingException", "RESOURCE_EXHAUSTED", "Rate exceeded"),
               500: ("InternalFailure", "INTERNAL", "Internal error"),
               503: ("ServiceUnavailable", "UNAVAILABLE", "The service is currently unavailable."),
               401: ("ExpiredTokenException", "UNAUTHENTICATED", "The security token included in the request is "
                     "expired"),
               403: ("AccessDeniedException", "PERMISSION_DENIED", "User is not authorized to perform this action")}
ErrorBody = Callable[[int, str, Any], tuple[bytes, str]]


def aws_error(code: int, path: str, headers: Any, error_code: str | None = None) -> tuple[bytes, str]:
    """AWS's error shape: JSON 1.1 (``__type``) for X-Amz-Target APIs (SageMaker, Logs), S3's XML otherwise."""
    name, _, text = STATUS_TEXT.get(code, ("InternalFailure", "", "error"))
    name = error_code or name
    if headers.get("X-Amz-Target"):
        return json.dumps({"__type": name, "message": text}).encode(), "application/x-amz-json-1.1"
    xml = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{name}</Code><Message>{text}</Message></Error>"
    return xml.encode(), "application/xml"


def google_error(code: int, path: str, headers: Any, error_code: str | None = None) -> tuple[bytes, str]:
    """Google's JSON error: {"error": {code, message, status}} (GCS adds errors[])."""
    _, status, text = STATUS_TEXT.get(code, ("", "UNKNOWN", "error"))
    error: dict[str, Any] = {"code": code, "message": text, "status": error_code or status}
    if path.startswith(("/storage/", "/upload/", "/download/")):
        error["errors"] = [{"message": text, "domain": "global", "reason": "backendError"}]
    return json.dumps({"error": error}).encode(), "application/json; charset=UTF-8"


AZURE_CODES = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable",
               401: "InvalidAuthenticationToken", 403: "AuthorizationFailed"}
LAMBDA_CODES = {429: "global/too-many-requests", 500: "global/internal-error", 503: "global/internal-error",
                401: "global/invalid-api-key", 403: "global/account-inactive"}  # Lambda's only 403 (its spec)


def azure_error(code: int, path: str, headers: Any, error_code: str | None = None) -> tuple[bytes, str]:
    """ARM's JSON error ({"error": {code, message}}); Blob storage's XML for the blob container."""
    name, text = error_code or AZURE_CODES.get(code, "InternalServerError"), STATUS_TEXT.get(code, ("", "", "error"))[2]
    if path.startswith("/azureml-blobstore"):
        xml = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{name}</Code><Message>{text}</Message></Error>'
        return xml.encode(), "application/xml"
    return json.dumps({"error": {"code": name, "message": text}}).encode(), "application/json; charset=utf-8"


def lambda_error(code: int, path: str, headers: Any, error_code: str | None = None) -> tuple[bytes, str]:
    """Lambda Cloud's envelope {"error": {code, message, suggestion}}, with its spec's texts for 401/403."""
    message, suggestion = {
        401: ("API key was invalid, expired, or deleted.", "Check your API key or create a new one, then try again."),
        403: ("Your account is inactive.", "Make sure you have verified your email address and have a valid payment "
              "method. Contact Support if problems continue."),
    }.get(code, (STATUS_TEXT.get(code, ("", "", "error"))[2], "Try again later."))
    error = {"code": error_code or LAMBDA_CODES.get(code, "global/internal-error"), "message": message,
             "suggestion": suggestion}
    return json.dumps({"error": error}).encode(), "application/json"


@dataclass
class Hold:
    """A request held at the proxy: ``before`` the fake sees it, or after the fake answered (``after``).
    ``arrived`` is set when the request is waiting; ``release()`` lets it go on (forward / answer),
    ``drop()`` resets the connection instead."""

    pattern: re.Pattern[str]
    after: bool
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    dropped: bool = False

    def wait_arrived(self, timeout: float = 60) -> None:
        if not self.arrived.wait(timeout):
            raise TimeoutError(f"no request matching {self.pattern.pattern!r} reached the proxy in {timeout}s")

    def release(self) -> None:
        self.released.set()

    def drop(self) -> None:
        self.dropped = True
        self.released.set()


class FaultProxy:
    """``with FaultProxy(upstream_url, error_body=aws_error, rate=0.3, seed=7) as proxy: ...``"""

    def __init__(self, upstream: str, *, error_body: ErrorBody = google_error, rate: float = 0.0,
                 kinds: tuple[str, ...] = KINDS, seed: int = 0, only: str | None = None,
                 hold_s: float = 2.0, upstream_ca: str | None = None,
                 tls: tuple[str, str] | None = None) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {KINDS}")
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_tls = ssl.create_default_context(cafile=upstream_ca) if parts.scheme == "https" else None
        self.upstream_port = parts.port or (443 if self.upstream_tls else 80)
        self.tls = tls
        self.error_body = error_body
        self.rate, self.kinds, self.hold_s = rate, kinds, hold_s
        self.only = re.compile(only) if only else None
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self.log: list[tuple[str, str, str]] = []  # (method, path, fault or "ok")
        self._scripted: list[list[Any]] = []  # [pattern, kind, times, error_code]
        self._holds: list[Hold] = []
        self.endpoint = ""
        self._server: bugs.RecordingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            pass

        Handler.proxy = proxy
        self._server = bugs.RecordingHTTPServer("FaultProxy", ("127.0.0.1", 0), Handler)
        scheme = "http"
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.endpoint = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="fault-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        for hold in self._holds:
            hold.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self, *, rate: float | None = None, seed: int | None = None, only: str | None = None) -> None:
        """Forget counts, scripted faults and holds; optionally a new rate and seed; random faults hit
        requests matching ``only`` (None: every request)."""
        with self.lock:
            for hold in self._holds:
                hold.release()
            self._holds.clear()
            self._scripted.clear()
            self.stats.clear()
            self.log.clear()
            if rate is not None:
                self.rate = rate
            if seed is not None:
                self.random = random.Random(seed)
            self.only = re.compile(only) if only else None

    # -- scripted faults -------------------------------------------------------------------------------------
    def fail_next(self, pattern: str, kind: str | int, *, times: int = 1, error_code: str | None = None) -> None:
        """The next ``times`` requests matching ``pattern`` get fault ``kind`` (a KINDS entry or any HTTP
        status, e.g. 401/403), whatever the random rate says. ``error_code`` overrides the provider code."""
        with self.lock:
            self._scripted.append([re.compile(pattern), str(kind), times, error_code])

    def hold_next(self, pattern: str, *, after: bool = False) -> Hold:
        """Hold the next matching request: before forwarding it, or (``after``) once the fake has answered."""
        hold = Hold(re.compile(pattern), after)
        with self.lock:
            self._holds.append(hold)
        return hold

    @property
    def faults(self) -> int:
        return sum(n for kind, n in self.stats.items() if kind != "ok")

    # -- decisions (called by the handler) ------------------------------------------------------------------------
    def _decide(self, key: str) -> tuple[str | None, str | None, Hold | None]:
        with self.lock:
            hold = next((h for h in self._holds if h.pattern.search(key)), None)
            if hold is not None:
                self._holds.remove(hold)
            for entry in self._scripted:
                pattern, kind, times, error_code = entry
                if pattern.search(key) and times > 0:
                    entry[2] -= 1
                    if entry[2] == 0:
                        self._scripted.remove(entry)
                    return kind, error_code, hold
            eligible = self.only is None or bool(self.only.search(key))
            if eligible and self.rate > 0 and self.random.random() < self.rate:
                return self.random.choice(self.kinds), None, hold
            return None, None, hold

    def _count(self, method: str, path: str, outcome: str) -> None:
        with self.lock:
            self.stats[outcome] += 1
            self.log.append((method, path, outcome))


def read_request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sent with Content-Length or chunked (google-resumable-media and
    requests stream some uploads chunked); shared by the HTTP fakes."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        body = b""
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            body += handler.rfile.read(size)
            handler.rfile.readline()
        while handler.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return body
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _forward(self, method: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        proxy = self.proxy
        conn: http.client.HTTPConnection
        if proxy.upstream_tls is not None:
            conn = http.client.HTTPSConnection(proxy.upstream_host, proxy.upstream_port, timeout=120,
                                               context=proxy.upstream_tls)
        else:
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
        skip = {"host", "expect", "transfer-encoding", "content-length", "connection", "proxy-connection"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        headers["Host"] = self.headers.get("Host", f"{proxy.upstream_host}:{proxy.upstream_port}")
        if body or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        try:
            conn.request(method, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = b"" if method == "HEAD" else response.read()
            # Date and Server: send_response adds the proxy's own (two Date headers read as one bad date)
            kept = [(k, v) for k, v in response.getheaders()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive", "date",
                                         "server")]
            if method == "HEAD":
                kept.append(("Content-Length", response.getheader("Content-Length") or "0"))
            return response.status, kept, data
        finally:
            conn.close()

    def _answer(self, method: str, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        if method != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def _held_then_dropped(self, hold: Hold, method: str, path: str) -> bool:
        """Wait while the test holds this request; True when it chose to drop it."""
        hold.arrived.set()
        hold.released.wait()
        if hold.dropped:
            self.proxy._count(method, path, "held-dropped")
        return hold.dropped

    def _serve(self, method: str) -> None:
        proxy = self.proxy
        body = read_request_body(self)
        path = self.path.split("?", 1)[0]
        operation = self.headers.get("X-Amz-Target") or self.headers.get("X-TC-Action") or ""
        kind, error_code, hold = proxy._decide(f"{method} {self.path} {operation}")
        if hold is not None and not hold.after and self._held_then_dropped(hold, method, path):
            return self._reset()
        if kind == "reset":
            proxy._count(method, path, kind)
            return self._reset()
        if kind is not None and kind.isdigit():
            proxy._count(method, path, kind)
            data, content_type = proxy.error_body(int(kind), path, self.headers, error_code)
            return self._answer(method, int(kind), [("Content-Type", content_type)], data)
        status, headers, data = self._forward(method, body)
        if hold is not None and hold.after and self._held_then_dropped(hold, method, path):
            return self._reset()
        if kind == "lost":
            proxy._count(method, path, kind)
            return self._reset()
        if kind == "timeout":
            proxy._count(method, path, kind)
            time.sleep(proxy.hold_s)
            return self._reset()
        proxy._count(method, path, "ok")
        self._answer(method, status, headers, data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")
