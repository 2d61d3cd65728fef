"""The DLC SDK client, the OSS client for the job's files, and the SDK's errors as launch errors.

The Alibaba Cloud SDK and boto3 are imported only when a real call needs them: `launch list` and dry
runs never get here. Credentials come from Alibaba Cloud's default chain (ALIBABA_CLOUD_ACCESS_KEY_ID
/ _SECRET, ~/.aliyun/config.json profiles, a RAM role), never from a spec.
"""

from __future__ import annotations

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

SDK = Sdk("pai_dlc", "alibabacloud-pai-dlc20201203", ("alibabacloud_pai_dlc20201203", "alibabacloud_credentials",
                                                      "boto3"))
CREDENTIALS_HINT = ("export ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or configure a "
                    "profile with `aliyun configure` (~/.aliyun/config.json)")
# refusals for want of quota or machines: nothing was created, another backend may have them
CAPACITY_MARKERS = ("Quota", "Stock", "InsufficientResource", "ResourceNotEnough")
CREDENTIAL_CODES = {"InvalidAccessKeyId.NotFound", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                    "IncompleteSignature", "InvalidCredentials", "Forbidden.AccessKeyDisabled",
                    "InvalidSecurityToken.Expired"}
TRANSIENT_CODES = {"Throttling", "Throttling.User", "Throttling.Api", "ServiceUnavailable", "InternalError"}


def credentials() -> Any:
    """Alibaba Cloud's default credential chain (environment, profile, RAM role), resolved on first use."""
    import logging
    import os

    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import Config as CredentialConfig

    # the SDK's environment provider reads the variables once, when it is first imported; a process that
    # sets them later (a library user, a long-lived runner) would be ignored, so they are read here, now
    key, secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"), os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if key and secret:
        token = os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None
        chain = CredentialClient(CredentialConfig(type="sts" if token else "access_key", access_key_id=key,
                                                  access_key_secret=secret, security_token=token))
    else:
        chain = CredentialClient()
    # resolved now, so a missing credential is one error (exit 4) before anything is uploaded; the chain logs
    # each provider it tried with a traceback, which is not ours to print: the error says what to set
    quiet = logging.getLogger("credentials")
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        chain.get_credential()
    finally:
        quiet.setLevel(level)
    return chain


def dlc_client(settings: Mapping[str, Any], region: str, credential: Any) -> Any:
    from alibabacloud_pai_dlc20201203.client import Client
    from alibabacloud_tea_openapi.models import Config

    endpoint = settings.get("endpoint") or f"pai-dlc.{region}.aliyuncs.com"
    return Client(Config(credential=credential, region_id=region, endpoint=endpoint,
                         protocol=settings.get("protocol") or "https", connect_timeout=10_000, read_timeout=60_000))


def oss_client(settings: Mapping[str, Any], region: str, credential: Any) -> Any:
    """boto3 against OSS's S3-compatible endpoint, signed with the same AccessKey (OSS takes SigV4)."""
    import boto3
    from botocore.config import Config

    key = credential.get_credential()
    return boto3.client("s3", endpoint_url=settings.get("oss_endpoint") or f"https://oss-{region}.aliyuncs.com",
                        aws_access_key_id=key.access_key_id, aws_secret_access_key=key.access_key_secret,
                        aws_session_token=key.security_token or None, region_name=region,
                        config=Config(s3={"addressing_style": "virtual"} if not settings.get("oss_endpoint")
                                      else {}, retries={"max_attempts": 1}))


def dlc_errors() -> Any:
    """`with dlc_errors():` turns the SDK's and boto3's exceptions into launch errors."""
    return translated(dlc_error)


def error_code(exc: Exception) -> str:
    return str(getattr(exc, "code", "") or "")


def dlc_error(exc: Exception) -> LaunchError | None:
    """Quota and stock-outs are CapacityError (failover); credentials exit 4 with the fix; throttling
    and 5xx are retried by the runner; the rest say what DLC said."""
    module = type(exc).__module__
    if module.startswith(("botocore", "boto3", "s3transfer", "urllib3")):
        from backends.sagemaker.errors import aws_error

        return aws_error("OSS", exc)
    if type(exc).__name__ == "UnretryableException" or module.startswith("requests"):
        # the SDK's wrapper of a connection that failed or an answer that never came
        return TransientBackendError(f"PAI-DLC did not answer: {exc}", "check backends.pai_dlc.region (and "
                                     "endpoint, if set) and the network, then retry")
    if not module.startswith(("alibabacloud", "Tea", "darabonba")):
        return None
    code, status = error_code(exc), getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", "") or exc)
    if code == "InvalidCredentials" or "credential" in type(exc).__name__.lower():
        return BackendUnreachable(f"no usable Alibaba Cloud credentials: {message}", CREDENTIALS_HINT)
    if code in CREDENTIAL_CODES or code.startswith(("InvalidAccessKey", "SignatureDoesNotMatch")):
        return BackendUnreachable(f"Alibaba Cloud refused the credentials ({code}): {message}", CREDENTIALS_HINT)
    if code.startswith("Forbidden") or status == 403:
        return BackendUnreachable(f"Alibaba Cloud denied the request ({code}): {message}",
                                  "grant the RAM user or role PAI-DLC's permissions in this workspace (the "
                                  "AliyunPAIDLCFullAccess policy, or a custom one allowing CreateJob/GetJob/"
                                  "ListJobs/StopJob/GetPodLogs)")
    if any(marker in code for marker in CAPACITY_MARKERS):
        return CapacityError(f"PAI-DLC has no capacity for this job ({code}): {message}",
                             "try another region, instance type or resource quota, or another backend")
    if code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500) or status == 429:
        return TransientBackendError(f"PAI-DLC is busy ({code or status}): {message}")
    return BackendError(f"PAI-DLC refused the request ({code or status}): {message}")
