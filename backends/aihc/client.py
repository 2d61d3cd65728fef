"""AIHC's v2 API through bce-python-sdk's own transport, BOS for the job's files, and the errors as launch errors.

Every AIHC call goes out as the SDK's JobClient sends it: `bce_http_client.send_request` signed by
`bce_v1_signer.sign` (bce-auth-v1), POST `/?action=<Action>&...` with `X-API-Version: v2`, the SDK's
`aihc_handler.parse_error` for refusals. Only the body is ours: built from the published definition (see
render.py), where the SDK's methods would send nulls or leave out required fields; the answer is read as
plain JSON. bce-python-sdk and boto3 are imported only when a real call needs them.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

from launcher.errors import (
    BackendError,
    BackendUnreachable,
    CapacityError,
    LaunchError,
    TransientBackendError,
    translated,
)
from launcher.sdk import Sdk

SDK = Sdk("aihc", "bce-python-sdk", ("baidubce", "boto3"))
CREDENTIALS_HINT = ("export BCE_ACCESS_KEY_ID and BCE_SECRET_ACCESS_KEY (an AccessKey from the Baidu AI Cloud "
                    "console's security page), or set access_key_id and secret_access_key in [backends.aihc] of "
                    "config.toml")
PERMISSION_HINT = ("grant this AccessKey's IAM user AIHC access to the resource pool and queue (IAM console: a policy "
                   "allowing CreateJob, DescribeJob, DescribeJobs, DescribeJobLogs and StopJob)")
# refusals for want of GPUs in the pool or quota in the queue: nothing was created, another backend may have them
CAPACITY_MARKERS = ("Quota", "Insufficient", "NotEnough", "Capacity", "ExceedLimit", "ExceedsLimit")
CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestExpired", "InvalidSessionToken",
                    "AccessKeyDisabled", "InvalidAuthorization", "InvalidHTTPAuthHeader"}
TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
                   "ServiceInternalError", "Throttling"}


def access_key(settings: Mapping[str, Any]) -> tuple[str, str]:
    """The AccessKey pair: the environment first, then config.toml; a missing one is exit 4 with the fix."""
    key = os.environ.get("BCE_ACCESS_KEY_ID") or settings.get("access_key_id") or ""
    secret = os.environ.get("BCE_SECRET_ACCESS_KEY") or settings.get("secret_access_key") or ""
    if not key or not secret:
        raise BackendUnreachable("no Baidu AI Cloud credentials for AIHC", CREDENTIALS_HINT)
    return str(key), str(secret)


def configuration(settings: Mapping[str, Any], key: tuple[str, str]) -> Any:
    """The SDK's client configuration: endpoint, protocol, timeouts; no retries (the runner is the one retry layer)."""
    import baidubce.protocol
    from baidubce.auth.bce_credentials import BceCredentials
    from baidubce.bce_client_configuration import BceClientConfiguration
    from baidubce.retry.retry_policy import NoRetryPolicy

    from backends.aihc.render import endpoint_host

    protocol = baidubce.protocol.HTTP if settings.get("protocol") == "http" else baidubce.protocol.HTTPS
    return BceClientConfiguration(credentials=BceCredentials(*key), endpoint=endpoint_host(settings),
                                  protocol=protocol, connection_timeout_in_mills=30_000,
                                  retry_policy=NoRetryPolicy())


def _json_body(http_response: Any, response: Any) -> bool:
    """The answer as a plain dict (the SDK's own parser turns it into attribute objects)."""
    raw = http_response.read()
    http_response.close()
    response.__dict__["json"] = json.loads(raw) if raw else {}
    return True


def call(config: Any, action: str, query: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
    """One v2 action, signed and sent as the SDK's JobClient sends it; the answer's JSON."""
    from baidubce.auth import bce_v1_signer
    from baidubce.http import bce_http_client, http_methods
    from baidubce.services.aihc import aihc_handler

    headers = {b"X-API-Version": b"v2", b"Content-Type": b"application/json"}
    response = bce_http_client.send_request(config, bce_v1_signer.sign, [aihc_handler.parse_error, _json_body],
                                            http_methods.POST, b"/", json.dumps(dict(body)), headers,
                                            {"action": action, **query})
    answer = response.__dict__.get("json")
    if not isinstance(answer, dict):
        raise BackendError(f"AIHC answered {action} with something that is not a JSON object")
    return answer


def bos_client(settings: Mapping[str, Any], key: tuple[str, str]) -> Any:
    """boto3 against BOS's S3-compatible endpoint, signed with the same AccessKey (BOS takes SigV4)."""
    region = str(settings.get("region") or "bj")
    return _bos_client(str(settings.get("bos_endpoint") or f"https://s3.{region}.bcebos.com"), region, key)


@functools.cache
def _bos_client(endpoint: str, region: str, key: tuple[str, str]) -> Any:
    """One per endpoint and AccessKey for the whole process: building a boto3 client loads botocore's S3
    model (tens of ms), which would dominate a sweep of submits. Clients are thread-safe."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        region_name=region, config=Config(retries={"max_attempts": 1}, proxies={}))


def aihc_errors() -> Any:
    """`with aihc_errors():` turns the SDK's and boto3's exceptions into launch errors."""
    return translated(aihc_error)


def aihc_error(exc: Exception) -> LaunchError | None:
    """Pool and queue capacity refusals are CapacityError (failover); credentials exit 4 with the fix;
    throttling and 5xx are retried by the runner; the rest say what AIHC said."""
    module = type(exc).__module__
    if module.startswith(("botocore", "boto3", "s3transfer", "urllib3")):
        from backends.sagemaker.errors import aws_error

        return aws_error("BOS", exc)
    if not module.startswith("baidubce"):
        return None
    name = type(exc).__name__
    if name == "BceHttpClientError":  # the connection failed or the answer never came
        last = getattr(exc, "last_error", None)
        if last is not None and type(last).__name__ == "BceServerError":
            return aihc_error(last)
        return TransientBackendError(f"AIHC did not answer: {last or exc}", "check backends.aihc.region (and "
                                     "endpoint, if set) and the network, then retry")
    code = str(getattr(exc, "code", "") or "")
    status = getattr(exc, "status_code", None)
    message = str(exc)
    if code in CREDENTIAL_CODES or status == 401:
        return BackendUnreachable(f"Baidu AI Cloud refused the credentials ({code or status}): {message}",
                                  CREDENTIALS_HINT)
    if code in ("AccessDenied", "AccessDeniedException") or status == 403:
        return BackendUnreachable(f"Baidu AI Cloud denied the request ({code or status}): {message}", PERMISSION_HINT)
    if any(marker.lower() in code.lower() for marker in CAPACITY_MARKERS):
        return CapacityError(f"AIHC has no capacity for this job ({code}): {message}",
                             "try another queue or resource pool, fewer GPUs, or another backend")
    if code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500) or status == 429:
        return TransientBackendError(f"AIHC is busy ({code or status}): {message}")
    return BackendError(f"AIHC refused the request ({code or status}): {message}")
