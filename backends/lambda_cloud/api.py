"""A small client for Lambda Cloud's REST API (v1), paced to its documented rate limits.

Lambda allows about one request per second per key and one instance launch per 12 s,
and answers `429` past that. The client spaces its own calls (both intervals are
settings, so tests run with short ones against a fake that enforces them): that is pacing,
not retrying. It retries nothing: a 429 (with its Retry-After), a 5xx or a dropped
connection is a TransientBackendError for the runner's one retry policy (launcher/retry.py),
so an unreachable API is reported in seconds, not after nested loops. Error envelopes
`{"error": {"code", "message", "suggestion"}}` become one LaunchError keyed on the code.
`requests` is imported on first call only.
"""

from __future__ import annotations

import time
from typing import Any

from backends.lambda_cloud.render import DEFAULT_BASE_URL
from launcher.errors import BackendError, BackendUnreachable, CapacityError, LaunchError, TransientBackendError

INSUFFICIENT_CAPACITY = "instance-operations/launch/insufficient-capacity"


class LambdaAPIError(BackendError):
    """The API refused a request; `code` is Lambda's error code (e.g. global/quota-exceeded)."""

    def __init__(self, code: str, message: str, hint: str = "", status: int = 0) -> None:
        super().__init__(message, hint)
        self.code = code
        self.status = status


class LambdaCapacityError(LambdaAPIError, CapacityError):
    """No capacity or quota now: nothing was launched, so the next region (or backend) may be tried."""


def api_error(status: int, body: Any, retry_after: float | None = None) -> LaunchError:
    """The LaunchError for an error response: credentials exit 4, throttling and 5xx are
    transient (carrying the Retry-After Lambda sent), capacity and quota are CapacityError,
    everything else a BackendError."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or f"http/{status}")
    message = str(error.get("message") or f"HTTP {status}")
    suggestion = str(error.get("suggestion") or "")
    if code == "global/invalid-api-key" or status == 401:
        return BackendUnreachable(f"Lambda Cloud rejected the API key: {message}",
                                  "set LAMBDA_API_KEY (or api_key in [backends.lambda_cloud] of config.toml) "
                                  "to a key from https://cloud.lambda.ai/api-keys")
    if status == 429 or status >= 500 or code == "global/internal-error":
        return TransientBackendError(f"Lambda Cloud is busy or failing ({code}): {message}", retry_after=retry_after)
    if code == INSUFFICIENT_CAPACITY:
        return LambdaCapacityError(code, f"Lambda Cloud has no capacity: {message}",
                                   suggestion or "try other regions or instance types, or later", status)
    if code == "global/quota-exceeded":
        return LambdaCapacityError(code, f"Lambda Cloud quota exceeded: {message}",
                                   suggestion or "ask Lambda support for more quota", status)
    if code == "instance-operations/launch/file-system-in-wrong-region":
        return LambdaAPIError(code, f"Lambda Cloud: {message}",
                              "a file system mounts only in its own region: list regions: [<its region>] "
                              "or drop it from file_systems", status)
    if code.startswith("global/account-inactive") or code == "global/invalid-billing-address":
        return LambdaAPIError(code, f"Lambda Cloud refused the account: {message}",
                              suggestion or "check the account's billing at https://cloud.lambda.ai", status)
    return LambdaAPIError(code, f"Lambda Cloud refused the request ({code}): {message}", suggestion, status)


class LambdaAPI:
    """One API key and base URL; calls spaced by `request_interval_s` (launches by
    `launch_interval_s`) within this process."""

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, *, request_interval_s: float = 1.0,
                 launch_interval_s: float = 12.0, timeout_s: float = 30.0, session: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.request_interval_s = request_interval_s
        self.launch_interval_s = launch_interval_s
        self.timeout_s = timeout_s
        self.api_key = api_key  # never logged or shown; the node gets it in a 0600 file
        self._session = session
        self._last_request = float("-inf")
        self._last_launch = float("-inf")

    # -- the operations launch uses ------------------------------------------------

    def instance_types(self) -> dict[str, Any]:
        return self.call("GET", "/instance-types")

    def instances(self) -> list[dict[str, Any]]:
        """The running instances (Lambda stops listing an instance soon after it is terminated)."""
        return self.call("GET", "/instances")

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        """One instance, running or not (`instances` lists the running ones only); None when
        Lambda no longer knows it."""
        from urllib.parse import quote

        try:
            return self.call("GET", f"/instances/{quote(instance_id, safe='')}")
        except LambdaAPIError as exc:
            if exc.status == 404:
                return None
            raise

    def launch(self, body: dict[str, Any]) -> list[str]:
        return self.call("POST", "/instance-operations/launch", body)["instance_ids"]

    def rename(self, instance_id: str, name: str) -> None:
        from urllib.parse import quote

        self.call("POST", f"/instances/{quote(instance_id, safe='')}", {"name": name})

    def terminate(self, instance_ids: list[str]) -> list[dict[str, Any]]:
        if not instance_ids:
            return []
        return self.call("POST", "/instance-operations/terminate",
                         {"instance_ids": instance_ids})["terminated_instances"]

    # -- transport -------------------------------------------------------------------

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The response's `data`, from one request (paced): whoever needs it retried is the runner."""
        status, data, retry_after = self._once(method, path, body)
        if status >= 400:
            raise api_error(status, data, retry_after)
        return data.get("data") if isinstance(data, dict) else data

    def _pace(self, path: str) -> None:
        now = time.monotonic()
        wait = self._last_request + self.request_interval_s - now
        if path == "/instance-operations/launch":
            wait = max(wait, self._last_launch + self.launch_interval_s - now)
        if wait > 0:
            time.sleep(wait)

    def _once(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any, float | None]:
        import requests

        if self._session is None:
            self._session = requests.Session()
        self._pace(path)
        try:
            response = self._session.request(method, self.base_url + path, json=body, timeout=self.timeout_s,
                                             headers={"Authorization": f"Bearer {self.api_key}",
                                                      "Accept": "application/json"})
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientBackendError(f"cannot reach Lambda Cloud at {self.base_url}: "
                                        f"{type(exc).__name__}") from None
        finally:
            self._last_request = time.monotonic()
            if path == "/instance-operations/launch":
                self._last_launch = self._last_request
        try:
            data = response.json()
        except ValueError:
            data = None
        return response.status_code, data, _seconds(response.headers.get("Retry-After"))


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
