"""The TI-ONE SDK client, the COS client for the job's files, and the SDK's errors as launch errors.

The Tencent Cloud SDK and boto3 are imported only when a real call needs them: `launch list` and dry
runs never get here. Credentials come from Tencent Cloud's chain, never from a spec: the SDK's own
providers (TENCENTCLOUD_SECRET_ID / _SECRET_KEY, ~/.tencentcloud/credentials, a CVM role, a TKE OIDC
role), with tccli's profile (~/.tccli/<profile>.credential) tried before the CVM role.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
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

SDK = Sdk("tione", "tencentcloud-sdk-python-tione", ("tencentcloud.tione", "tencentcloud.common", "boto3"))
CREDENTIALS_HINT = ("export TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY, or configure a profile with "
                    "`tccli configure` (~/.tccli) or ~/.tencentcloud/credentials, or run on a CVM with a CAM role")
PERMISSION_HINT = ("grant the CAM user or role TI-ONE's permissions (the QcloudTIONEFullAccess policy, or one "
                   "allowing CreateTrainingTask/DescribeTrainingTask(s)/StopTrainingTask/DescribeTrainingTaskPods/"
                   "DescribeLogs) and COS access to the bucket")
# refusals for want of quota or machines: nothing was created, another backend may have them
CAPACITY_MARKERS = ("ResourceInsufficient", "InsufficientResource", "QuotaExceeded", "Quota", "NoStock",
                    "SoldOut", "BalanceInsufficient")
TRANSIENT_CODES = {"RequestLimitExceeded", "InternalError", "ResourceUnavailable", "ServiceUnavailable"}
UNANSWERED_CODES = {"ServerNetworkError", "ClientNetworkError"}  # the SDK's: no usable answer came back


def tccli_credential() -> Any:
    """tccli's profile (`tccli configure` writes ~/.tccli/<profile>.credential as JSON), or None."""
    from tencentcloud.common.credential import Credential

    profile = os.environ.get("TCCLI_PROFILE") or "default"
    path = Path("~/.tccli").expanduser() / f"{profile}.credential"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    secret_id, secret_key = saved.get("secretId"), saved.get("secretKey")
    if not (isinstance(secret_id, str) and isinstance(secret_key, str) and secret_id and secret_key):
        return None
    return Credential(secret_id, secret_key, saved.get("token") or None)


def credentials() -> Any:
    """The first credential the chain finds, resolved now, so a missing one is one error (exit 4) before
    anything is uploaded. The SDK's providers are asked one by one to put tccli's profile before the CVM
    role (whose metadata lookup is slow off Tencent Cloud)."""
    from tencentcloud.common import credential as chain
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    token = os.environ.get("TENCENTCLOUD_SESSION_TOKEN") or None
    if os.environ.get("TENCENTCLOUD_SECRET_ID") and os.environ.get("TENCENTCLOUD_SECRET_KEY"):
        return chain.Credential(os.environ["TENCENTCLOUD_SECRET_ID"], os.environ["TENCENTCLOUD_SECRET_KEY"], token)
    for provider in (chain.ProfileCredential().get_credential, tccli_credential):
        found = provider()
        if found is not None:
            return found
    try:
        found = chain.CVMRoleCredential().get_credential()
    except TencentCloudSDKException:
        found = None
    if found is not None:
        return found
    raise BackendUnreachable("no Tencent Cloud credentials found", CREDENTIALS_HINT)


def tione_client(settings: Mapping[str, Any], region: str, credential: Any) -> Any:
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.tione.v20211111.tione_client import TioneClient

    http = HttpProfile(protocol=settings.get("protocol") or "https", endpoint=settings.get("endpoint") or None,
                       reqTimeout=60)
    return TioneClient(credential, region, ClientProfile(httpProfile=http))


def cos_client(settings: Mapping[str, Any], region: str, credential: Any) -> Any:
    """boto3 against COS's S3-compatible endpoint, signed with the same SecretId/SecretKey (COS takes SigV4)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=settings.get("cos_endpoint") or f"https://cos.{region}.myqcloud.com",
                        aws_access_key_id=credential.secret_id, aws_secret_access_key=credential.secret_key,
                        aws_session_token=getattr(credential, "token", None) or None, region_name=region,
                        config=Config(s3={"addressing_style": "virtual"} if not settings.get("cos_endpoint")
                                      else {}, retries={"max_attempts": 1}))


def tione_errors() -> Any:
    """`with tione_errors():` turns the SDK's and boto3's exceptions into launch errors."""
    return translated(tione_error)


def tione_error(exc: Exception) -> LaunchError | None:
    """Quota and stock-outs are CapacityError (failover); credentials exit 4 with the fix; throttling,
    5xx and lost connections are retried by the runner; the rest say what TI-ONE said."""
    module = type(exc).__module__
    if module.startswith(("botocore", "boto3", "s3transfer", "urllib3")):
        from backends.sagemaker.errors import aws_error

        return aws_error("COS", exc)
    if not module.startswith("tencentcloud"):
        return None
    code = str(getattr(exc, "code", "") or "")
    raw = getattr(exc, "message", "") or exc
    message = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    if code == "ServerNetworkError":
        # an answer other than HTTP 200 (the SDK keeps its body as the message): a gateway's, or one that
        # still carries Tencent's error shape, whose code says more than the status did
        code, message = _answered_error(getattr(exc, "message", None)) or (code, message)
    if code in ("InvalidCredential", "ClientSideError") or code.startswith(
            ("AuthFailure.SecretIdNotFound", "AuthFailure.InvalidSecretId", "AuthFailure.SignatureFailure",
             "AuthFailure.SignatureExpire", "AuthFailure.TokenFailure", "AuthFailure.InvalidAuthorization")):
        return BackendUnreachable(f"Tencent Cloud refused the credentials ({code}): {message}", CREDENTIALS_HINT)
    if code.startswith(("AuthFailure", "UnauthorizedOperation", "OperationDenied.Cam")):
        return BackendUnreachable(f"Tencent Cloud denied the request ({code}): {message}", PERMISSION_HINT)
    if code in UNANSWERED_CODES:
        return TransientBackendError(f"TI-ONE did not answer ({code}): {message[:300]}", "check "
                                     "backends.tione.region (and endpoint, if set) and the network, then retry")
    if code in TRANSIENT_CODES or code.startswith(("RequestLimitExceeded", "InternalError")):
        return TransientBackendError(f"TI-ONE is busy or did not answer ({code}): {message}")
    if any(marker in code for marker in CAPACITY_MARKERS) or code.startswith("LimitExceeded"):
        return CapacityError(f"TI-ONE has no capacity for this task ({code}): {message}",
                             "try another region, instance type or resource group, or another backend")
    return BackendError(f"TI-ONE refused the request ({code}): {message}")


def _answered_error(body: Any) -> tuple[str, str] | None:
    """(Code, Message) of a body in Tencent's error shape ({"Response": {"Error": {...}}}), else None."""
    try:
        error = json.loads(body)["Response"]["Error"]
        return str(error["Code"]), str(error.get("Message") or "")
    except (TypeError, ValueError, KeyError):
        return None
