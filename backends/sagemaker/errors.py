"""botocore's exceptions as launch errors: what the runner retries, what exits 4, what says "capacity".

The one place that knows AWS's error codes; botocore is imported only once an exception from it is in hand.
"""

from __future__ import annotations

from typing import Any

from launcher.errors import (
    BackendError,
    BackendUnreachable,
    CapacityError,
    LaunchError,
    TransientBackendError,
    translated,
)

# refusals for want of quota or machines: nothing was created, another backend may have them
CAPACITY_CODES = {"ResourceLimitExceeded", "CapacityError", "InsufficientCapacityError"}
TRANSIENT_CODES = {"ThrottlingException", "Throttling", "ServiceUnavailable", "InternalFailure",
                   "InternalServerError", "RequestTimeout", "SlowDown", "TooManyRequestsException"}
CREDENTIAL_CODES = {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
                    "ExpiredTokenException", "InvalidSignatureException", "SignatureDoesNotMatch"}


def aws_errors(service: str) -> Any:
    """`with aws_errors("SageMaker"):` turns botocore's exceptions into launch errors."""
    return translated(lambda exc: aws_error(service, exc))


def aws_error(service: str, exc: Exception) -> LaunchError | None:
    """Transient errors are retried by the runner; missing credentials exit 4 with what to
    set; the rest say what AWS said."""
    if not type(exc).__module__.startswith(("botocore", "boto3", "urllib3", "s3transfer")):
        return None
    from botocore import exceptions as be

    if isinstance(exc, (be.NoCredentialsError, be.PartialCredentialsError, be.ProfileNotFound,
                        be.CredentialRetrievalError, be.TokenRetrievalError, be.SSOTokenLoadError,
                        be.UnauthorizedSSOTokenError)):
        return BackendUnreachable(f"no usable AWS credentials: {exc}", "run `aws configure`, set AWS_PROFILE, "
                                  "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, (be.EndpointConnectionError, be.ConnectionClosedError, be.ReadTimeoutError,
                        be.ConnectTimeoutError)):
        return TransientBackendError(f"could not reach {service}: {exc}", "check your network or the region")
    if not isinstance(exc, be.ClientError):
        return BackendError(f"{service} error: {exc}")
    error = exc.response.get("Error", {})
    code, text = str(error.get("Code", "")), str(error.get("Message", ""))
    http = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in TRANSIENT_CODES or http >= 500:
        return TransientBackendError(f"{service} is busy ({code}): {text}")
    if code in CREDENTIAL_CODES:
        return BackendUnreachable(f"AWS rejected the credentials ({code}): {text}",
                                  "refresh them (aws sso login / aws configure) or check AWS_PROFILE")
    if code in ("AccessDenied", "AccessDeniedException"):  # credentials without the rights: exit 4, as 401
        return BackendUnreachable(f"AWS denied the request ({code}): {text}", "the credentials need SageMaker, S3 and "
                            "CloudWatch Logs permissions and iam:PassRole on the role")
    if code in CAPACITY_CODES:
        return CapacityError(f"SageMaker has no quota or capacity for this job ({code}): {text}",
                             "request a quota increase for this instance type in Service Quotas, pick another "
                             "accelerator, or list another backend after this one (--backend sagemaker,vertex)")
    return BackendError(f"{service} refused the request ({code}): {text}")


def not_found(exc: Any) -> bool:
    """AWS answers a missing training job with ValidationException "Requested resource not
    found." (the API reference says ResourceNotFound): accept both."""
    error = exc.response.get("Error", {})
    return error.get("Code") == "ResourceNotFound" or (
        error.get("Code") == "ValidationException" and "not found" in str(error.get("Message", "")).lower())
