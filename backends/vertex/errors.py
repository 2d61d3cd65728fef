"""Google's errors in launch's words: which are transient (the runner retries), which are quota
(another backend may have room), which are credentials (exit 4 with the command that fixes them).

google-auth and api-core are imported only once an error is in hand or a call is made.
"""

from __future__ import annotations

from typing import Any

from backends.vertex.clients import SDK
from launcher.errors import (
    BackendError,
    BackendUnreachable,
    CapacityError,
    LaunchError,
    TransientBackendError,
    translated,
)

REACH_HINT = "check your network, the region (Vertex AI has one endpoint per region) and any endpoint settings"
QUOTA_WORDS = ("custom_model_training", "gpus", "_cpus", "accelerator", "insufficient", "stockout")


def google_status(exc: Any) -> str:
    """The canonical status ("FAILED_PRECONDITION", ...) of an api-core error raised by the REST
    transport, which picks the exception class from the HTTP code alone."""
    response = getattr(exc, "response", None)
    try:
        return str(response.json()["error"]["status"]) if response is not None else ""
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def is_transient(exc: BaseException) -> bool:
    from google.api_core import exceptions as gexc

    return isinstance(exc, (gexc.ServiceUnavailable, gexc.TooManyRequests, gexc.InternalServerError,
                            gexc.DeadlineExceeded, gexc.BadGateway, gexc.GatewayTimeout)) or \
        type(exc).__name__ in ("ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout")


def is_quota(exc: BaseException) -> bool:
    """A 429/RESOURCE_EXHAUSTED about training resources (not the API's request rate): retrying
    will not help, another backend may. Vertex names the quota metric in the message."""
    from google.api_core import exceptions as gexc

    if not isinstance(exc, gexc.TooManyRequests) and google_status(exc) != "RESOURCE_EXHAUSTED":
        return False
    text = str(exc).lower()
    return any(word in text for word in QUOTA_WORDS)


def raise_for_status(response: Any, service: str) -> None:
    """A plain HTTP answer (Cloud Logging's REST API) raised as the api-core error its code maps to."""
    if response.status_code < 400:
        return
    from google.api_core import exceptions as gexc

    try:
        message = response.json().get("error", {}).get("message", response.text)
    except ValueError:
        message = response.text
    raise gexc.from_http_status(response.status_code, f"{service}: {message}")


def google_errors(service: str) -> Any:
    """`with google_errors("Vertex AI"):` turns google-auth / api-core exceptions into launch errors.
    Every call to Google goes through here, so this is where a missing SDK is said (exit 2)."""
    SDK.require()
    return translated(lambda exc: google_error(service, exc))


def google_error(service: str, exc: Exception) -> LaunchError | None:
    """Transient errors are retried by the runner; missing credentials exit 4 with the
    command that fixes them."""
    if not type(exc).__module__.startswith(("google", "requests", "urllib3")):
        return None
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return BackendUnreachable(f"no Google Cloud credentials: {exc}", "run `gcloud auth application-default "
                                  "login` or set GOOGLE_APPLICATION_CREDENTIALS")
    # HTTP 401/403 raise Unauthorized/Forbidden (REST and GCS); Unauthenticated/PermissionDenied are their
    # gRPC-named subclasses: catch the parents
    if isinstance(exc, (auth_exc.RefreshError, gexc.Unauthorized)):
        return BackendUnreachable(f"Google Cloud rejected the credentials: {exc}",
                                  "run `gcloud auth application-default login` again")
    if is_quota(exc):  # before the transient check: quota refusals come as 429 too
        return CapacityError(f"Vertex AI has no quota or capacity for this job: {exc}",
                             "request more quota for this accelerator in this region, pick another, "
                             "or list another backend after this one (--backend vertex,sagemaker)")
    if is_transient(exc):
        return TransientBackendError(f"{service} is unavailable: {exc}", REACH_HINT)
    if isinstance(exc, gexc.RetryError):  # the SDK's own retries ran out (GCS retries for upload.STORAGE_RETRY_S)
        return BackendUnreachable(f"could not reach {service}: {exc.cause or exc}", REACH_HINT)
    if isinstance(exc, gexc.Forbidden):  # credentials without the rights: exit 4, as 401
        return BackendUnreachable(f"{service} denied the request: {exc}",
                            "the account needs roles/aiplatform.user and access to the staging bucket")
    return BackendError(f"{service} refused the request: {exc}")
